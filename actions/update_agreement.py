"""Update Kleer Agreement (deal workflows): header fields given + the full row set, never skipped."""

from __future__ import annotations

from dataclasses import replace

from actions.agreement import SPEC as CREATE_AGREEMENT
from actions.agreement import AgreementInputs, agreement_from
from actions.base import ActionContext
from kleer_api.models import Agreement


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Agreement:
    # Only given header fields are sent (None is left out); both row lists are always sent, so
    # the deal's line items replace the agreement's rows, including removals.
    return agreement_from(ctx, AgreementInputs.parse(raw))


SPEC = replace(
    CREATE_AGREEMENT,
    key="update-agreement",
    label="Update Kleer Agreement",
    description="Updates the deal's Kleer agreement (upsell, downgrade, renewal): the given "
                "fields change and the deal's line items replace the agreement's rows.",
    operation="update",
    build=build,
    # The agreement's client is fixed; the company is read only by the create actions.
    needs_company=False,
)
