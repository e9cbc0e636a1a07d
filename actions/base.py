"""What an action is: its HubSpot side, its inputs, its Kleer record and how one becomes the other.

Everything here is pure (no I/O) so workflows can call it deterministically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from actions.fields import ActionInputs, InputError
from actions.mappings import FieldMapping
from hubspot_api.models import CrmObject
from kleer_api.models import KleerModel

ObjectType = Literal["COMPANY", "DEAL"]
KleerKind = Literal["client", "invoice", "agreement", "project"]


class ActionContext(BaseModel):
    """Everything read before deciding: the enrolled record and what hangs off it."""

    portal_id: int
    object_type: ObjectType
    record: CrmObject
    company: CrmObject | None = None
    line_items: list[CrmObject] = Field(default_factory=list)
    mappings: list[FieldMapping] = Field(default_factory=list)
    # HubSpot product id -> Kleer product id, for the products Kleer knows.
    products: dict[str, int] = Field(default_factory=dict)

    def client_id(self) -> int:
        """The Kleer client id of the deal's company (prerequisites already checked)."""
        assert self.company is not None
        return int(self.company.prop("kleer_id") or 0)


@dataclass(frozen=True)
class SyncSpec:
    """Immediate sync back: the HubSpot object that mirrors the Kleer record."""

    hubspot_type: Literal["invoices", "subscriptions"]
    properties: Callable[[dict], dict[str, str]]
    line_items: Callable[[dict], list[dict[str, str]]]


@dataclass(frozen=True)
class ActionSpec:
    key: str  # URL segment: POST /hubspot/actions/{key}
    label: str
    description: str
    object_type: ObjectType
    kleer_kind: KleerKind
    id_property: str  # property on the enrolled record that holds the Kleer id
    inputs: type[ActionInputs] | None
    build: Callable[[ActionContext, dict[str, str | None]], KleerModel]
    operation: Literal["create", "update"] = "create"
    needs_company: bool = False
    reads_line_items: bool = False
    mapping_kind: Literal["client", "project"] | None = None
    record_properties: tuple[str, ...] = ()
    sync: SyncSpec | None = None
    extra: dict = field(default_factory=dict)

    @property
    def hubspot_type(self) -> str:
        return "companies" if self.object_type == "COMPANY" else "deals"

    def properties_to_read(self, mappings: list[FieldMapping]) -> list[str]:
        names = [self.id_property, *self.record_properties, *(m.hubspot for m in mappings)]
        return list(dict.fromkeys(names))

    def skips(self, record: CrmObject) -> str | None:
        """The Kleer id that makes a create skip the record (already done), or None."""
        return record.prop(self.id_property) if self.operation == "create" else None

    def prerequisite_error(self, ctx: ActionContext) -> str | None:
        """Why the action cannot run yet (readable, final), or None."""
        if self.needs_company:
            deal = ctx.record.id
            if ctx.company is None:
                return (f"Deal {deal} has no associated company: associate a company that is a "
                        f"Kleer client, then re-enroll the deal")
            if not ctx.company.prop("kleer_id"):
                name = ctx.company.prop("name") or "(no name)"
                return (f"Company {ctx.company.id} ({name}) of deal {deal} is not a Kleer client yet "
                        f"(kleer_id is empty): create the Kleer client first")
        if self.operation == "update" and not ctx.record.prop(self.id_property):
            return (f"Deal {ctx.record.id} has no {self.id_property}: there is no Kleer agreement "
                    f"to update (create it first)")
        if self.reads_line_items and not ctx.line_items:
            # An invoice or agreement without rows is never what the user meant; an update
            # without rows would remove every row of the agreement.
            effect = (f"updating would remove every row of Kleer agreement "
                      f"{ctx.record.prop(self.id_property)}" if self.operation == "update"
                      else f"a Kleer {self.kleer_kind} needs at least one row")
            return (f"Deal {ctx.record.id} has no line items ({effect}): add the products or "
                    f"services as line items on the deal, then re-enroll it")
        return None


def foreign_id(portal_id: int, object_type: str, object_id: str | int, kind: str) -> str:
    """Deterministic Kleer `foreign-id` per HubSpot record and record kind.

    Both client actions share it, so a company never becomes two Kleer clients.
    """
    return f"hubspot:{portal_id}:{object_type.lower()}:{object_id}:{kind}"


def record_workflow_id(portal_id: int, kind: str, object_type: str, object_id: int | str) -> str:
    """One id per (portal, Kleer kind, HubSpot record): writes to it run one at a time. The
    key of the record's lease (and the id of its child workflow on workers without a database);
    the outbound sync writes an action's mirror under it too."""
    return f"kleer-{kind}-of-{object_type.lower()}-{object_id}-portal-{portal_id}"


__all__ = ["ActionContext", "ActionSpec", "SyncSpec", "InputError", "foreign_id",
           "record_workflow_id"]
