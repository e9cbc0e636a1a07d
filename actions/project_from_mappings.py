"""Create Kleer Project (from mappings): project fields from the portal's project mappings."""

from __future__ import annotations

from dataclasses import replace

from actions.base import ActionContext
from actions.mappings import mapped_inputs
from actions.project import SPEC as PROJECT
from actions.project import ProjectInputs, project_from
from kleer_api.models import Project


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Project:
    values, why_missing = mapped_inputs("project", ctx.mappings, ctx.record, "deal")
    return project_from(ctx, ProjectInputs.parse(values, source=" (from field mappings)",
                                         why_missing=why_missing))


SPEC = replace(
    PROJECT,
    key="create-project-from-mappings",
    label="Create Kleer Project (from mappings)",
    description="Creates a Kleer project from the deal's properties using the portal's project "
                "field mappings, and stores its id in kleer_project_id.",
    inputs=None,
    build=build,
    mapping_kind="project",
)
