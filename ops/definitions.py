"""The seven HubSpot custom workflow action definitions, generated from `actions.ACTIONS`.

Generated, not hand-written: the same pydantic input models parse executions at run time, so a
field added to a model can never be missing from (or differ from) what HubSpot shows the user.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from actions import ACTIONS
from actions.base import ActionSpec
from actions.fields import ActionInputs, HsType, hs_type
from actions.mappings import DEFAULTS
from hubspot_api.client import HubSpotClient

ACTION_PATH = "/hubspot/actions"
VALUE_TYPES = ["STATIC_VALUE", "OBJECT_PROPERTY"]
RESULTS = ("created", "updated", "skipped", "failed")

Outcome = Literal["created", "updated", "unchanged"]


def action_url(action_base_url: str, key: str) -> str:
    return f"{action_base_url.rstrip('/')}{ACTION_PATH}/{key}"


def _option_label(value: str) -> str:
    """`INVOICE_AT_START` reads better as "Invoice at start"; "Email" stays as it is."""
    if value.isupper() and "_" in value:
        return value.replace("_", " ").capitalize()
    return value


_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|\*)(?=\S)(.+?)(?<=\S)\1")  # not `_`: INVOICE_AT_START stays


def plain(text: str) -> str:
    """Markdown (written for the README's tables) as plain text: HubSpot shows definition texts
    literally, so `Mail` / `Email` must not arrive with its backticks."""
    text = _LINK.sub(r"\1", text).replace("`", "")
    return _EMPHASIS.sub(r"\2", text)


def describe(info: Any) -> str:
    """What a field accepts, for the HubSpot user: the type's rule plus the field's own note."""
    accepts = hs_type(info).accepts
    return plain(f"{accepts}; {info.description}" if info.description else accepts)


def _type_definition(name: str, hs: HsType) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": name, "type": hs.type, "fieldType": hs.field_type}
    if hs.type == "enumeration":
        definition["options"] = [{"label": _option_label(o), "value": o} for o in hs.options]
    elif hs.type == "bool":
        # parse_bool accepts these; options make HubSpot render a proper yes/no choice.
        definition["options"] = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
    return definition


def input_fields(model: type[ActionInputs] | None) -> list[dict[str, Any]]:
    """One HubSpot input per model field, in declaration order (the order users see)."""
    if model is None:
        return []
    fields = []
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        fields.append({
            "typeDefinition": _type_definition(name, hs_type(info)),
            "supportedValueTypes": list(VALUE_TYPES),
            "isRequired": bool(extra.get("required_input", False)),
        })
    return fields


def output_fields() -> list[dict[str, Any]]:
    """What every action returns (workflows.models.ActionResult.output_fields)."""
    return [
        {"typeDefinition": {"name": "kleer_id", "type": "string"}},
        {"typeDefinition": {"name": "result", "type": "enumeration",
                            "options": [{"label": r.capitalize(), "value": r} for r in RESULTS]}},
        {"typeDefinition": {"name": "error_message", "type": "string"}},
    ]


OUTPUT_LABELS = {"kleer_id": "Kleer ID", "result": "Result", "error_message": "Error Message"}


def _labels(spec: ActionSpec) -> dict[str, Any]:
    model = spec.inputs
    fields = model.model_fields if model is not None else {}
    english: dict[str, Any] = {
        "actionName": plain(spec.label),
        "actionDescription": plain(spec.description),
        "actionCardContent": plain(spec.description),
        "inputFieldLabels": {name: plain(info.title or name) for name, info in fields.items()},
        "outputFieldLabels": dict(OUTPUT_LABELS),
    }
    descriptions = {name: describe(info) for name, info in fields.items()
                    if describe(info) != "text"}
    if descriptions:
        english["inputFieldDescriptions"] = descriptions
    return {"en": english}


def build_definition(spec: ActionSpec, action_base_url: str, published: bool = True) -> dict[str, Any]:
    # Mapping actions: the app-wide definition can only name the default mappings' properties.
    # A portal with its own mappings still works: the workflow reads the record itself.
    mappings = list(DEFAULTS[spec.mapping_kind]) if spec.mapping_kind else []
    return {
        "actionUrl": action_url(action_base_url, spec.key),
        "published": published,
        "objectTypes": [spec.object_type],
        "objectRequestOptions": {"properties": spec.properties_to_read(mappings)},
        "inputFields": input_fields(spec.inputs),
        "outputFields": output_fields(),
        "labels": _labels(spec),
    }


def build_definitions(action_base_url: str, published: bool = True) -> list[dict[str, Any]]:
    """All action definitions, in `actions.ACTIONS` order."""
    return [build_definition(spec, action_base_url, published) for spec in ACTIONS.values()]


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Every key we send already has our value (HubSpot may add keys of its own)."""
    return all(existing.get(key) == value for key, value in wanted.items())


async def publish(
    client: HubSpotClient, app_id: int, action_base_url: str, published: bool = True
) -> list[tuple[str, Outcome, str]]:
    """Create or update the app's definitions so they match this code; safe to run repeatedly.

    Definitions are matched by `actionUrl` (our stable identity: HubSpot assigns the ids), so a
    second run PATCHes or skips instead of adding duplicates that users would see twice.
    `client` must authenticate as the developer (`HubSpotClient.for_developer`).
    Returns (action key, outcome, definition id) per action.
    """
    existing = {d.get("actionUrl"): d for d in await client.list_action_definitions(app_id)}
    report: list[tuple[str, Outcome, str]] = []
    for spec, wanted in zip(ACTIONS.values(), build_definitions(action_base_url, published),
                            strict=True):
        current = existing.get(wanted["actionUrl"])
        if current is None:
            created = await client.create_action_definition(app_id, wanted)
            report.append((spec.key, "created", str(created["id"])))
        elif _same(current, wanted):
            report.append((spec.key, "unchanged", str(current["id"])))
        else:
            await client.update_action_definition(app_id, str(current["id"]), wanted)
            report.append((spec.key, "updated", str(current["id"])))
    return report
