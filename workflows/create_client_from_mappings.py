"""Create Kleer Client (from mappings): inputs and mapping live in actions/client_from_mappings.py."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from actions.client_from_mappings import SPEC
    from workflows.common import run_action
    from workflows.models import ActionExecution, ActionResult


@workflow.defn(name="CreateKleerClientFromMappings")
class CreateKleerClientFromMappings:
    @workflow.run
    async def run(self, execution: ActionExecution) -> ActionResult:
        return await run_action(SPEC, execution)
