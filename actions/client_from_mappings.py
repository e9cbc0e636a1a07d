"""Create Kleer Client (from mappings): the client's fields come from the portal's mappings."""

from __future__ import annotations

from dataclasses import replace

from actions.base import ActionContext
from actions.client import SPEC as CLIENT
from actions.client import ClientInputs, client_from_inputs
from actions.mappings import mapped_inputs
from kleer_api.models import Client


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Client:
    values, why_missing = mapped_inputs("client", ctx.mappings, ctx.record, "company")
    return client_from_inputs(ctx, ClientInputs.parse(values, source=" (from field mappings)",
                                         why_missing=why_missing))


SPEC = replace(
    CLIENT,
    key="create-client-from-mappings",
    label="Create Kleer Client (from mappings)",
    description="Creates a Kleer client from the company's properties using the portal's "
                "client field mappings, and stores its id in kleer_id.",
    inputs=None,
    build=build,
    mapping_kind="client",
)
