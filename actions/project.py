"""Create Kleer Project (deal workflows): inputs and their mapping to a Kleer project."""

from __future__ import annotations

from actions.base import ActionContext, ActionSpec
from actions.fields import ActionInputs, Bool, DateInput, Decimal0, Money, Text, field
from kleer_api.models import Project, Ref


class ProjectInputs(ActionInputs):
    name: Text = field("Name", required=True)
    number: Text = field("Number")
    comment: Text = field("Comment")
    fixed_price: Bool = field("Fixed Price")
    budget_hours: Decimal0 = field("Budget Hours")
    budget_amount: Money = field("Budget Amount", description="Kleer stores it in öre/cents")
    opening_date: DateInput = field("Opening Date")


def project_from(ctx: ActionContext, inputs: ProjectInputs) -> Project:
    return Project(
        client=Ref(id=ctx.client_id()),
        name=inputs.name or "",
        number=inputs.number,
        comment=inputs.comment,
        fixed_price=inputs.fixed_price,
        budget_hours=inputs.budget_hours,
        budget_amount=inputs.budget_amount,
        opening_date=inputs.opening_date,
    )


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Project:
    return project_from(ctx, ProjectInputs.parse(raw))


SPEC = ActionSpec(
    key="create-project",
    label="Create Kleer Project",
    description="Creates a Kleer project for the deal's company and stores its id in "
                "kleer_project_id.",
    object_type="DEAL",
    kleer_kind="project",
    id_property="kleer_project_id",
    inputs=ProjectInputs,
    build=build,
    needs_company=True,
    record_properties=("dealname",),
)
