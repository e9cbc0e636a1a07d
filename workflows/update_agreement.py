"""Update Kleer Agreement: see actions/update_agreement.py for its inputs and Kleer mapping."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions.update_agreement import SPEC
    from workflows.common import run_action
    from workflows.models import ActionExecution, ActionResult


@workflow.defn(name="UpdateKleerAgreement")
class UpdateKleerAgreement:
    @workflow.run
    async def run(self, execution: ActionExecution) -> ActionResult:
        return await run_action(SPEC, execution)
