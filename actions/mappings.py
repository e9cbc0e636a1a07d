"""Field mappings for the "from mappings" actions: Kleer field <- HubSpot property (+ default).

Per portal, a JSON file `<MAPPINGS_DIR>/<portalId>.json` may override the defaults for a kind:
`{"client": [{"kleer": "name", "hubspot": "name", "default": null}, ...], "project": [...]}`.
A kind missing from the file keeps its defaults (actions.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter

from actions.fields import InputError
from hubspot_api.models import CrmObject

MappingKind = Literal["client", "project"]


class FieldMapping(BaseModel):
    kleer: str
    hubspot: str
    default: str | None = None


def _m(pairs: list[tuple[str, str]]) -> list[FieldMapping]:
    return [FieldMapping(kleer=k, hubspot=h) for k, h in pairs]


DEFAULTS: dict[str, list[FieldMapping]] = {
    "client": _m([
        ("name", "name"), ("orgno", "orgno"), ("email", "kleer_email"), ("phone", "phone"),
        ("address.address1", "address"), ("address.address2", "address2"),
        ("address.zip-code", "zip"), ("address.state", "state"), ("address.country", "country"),
        ("vat-nr", "vat_number"), ("currency-type", "kleer_currency"),
        ("delivery-type", "kleer_delivery_method"), ("payment-days", "kleer_payment_days"),
    ]),
    "project": _m([
        ("name", "dealname"), ("comment", "description"), ("opening-date", "closedate"),
        ("budget-amount", "amount"),
    ]),
}

# Kleer field -> the input of the standard action that parses it, so both variants share one
# set of validation rules and messages.
KLEER_FIELD_TO_INPUT: dict[str, dict[str, str]] = {
    "client": {
        "name": "name", "orgno": "orgno", "email": "email", "phone": "phone",
        "address.address1": "address1", "address.address2": "address2", "address.zip-code": "zip",
        "address.state": "state", "address.country": "country", "country-code": "country_code",
        "vat-nr": "vat_number", "client-type": "client_type", "currency-type": "currency",
        "delivery-type": "delivery_type", "payment-days": "payment_days", "contact": "contact",
    },
    "project": {
        "name": "name", "number": "number", "comment": "comment", "fixed-price": "fixed_price",
        "budget-hours": "budget_hours", "budget-amount": "budget_amount",
        "opening-date": "opening_date",
    },
}

_FILE = TypeAdapter(dict[str, list[FieldMapping]])


def validate_mappings(kind: MappingKind, mappings: list[FieldMapping]) -> None:
    known = KLEER_FIELD_TO_INPUT[kind]
    for m in mappings:
        if m.kleer not in known:
            raise ValueError(f"unknown Kleer {kind} field {m.kleer!r} (known: {', '.join(known)})")


def load_mappings(mappings_dir: Path | None, portal_id: int, kind: MappingKind) -> list[FieldMapping]:
    if mappings_dir is not None:
        path = Path(mappings_dir) / f"{portal_id}.json"
        if path.exists():
            configured = _FILE.validate_python(json.loads(path.read_text()))
            if kind in configured:
                validate_mappings(kind, configured[kind])
                return configured[kind]
    return list(DEFAULTS[kind])


def apply_mappings(
    kind: MappingKind, mappings: list[FieldMapping], record: CrmObject
) -> dict[str, str | None]:
    """The standard action's raw inputs, filled from the record's properties."""
    inputs: dict[str, str | None] = {}
    for m in mappings:
        value = record.prop(m.hubspot) or m.default
        if value and m.kleer == "opening-date" and "T" in value:
            value = value.split("T", 1)[0]  # HubSpot date-times: keep the date part
        inputs[KLEER_FIELD_TO_INPUT[kind][m.kleer]] = value
    return inputs


def mapped_inputs(
    kind: MappingKind, mappings: list[FieldMapping], record: CrmObject, what: str
) -> dict[str, str | None]:
    """apply_mappings(), insisting on a non-empty Name (both mapped kinds require one)."""
    values = apply_mappings(kind, mappings, record)
    if not (values.get("name") or "").strip():
        prop = next((m.hubspot for m in mappings if m.kleer == "name"), None)
        why = (f'HubSpot property "{prop}" is empty and has no default' if prop
               else "no field mapping gives it a value")
        raise InputError(f"Name is required: {why} ({what} {record.id}, field mappings)")
    return values
