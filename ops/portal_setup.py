"""Prepare one HubSpot portal for the actions and check its Kleer credentials.

The actions write Kleer ids into custom properties, and the immediate sync back upserts HubSpot
invoices/subscriptions by a unique `kleer_id`: without these properties every execution would
fail. Creating them is idempotent (existing ones are left untouched, never redefined), so the
command is safe to run on every install or upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hubspot_api.client import HubSpotClient
from kleer_api.client import KleerClient
from service_errors import ServiceError

GROUP = {"name": "kleer", "label": "Kleer", "displayOrder": -1}


@dataclass(frozen=True)
class KleerProperty:
    object_type: str
    name: str
    label: str
    unique: bool = False

    def definition(self) -> dict[str, object]:
        return {"name": self.name, "label": self.label, "type": "string", "fieldType": "text",
                "groupName": GROUP["name"], "hasUniqueValue": self.unique,
                "description": "Set by the Kleer workflow actions; do not edit."}


PROPERTIES: tuple[KleerProperty, ...] = (
    KleerProperty("companies", "kleer_id", "Kleer ID"),
    KleerProperty("deals", "kleer_invoice_id", "Kleer Invoice ID"),
    KleerProperty("deals", "kleer_agreement_id", "Kleer Agreement ID"),
    KleerProperty("deals", "kleer_project_id", "Kleer Project ID"),
    # Unique: the sync back upserts these objects with idProperty=kleer_id.
    KleerProperty("invoices", "kleer_id", "Kleer ID", unique=True),
    KleerProperty("subscriptions", "kleer_id", "Kleer ID", unique=True),
)
# Every object type that gets a property also gets the "Kleer" group to hold it.
OBJECT_TYPES = tuple(dict.fromkeys(p.object_type for p in PROPERTIES))

Status = Literal["created", "exists", "failed"]


@dataclass
class Step:
    what: str
    status: Status
    detail: str = ""


@dataclass
class SetupReport:
    portal_id: int | None = None
    steps: list[Step] = field(default_factory=list)
    kleer_ok: bool = False
    kleer_detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kleer_ok and all(s.status != "failed" for s in self.steps)

    def created(self) -> list[str]:
        return [s.what for s in self.steps if s.status == "created"]

    def __str__(self) -> str:
        title = f"Portal {self.portal_id}" if self.portal_id is not None else "Portal"
        lines = [f"{title} setup:"]
        lines += [f"  {s.status:<8} {s.what}" + (f"  ({s.detail})" if s.detail else "")
                  for s in self.steps]
        lines.append(f"  {'ok' if self.kleer_ok else 'failed':<8} Kleer credentials"
                     + (f"  ({self.kleer_detail})" if self.kleer_detail else ""))
        lines.append("Result: " + ("ready" if self.ok else "NOT ready, see above"))
        return "\n".join(lines)


async def _ensure(what: str, exists: bool, create) -> Step:
    """Create unless present; a 409 means someone else created it meanwhile: also fine."""
    if exists:
        return Step(what, "exists")
    try:
        await create()
    except ServiceError as exc:
        if exc.status == 409:
            return Step(what, "exists")
        return Step(what, "failed", str(exc))
    return Step(what, "created")


async def setup_hubspot(hubspot: HubSpotClient, report: SetupReport) -> None:
    for object_type in OBJECT_TYPES:
        try:
            groups = {g.get("name") for g in await hubspot.list_property_groups(object_type)}
            existing = {p.get("name"): p for p in await hubspot.list_properties(object_type)}
        except ServiceError as exc:
            report.steps.append(Step(f"{object_type}: read properties", "failed", str(exc)))
            continue
        group_step = await _ensure(
            f"{object_type}: property group {GROUP['name']}", GROUP["name"] in groups,
            lambda t=object_type: hubspot.create_property_group(t, GROUP))
        report.steps.append(group_step)
        for prop in (p for p in PROPERTIES if p.object_type == object_type):
            what = f"{object_type}: property {prop.name}" + (" (unique)" if prop.unique else "")
            current = existing.get(prop.name)
            if current is not None and prop.unique and not current.get("hasUniqueValue"):
                # Upserts by kleer_id need uniqueness; we do not redefine a property in use.
                report.steps.append(Step(what, "failed", "exists without unique values: "
                                                         "recreate it with hasUniqueValue"))
                continue
            if group_step.status == "failed" and current is None:
                report.steps.append(Step(what, "failed", "its property group is missing"))
                continue
            report.steps.append(await _ensure(
                what, current is not None,
                lambda p=prop: hubspot.create_property(p.object_type, p.definition())))


async def check_kleer(kleer: KleerClient, report: SetupReport) -> None:
    """A harmless read proves the company id and API key before any workflow depends on them."""
    try:
        products = await kleer.list_all("product")
    except ServiceError as exc:
        report.kleer_ok, report.kleer_detail = False, str(exc)
        return
    report.kleer_ok, report.kleer_detail = True, f"{len(products)} products readable"


async def setup_portal(hubspot: HubSpotClient, kleer: KleerClient,
                       portal_id: int | None = None) -> SetupReport:
    """Create the Kleer property groups/properties if missing, then check the Kleer credentials.

    Existing properties are reported as "exists" and never changed: an operator may have
    relabelled them, and HubSpot refuses to change uniqueness of a property that holds values.
    """
    report = SetupReport(portal_id=portal_id)
    await setup_hubspot(hubspot, report)
    await check_kleer(kleer, report)
    return report
