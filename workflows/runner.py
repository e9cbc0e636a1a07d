"""How a worker runs our workflows: in Temporal's sandbox, without a trip into it per payload.

- **Pass-through.** The sandbox re-imports every module it does not pass through for each
  workflow run, to give the run fresh module state. Ours hold none (their I/O is in activities;
  runtime restrictions such as datetime.now still apply), and re-importing the workflows package
  for every run was a fifth of a worker's CPU in a bulk enrollment (py-spy, bench/README.md).
- **No per-payload serialization context.** For each payload sequence of an activation (three
  passes to decode it, three to encode its completion), temporalio 1.35 asks the workflow inside
  the sandbox which serialization context the payload's command has: an `exec` of a source string
  with the sandbox's importer applied, each time. py-spy put that at 20% of a busy worker's CPU in
  a 5,000 burst. Only a payload codec or external storage that reads the context uses the answer
  in those passes (`DataConverter._encode_payload_sequence` and friends); the payload converter
  runs inside the sandbox and gets its context there, unchanged. Our codec (codec.py) does not
  read it and we store no payloads externally, so for such a data converter the runner answers
  "no context" outside the sandbox and every payload is encoded exactly as before. Any other data
  converter keeps the SDK's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WithSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.workflow import Info

FIRST_PARTY = ("workflows", "actions", "activities", "sync", "hubspot_api", "kleer_api", "codec",
               "service_errors", "settings", "pacing", "portals", "storage", "oauth", "telemetry")
RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(*FIRST_PARTY)


def context_free(converter: DataConverter) -> bool:
    """Whether encoding this converter's payloads never depends on their serialization context."""
    return (converter.external_storage is None
            and not isinstance(converter.payload_codec, WithSerializationContext))


def workflow_runner(converter: DataConverter) -> WorkflowRunner:
    """The runner for a worker whose client has `converter`."""
    if context_free(converter):
        return ContextFreeSandboxedRunner(restrictions=RESTRICTIONS)
    return SandboxedWorkflowRunner(restrictions=RESTRICTIONS)


@dataclass(frozen=True)
class ContextFreeSandboxedRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox, whose instances answer the context questions without entering it.
    Only for a context-free data converter (`workflow_runner` decides)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """A sandboxed instance, as is, except for the two per-payload questions."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self._sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self._sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> SerializationContext | None:
        return None  # the worker's data converter, as configured: its codec reads no context

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return StorageDriverStoreContext(target=None)  # nothing is stored externally

    def get_info(self) -> Info:
        return self._sandboxed.get_info()

    def get_thread_id(self) -> int | None:  # the deadlock detector interrupts this thread
        return self._sandboxed.get_thread_id()
