"""Field mappings for the "from mappings" actions: Kleer field <- HubSpot property (+ default).

Per portal, a JSON file `<MAPPINGS_DIR>/<portalId>.json` may override the defaults for a kind:
`{"client": [{"kleer": "name", "hubspot": "name", "default": null}, ...], "project": [...]}`.
A kind missing from the file keeps its defaults (actions.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

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


class MappingsError(ValueError):
    """A field-mappings file that cannot be used. Retrying cannot fix it, so it is final for the
    run (FAIL_CONTINUE naming the file and field), and the worker refuses to start with it."""


def mapping_problems(kind: str, mappings: list[FieldMapping]) -> list[str]:
    known = KLEER_FIELD_TO_INPUT.get(kind)
    if known is None:
        return [f'unknown kind "{kind}" (known: {", ".join(KLEER_FIELD_TO_INPUT)})']
    return [f'{kind}[{n}].kleer: unknown Kleer {kind} field "{m.kleer}" (known: {", ".join(known)})'
            for n, m in enumerate(mappings) if m.kleer not in known]


def read_mappings_file(path: Path) -> dict[str, list[FieldMapping]]:
    """A portal's mappings file, checked whole; MappingsError names the file and every field."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise MappingsError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise MappingsError(f"{path}: not JSON ({exc})") from None
    try:
        configured = _FILE.validate_python(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise MappingsError(f"{path}: " + "; ".join(problems) + ' (expected {"client": '
                            '[{"kleer": ..., "hubspot": ..., "default": ...}], "project": [...]})'
                            ) from None
    problems = [p for kind, mappings in configured.items() for p in mapping_problems(kind, mappings)]
    if problems:
        raise MappingsError(f"{path}: " + "; ".join(problems))
    return configured


def check_mappings_dir(mappings_dir: Path | None) -> list[str]:
    """Every problem of every mappings file (the worker checks them all at start)."""
    if mappings_dir is None:
        return []
    directory = Path(mappings_dir)
    if not directory.is_dir():
        return [f"MAPPINGS_DIR={directory}: not a directory"]
    problems = []
    for path in sorted(directory.glob("*.json")):
        if not path.stem.isdigit():
            problems.append(f"{path}: the file name must be <portalId>.json")
            continue
        try:
            read_mappings_file(path)
        except MappingsError as exc:
            problems.append(str(exc))
    return problems


def load_mappings(mappings_dir: Path | None, portal_id: int, kind: MappingKind) -> list[FieldMapping]:
    if mappings_dir is not None:
        path = Path(mappings_dir) / f"{portal_id}.json"
        if path.exists():
            configured = read_mappings_file(path)
            if kind in configured:
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
) -> tuple[dict[str, str | None], dict[str, str]]:
    """apply_mappings(), and why a required Name would be empty (both mapped kinds need one),
    for ActionInputs.parse() to report with every other problem."""
    values = apply_mappings(kind, mappings, record)
    why_missing = {}
    if not (values.get("name") or "").strip():
        prop = next((m.hubspot for m in mappings if m.kleer == "name"), None)
        why = (f'HubSpot property "{prop}" is empty and has no default' if prop
               else "no field mapping gives it a value")
        why_missing["name"] = f"{why} ({what} {record.id}, field mappings)"
    return values, why_missing
