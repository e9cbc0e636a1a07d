"""Create Kleer Client: see actions/client.py for its inputs and Kleer mapping."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions.client import SPEC
    from workflows.common import run_action
    from workflows.models import ActionExecution, ActionResult


@workflow.defn(name="CreateKleerClient")
class CreateKleerClient:
    @workflow.run
    async def run(self, execution: ActionExecution) -> ActionResult:
        return await run_action(SPEC, execution)
