"""Create Kleer Project (from mappings): mapping lives in actions/project_from_mappings.py."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions.project_from_mappings import SPEC
    from workflows.common import run_action
    from workflows.models import ActionExecution, ActionResult


@workflow.defn(name="CreateKleerProjectFromMappings")
class CreateKleerProjectFromMappings:
    @workflow.run
    async def run(self, execution: ActionExecution) -> ActionResult:
        return await run_action(SPEC, execution)
