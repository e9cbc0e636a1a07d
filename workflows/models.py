"""Workflow input and output: one HubSpot execution in, its outcome out. No secrets here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from actions.base import record_workflow_id  # noqa: F401 (re-exported: workflows' import)
from settings import StepPolicy

# Custom search attributes (registered by `kleer-hubspot dev`; see README for clusters), so the UI
# and `temporal workflow list --query` can filter e.g. all failed invoices of one portal.
PORTAL_ID = SearchAttributeKey.for_int("KleerPortalId")
ACTION = SearchAttributeKey.for_keyword("KleerAction")
OBJECT_ID = SearchAttributeKey.for_keyword("HubSpotObjectId")
RESULT = SearchAttributeKey.for_keyword("KleerResult")
CALLBACK_ID = SearchAttributeKey.for_keyword("HubSpotCallbackId")
SEARCH_ATTRIBUTES = (PORTAL_ID, ACTION, OBJECT_ID, RESULT, CALLBACK_ID)


class ActionExecution(BaseModel):
    action: str
    callback_id: str
    portal_id: int
    object_type: Literal["COMPANY", "DEAL"]
    object_id: int
    input_fields: dict[str, str | None] = Field(default_factory=dict)
    policy: StepPolicy = Field(default_factory=StepPolicy)
    # The run sets its own search attributes on its first workflow task (the server has them
    # registered). The API's start carries none: on the dev server any custom search attribute
    # made a start 4-10 ms slower, which the acknowledgement waited for (bench/ack.py).
    indexed: bool = False

    def search_attributes(self) -> TypedSearchAttributes:
        return TypedSearchAttributes([
            SearchAttributePair(PORTAL_ID, self.portal_id),
            SearchAttributePair(ACTION, self.action),
            SearchAttributePair(OBJECT_ID, str(self.object_id)),
            SearchAttributePair(CALLBACK_ID, self.callback_id),
        ])

    @property
    def workflow_id(self) -> str:
        return workflow_id(self.action, self.object_type, self.object_id, self.callback_id)

    def summary(self) -> str:
        """Shown in the Temporal UI's list; ids only (customer data stays encrypted)."""
        return f"{self.action} · portal {self.portal_id} · {self.object_type} {self.object_id}"


# Error type of a run whose action failed (bad input, missing prerequisite, Kleer refused...).
FAILED_ACTION = "KleerActionFailed"


class ActionResult(BaseModel):
    state: Literal["SUCCESS", "FAIL_CONTINUE"]
    result: Literal["created", "updated", "skipped", "failed"]
    kleer_id: str = ""
    error_message: str = ""
    callback: str = ""  # "completed", or why HubSpot no longer accepts the completion

    @classmethod
    def succeeded(cls, operation: str, kleer_id: str, existed: bool = False) -> ActionResult:
        """The outcome of a write that went through: an update, a create, or a create an
        earlier execution for the same record had made (found by its marker: nothing new)."""
        result = "updated" if operation == "update" else "skipped" if existed else "created"
        return cls(state="SUCCESS", result=result, kleer_id=kleer_id)

    def output_fields(self) -> dict[str, str]:
        return {
            "hs_execution_state": self.state,
            "kleer_id": self.kleer_id,
            "result": self.result,
            "error_message": self.error_message,
        }


class RecordWork(BaseModel):
    """What an action writes to one Kleer record, handed to the per-record workflow
    (workflows/record.py): the Kleer write, the id written back, the HubSpot mirror."""

    action: str
    portal_id: int
    object_id: int  # the enrolled HubSpot record
    payload: dict[str, Any]  # the Kleer record the action built (JSON body)
    foreign_id: str | None = None  # create: our marker on the Kleer record
    record_id: int | None = None  # update: the Kleer record to change
    associations: list[tuple[str, str]] = Field(default_factory=list)  # mirror -> (type, id)
    # An earlier execution may have written this record already: look for it before creating.
    lookup_first: bool = False
    policy: StepPolicy = Field(default_factory=StepPolicy)
    # The execution's HubSpot callback, completed by the write's last HubSpot step once the write
    # went through (`complete-in-last-write`); None: the action's run completes it afterwards.
    callback_id: str | None = None


class RecordDone(BaseModel):
    kleer_id: str = ""
    existed: bool = False  # made by an earlier execution, found by its marker
    error_message: str = ""
    callback: str = ""  # what completing the callback answered, when the write's last step did


def hubspot_task_queue(task_queue: str) -> str:
    """The queue of every portal's HubSpot activities (each portal under its fairness key)."""
    return f"{task_queue}-hubspot"


def fairness_key(portal_id: int) -> str:
    """Temporal dispatches a queue's tasks fairly between keys: one per portal."""
    return f"portal-{portal_id}"


def workflow_id(action: str, object_type: str, object_id: int | str, callback_id: str) -> str:
    """One workflow per HubSpot execution, readable in the UI's list:
    `create-invoice-deal-4321-ap-102-1234-5-6`. Derived only from the request, so a re-delivered
    request maps to the same id (and so to the same run)."""
    return f"{action}-{object_type.lower()}-{object_id}-{callback_id}"
