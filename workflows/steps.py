"""How a workflow runs one step (an activity): timeouts, retries, priorities, and turning a step
that cannot succeed into a readable FinalFailure. Shared by the action shape (common.py) and the
per-record workflow (record.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.models import StepPolicy, fairness_key, hubspot_task_queue

T = TypeVar("T")

# In a bulk enrollment the portal's HubSpot queue has a backlog. Runs already under way go
# first (priority 1); a run's first call waits behind them (5). Runs then finish in the order
# they started, instead of all progressing in lockstep and finishing together at the end.
UNDER_WAY, NEW_RUN = 1, 5


def hubspot_priority(portal_id: int, priority_key: int = UNDER_WAY) -> Priority:
    """Priority first; within a priority, fair shares between portals (fairness keys)."""
    return Priority(priority_key=priority_key, fairness_key=fairness_key(portal_id))


# A HubSpot step heartbeats while it waits for its batch and turn (activities/heartbeat.py): a
# lost worker shows within the step timeout, and the step may wait this many times longer.
HUBSPOT_WAIT_FACTOR = 20


def step_options(policy: StepPolicy, callback: bool = False, hubspot: bool = False
                 ) -> dict[str, Any]:
    """Transient faults (timeouts, 5xx, 429) are retried with backoff; a 429's Retry-After
    overrides the backoff (ApplicationError.next_retry_delay); final errors are non-retryable.
    The callback step outlives the others: HubSpot waits as long as the BLOCK answer said.
    `hubspot`: a paced, batched HubSpot step (heartbeat timeout, room to wait for its turn)."""
    give_up = policy.callback_give_up_after_s if callback else policy.give_up_after_s
    timeouts: dict[str, Any] = {"start_to_close_timeout": timedelta(seconds=policy.start_to_close_s)}
    if hubspot:
        timeouts = {
            "start_to_close_timeout": timedelta(seconds=policy.start_to_close_s * HUBSPOT_WAIT_FACTOR),
            "heartbeat_timeout": timedelta(seconds=policy.start_to_close_s),
        }
    return {
        **timeouts,
        "schedule_to_close_timeout": timedelta(seconds=give_up),
        "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=policy.initial_retry_s),
                                    backoff_coefficient=2.0,
                                    maximum_interval=timedelta(seconds=policy.max_retry_s)),
    }


class FinalFailure(Exception):
    """Ends the action as FAIL_CONTINUE with a message the HubSpot user can act on."""

    def __init__(self, message: str, kleer_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kleer_id = kleer_id


async def step(
    activity: Callable[..., Awaitable[T]], arg: Any, policy: StepPolicy, failure: str = "",
    kleer_id: str = "", task_queue: str | None = None, priority: Priority = Priority.default,
    hubspot: bool = False, failures: dict[str, str] | None = None,
) -> T:
    """`failure` prefixes the message of a step that cannot succeed; `failures` replaces it for
    a part of a merged activity, named by its error's first detail (activities/errors.py)."""
    try:
        return await workflow.execute_activity_method(activity, arg, task_queue=task_queue,
                                                      priority=priority,
                                                      **step_options(policy, hubspot=hubspot))
    except ActivityError as err:
        raise _final(err, policy, _prefix(err, failure, failures), kleer_id) from None


def _prefix(err: ActivityError, failure: str, failures: dict[str, str] | None) -> str:
    cause: BaseException | None = err.cause
    while failures and cause is not None:  # a timeout after retries carries the last error
        if isinstance(cause, ApplicationError) and cause.details and cause.details[0] in failures:
            return failures[cause.details[0]]
        cause = cause.__cause__
    return failure


async def local_step(activity: Callable[..., Awaitable[T]], arg: Any, policy: StepPolicy,
                     failure: str = "") -> T:
    """A short step on this worker (a database statement): a local activity, recorded in the
    run's history as a marker instead of a task round trip through Temporal."""
    try:
        return await workflow.execute_local_activity_method(activity, arg,
                                                            **step_options(policy))
    except ActivityError as err:
        raise _final(err, policy, failure) from None


def _final(err: ActivityError, policy: StepPolicy, failure: str, kleer_id: str = ""
           ) -> FinalFailure:
    cause = err.cause
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
    if not (isinstance(cause, ApplicationError) and cause.non_retryable):
        message = f"gave up after retrying for {policy.give_up_after_s:.0f} s: {message}"
    return FinalFailure(failure + message, kleer_id)


async def hubspot_step(
    activity: Callable[..., Awaitable[T]], arg: Any, policy: StepPolicy, failure: str = "",
    kleer_id: str = "", priority_key: int = UNDER_WAY, failures: dict[str, str] | None = None,
) -> T:
    """A HubSpot call: on the HubSpot queue, under the portal's fairness key."""
    return await step(activity, arg, policy, failure, kleer_id,
                      hubspot_task_queue(workflow.info().task_queue),
                      hubspot_priority(arg.portal_id, priority_key), hubspot=True,
                      failures=failures)
