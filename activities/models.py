"""Inputs and outputs of the activities (they cross the Temporal boundary, so they are models).

None of them carries a credential: activities look those up by portal id.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from actions.mappings import FieldMapping
from hubspot_api.models import CrmObject
from kleer_api.client import Kind


class ReadRecord(BaseModel):
    portal_id: int
    action: str
    object_id: int
    # Also what hangs off the record (its company, its line items), unless the action will skip:
    # one step instead of three (runs started before this read them in steps of their own).
    related: bool = False


class RecordRead(BaseModel):
    record: CrmObject
    mappings: list[FieldMapping] = Field(default_factory=list)
    company: CrmObject | None = None
    line_items: list[CrmObject] = Field(default_factory=list)


class ReadObject(BaseModel):
    portal_id: int
    object_id: str


class ReadLineItems(BaseModel):
    portal_id: int
    ids: list[str]


class FindProducts(BaseModel):
    portal_id: int
    hubspot_product_ids: list[str]


class KleerWrite(BaseModel):
    portal_id: int
    kind: Kind
    payload: dict[str, Any]
    foreign_id: str | None = None  # create: the durable marker that makes retries safe
    record_id: int | None = None  # update: the record to change
    lookup_first: bool = False  # create: an earlier execution may have made it already


class LeaseRequest(BaseModel):
    key: str  # the Kleer record: record_workflow_id(portal, kind, object type, object id)
    holder: str  # the HubSpot execution's workflow id


class LeaseAnswer(BaseModel):
    # "taken": the caller writes now; "held": another execution does (wait and ask again);
    # "no-database": this worker has no database, the per-record child workflow serialises.
    state: Literal["taken", "held", "no-database"]
    holder: str = ""
    lookup_first: bool = False  # taken, and an earlier execution may have written the record


class KleerWritten(BaseModel):
    id: int
    record: dict[str, Any]
    existed: bool = False  # found by its marker on a first attempt: an earlier execution made it


class WriteBack(BaseModel):
    portal_id: int
    hubspot_type: str
    object_id: int
    properties: dict[str, str]


class SyncMirror(BaseModel):
    portal_id: int
    hubspot_type: str
    kleer_id: str
    properties: dict[str, str]
    associations: list[tuple[str, str]] = Field(default_factory=list)  # (object type, id)
    expect_new: bool = True  # create actions: try a plain create first (cheapest when new)


class SyncMirrorWithLineItems(SyncMirror):
    """The mirror and its line items in one activity (`mirror-and-line-items-in-one-step`)."""

    line_items: list[dict[str, str]]


class SyncLineItems(BaseModel):
    portal_id: int
    hubspot_type: str
    mirror_id: str
    line_items: list[dict[str, str]]


class Completion(BaseModel):
    portal_id: int
    callback_id: str
    output_fields: dict[str, str]


class WriteBackAndComplete(WriteBack):
    """The id written back, then, in the same activity, the callback completed with the outcome
    that write makes final (`complete-in-last-write`): one round trip through Temporal fewer."""

    complete: Completion


class SyncMirrorAndComplete(SyncMirrorWithLineItems):
    """The mirror and its line items, then the callback completed (`complete-in-last-write`);
    since `write-back-with-mirror`, a create's id written back first, in the same activity."""

    complete: Completion
    write_back: WriteBack | None = None


class MirrorSynced(BaseModel):
    mirror_id: str
    # What completing the callback answered: "completed", "closed: ..." (HubSpot no longer takes
    # it), or "" when it could not be told: the run's own complete step then tells it.
    callback: str = ""
