"""Create Kleer Project: see actions/project.py for its inputs and Kleer mapping."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions.project import SPEC
    from workflows.common import run_action
    from workflows.models import ActionExecution, ActionResult


@workflow.defn(name="CreateKleerProject")
class CreateKleerProject:
    @workflow.run
    async def run(self, execution: ActionExecution) -> ActionResult:
        return await run_action(SPEC, execution)
