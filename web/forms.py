"""The settings pages' forms: what each accepts, and a clear message for what it does not.

Pure functions over the submitted fields (no I/O), so every rule is tested without a browser.
A form that fails comes back to the page with its messages and the values as typed, except the
Kleer API key, which is never sent back to the browser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from actions import ACTIONS
from actions.mappings import DEFAULTS, KLEER_FIELD_TO_INPUT, FieldMapping

MAX_ROWS = 60
MAX_DEFAULT_CHARS = 500
MAX_KEY_CHARS = 500
# HubSpot internal property names: lower-case letters, digits and underscores (custom ones may
# also carry a dash in some portals), starting with a letter.
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,99}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# The HubSpot record each kind of mapping reads, and the standard action whose input labels and
# rules the mapped values go through.
OBJECT_OF_KIND = {"client": "companies", "project": "deals"}
ACTION_OF_KIND = {"client": "create-client", "project": "create-project"}
# Both mapped actions need a name: a mapping set without one cannot create anything.
REQUIRED_FIELDS = {"client": ("name",), "project": ("name",)}


def kleer_field_labels(kind: str) -> dict[str, str]:
    """Kleer field -> "Name (name)", in the order the action lists its inputs."""
    inputs = ACTIONS[ACTION_OF_KIND[kind]].inputs
    titles = {name: info.title or name for name, info in (inputs.model_fields.items()
                                                          if inputs else [])}
    return {kleer: f"{titles.get(input_name, kleer)} ({kleer})"
            for kleer, input_name in KLEER_FIELD_TO_INPUT[kind].items()}


@dataclass
class KleerForm:
    company_id: str = ""
    errors: list[str] = field(default_factory=list)


def parse_kleer_form(form: Mapping[str, str]) -> tuple[KleerForm, int | None, str | None]:
    """(what to show again, company id, API key); the id and key are None when a check failed."""
    raw_company = (form.get("company_id") or "").strip()
    api_key = (form.get("api_key") or "").strip()
    shown = KleerForm(company_id=raw_company[:40])
    company_id = None
    if not raw_company:
        shown.errors.append("Kleer company id is required: the number of your company in Kleer "
                            "(Kleer support or Settings → API gives it).")
    elif not raw_company.isdigit() or int(raw_company) < 1 or len(raw_company) > 12:
        shown.errors.append(f'Kleer company id "{raw_company[:40]}" is not a whole number ≥ 1.')
    else:
        company_id = int(raw_company)
    if not api_key:
        shown.errors.append("Kleer API key is required (the token Kleer issued for this company).")
    elif len(api_key) > MAX_KEY_CHARS or any(c.isspace() for c in api_key) or _CONTROL.search(api_key):
        shown.errors.append(f"Kleer API key is not a key: it must be one word of at most "
                            f"{MAX_KEY_CHARS} characters, without spaces (paste it again).")
        api_key = ""
    if shown.errors:
        return shown, None, None
    return shown, company_id, api_key


@dataclass
class MappingRow:
    kleer: str = ""
    hubspot: str = ""
    default: str = ""


@dataclass
class MappingsForm:
    kind: str
    rows: list[MappingRow]
    errors: list[str] = field(default_factory=list)


def rows_of(mappings: list[FieldMapping]) -> list[MappingRow]:
    return [MappingRow(m.kleer, m.hubspot, m.default or "") for m in mappings]


def default_rows(kind: str) -> list[MappingRow]:
    return rows_of(DEFAULTS[kind])


def parse_mappings_form(kind: str, form: Mapping[str, str]
                        ) -> tuple[MappingsForm, list[FieldMapping] | None]:
    """The rows `rows-<n>-kleer`, `rows-<n>-hubspot`, `rows-<n>-default` (`rows-<n>-remove`
    drops a row; a row left wholly empty is ignored), in the order of n. Returns the form to show
    again and the mappings to save (None when anything is wrong: nothing is saved then)."""
    known = KLEER_FIELD_TO_INPUT[kind]
    labels = kleer_field_labels(kind)
    numbers = sorted({int(m.group(1)) for key in form
                      if (m := re.fullmatch(r"rows-(\d{1,4})-(kleer|hubspot|default|remove)", key))})
    shown = MappingsForm(kind, [])
    errors = shown.errors
    if len(numbers) > MAX_ROWS:
        errors.append(f"At most {MAX_ROWS} rows can be saved; remove some.")
        numbers = numbers[:MAX_ROWS]
    seen: dict[str, int] = {}
    mappings: list[FieldMapping] = []
    for n in numbers:
        kleer = (form.get(f"rows-{n}-kleer") or "").strip()
        hubspot = (form.get(f"rows-{n}-hubspot") or "").strip()
        default = (form.get(f"rows-{n}-default") or "").strip()
        if form.get(f"rows-{n}-remove") or not (kleer or hubspot or default):
            continue
        shown.rows.append(MappingRow(kleer[:100], hubspot[:100], default[:MAX_DEFAULT_CHARS]))
        where = f"Row {len(shown.rows)}"
        if not kleer:
            errors.append(f"{where}: choose the Kleer field.")
        elif kleer not in known:
            errors.append(f'{where}: "{kleer[:100]}" is not a Kleer {kind} field (known: '
                          f"{', '.join(known)}).")
        elif kleer in seen:
            errors.append(f"{where}: {labels[kleer]} is already mapped in row {seen[kleer]}; "
                          "a Kleer field takes one HubSpot property.")
        else:
            seen[kleer] = len(shown.rows)
        if not hubspot:
            errors.append(f"{where}: choose the HubSpot property to read"
                          + (f" for {labels[kleer]}." if kleer in known else "."))
        elif not PROPERTY_NAME.match(hubspot):
            errors.append(f'{where}: "{hubspot[:100]}" is not a HubSpot property name (lower-case '
                          "letters, digits and underscores).")
        if len(default) > MAX_DEFAULT_CHARS:
            errors.append(f"{where}: the default value is longer than {MAX_DEFAULT_CHARS} "
                          "characters.")
        elif _CONTROL.search(default):
            errors.append(f"{where}: the default value holds control characters.")
        mappings.append(FieldMapping(kleer=kleer, hubspot=hubspot, default=default or None))
    for required in REQUIRED_FIELDS[kind]:
        if required not in {row.kleer for row in shown.rows}:
            errors.append(f"{labels[required]} needs a mapping: Kleer cannot create a {kind} "
                          "without it.")
    return shown, (None if errors else mappings)
