"""The worker's workflow runner (workflows/runner.py) answers the per-payload context questions
outside the sandbox, and payloads are still encoded by the codec exactly as before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():  # the sandbox validates this module's workflow
    import pytest
    from temporalio.api.common.v1 import Payload
    from temporalio.api.enums.v1 import EventType
    from temporalio.converter import (
        DataConverter,
        PayloadCodec,
        SerializationContext,
        WithSerializationContext,
    )
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import _runner as sandbox_runner

    from local.stack import LocalStack
    from settings import Settings
    from temporal_client import data_converter
    from tests.conftest import PAYLOAD_KEY
    from workflows.runner import RESTRICTIONS, ContextFreeSandboxedRunner, workflow_runner


@dataclass
class Greeting:
    name: str


@activity.defn(name="RunnerTestGreet")
async def greet(greeting: Greeting) -> str:
    return f"hello {greeting.name}"


@workflow.defn(name="RunnerTestWorkflow")
class GreetTwice:
    @workflow.run
    async def run(self, greeting: Greeting) -> list[str]:
        timeout = timedelta(seconds=10)
        first = await workflow.execute_activity(greet, greeting, start_to_close_timeout=timeout)
        second = await workflow.execute_activity(greet, Greeting(first),
                                                 start_to_close_timeout=timeout)
        return [first, second]


class _ContextReadingCodec(PayloadCodec, WithSerializationContext):
    def with_context(self, context: SerializationContext) -> _ContextReadingCodec:
        return self

    async def encode(self, payloads):  # pragma: no cover - never called
        return list(payloads)

    async def decode(self, payloads):  # pragma: no cover - never called
        return list(payloads)


def test_our_converter_gets_the_context_free_runner_and_a_context_reading_codec_does_not():
    ours = data_converter(Settings(payload_key=PAYLOAD_KEY))
    assert isinstance(workflow_runner(ours), ContextFreeSandboxedRunner)
    assert isinstance(workflow_runner(data_converter(Settings())), ContextFreeSandboxedRunner)
    reading = DataConverter(payload_codec=_ContextReadingCodec())
    runner = workflow_runner(reading)
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert not isinstance(runner, ContextFreeSandboxedRunner)


async def _run(stack: LocalStack, runner: SandboxedWorkflowRunner) -> tuple[list[str], list[Payload]]:
    queue = f"runner-test-{uuid.uuid4().hex[:8]}"
    async with Worker(stack.client, task_queue=queue, workflows=[GreetTwice], activities=[greet],
                      workflow_runner=runner):
        handle = await stack.client.start_workflow(GreetTwice.run, Greeting("ada"),
                                                   id=f"{queue}-wf", task_queue=queue)
        result = await handle.result()
    payloads: list[Payload] = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            payloads += event.activity_task_scheduled_event_attributes.input.payloads
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            payloads += event.workflow_execution_completed_event_attributes.result.payloads
    return result, payloads


@pytest.mark.parametrize("context_free", [True, False], ids=["ours", "sdk"])
async def test_the_sandbox_is_not_entered_per_payload_and_payloads_stay_encrypted(
        stack: LocalStack, monkeypatch: pytest.MonkeyPatch, context_free: bool):
    calls: list[object] = []
    asked = sandbox_runner._Instance.get_serialization_context

    def counting(self, command_info):
        calls.append(command_info)
        return asked(self, command_info)

    monkeypatch.setattr(sandbox_runner._Instance, "get_serialization_context", counting)
    runner = (workflow_runner(stack.client.data_converter) if context_free
              else SandboxedWorkflowRunner(restrictions=RESTRICTIONS))
    result, payloads = await _run(stack, runner)

    assert result == ["hello ada", "hello hello ada"]
    # The SDK's runner asks the sandbox for every payload sequence; ours never does.
    assert (len(calls) == 0) if context_free else (len(calls) > 0), len(calls)
    # Activity inputs (the second carries the first's result) and the workflow's result went
    # through the codec: encrypted in the history, readable with the key.
    assert len(payloads) == 3
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in payloads)
    assert b"ada" not in b"".join(p.data for p in payloads)
    decoded = await stack.client.data_converter.decode(payloads[2:], [list[str]])
    assert decoded == [["hello ada", "hello hello ada"]]
