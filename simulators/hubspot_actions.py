"""Validation of custom workflow action definitions, as strict as HubSpot's developer API.

Our publish command must not learn about a bad definition only in production, so the simulator
rejects the same mistakes (missing labels, bad enum options, bad URL) with a 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from simulators.hubspot_model import invalid

OBJECT_TYPES = {"CONTACT", "COMPANY", "DEAL", "TICKET", "QUOTE"}
FIELD_TYPES = {"string", "number", "bool", "enumeration", "date", "datetime", "phonenumber",
               "object_coordinates"}
FIELD_UI_TYPES = {"text", "textarea", "number", "select", "booleancheckbox", "date", "checkbox",
                  "radio"}
VALUE_TYPES = {"STATIC_VALUE", "OBJECT_PROPERTY", "FIELD_DATA"}
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def _check_url(url: Any) -> None:
    parsed = urlparse(url) if isinstance(url, str) else None
    ok = parsed is not None and bool(parsed.netloc) and (
        parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOCAL_HOSTS))
    if not ok:
        raise invalid(f"actionUrl must be an https URL, got {url!r}")


def _check_type_definition(field: Any, where: str, is_input: bool) -> str:
    if not isinstance(field, dict) or not isinstance(field.get("typeDefinition"), dict):
        raise invalid(f"{where}: typeDefinition is required")
    definition = field["typeDefinition"]
    name = definition.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}: typeDefinition.name is required")
    if definition.get("type") not in FIELD_TYPES:
        raise invalid(f"{where} ({name}): type {definition.get('type')!r} is not one of "
                      f"{sorted(FIELD_TYPES)}")
    if is_input and definition.get("fieldType") not in FIELD_UI_TYPES:
        raise invalid(f"{where} ({name}): fieldType {definition.get('fieldType')!r} is not one "
                      f"of {sorted(FIELD_UI_TYPES)}")
    if definition["type"] == "enumeration":
        options = definition.get("options")
        if not isinstance(options, list) or not options:
            raise invalid(f"{where} ({name}): options are required for an enumeration")
        for option in options:
            if not isinstance(option, dict) or not option.get("label") or "value" not in option:
                raise invalid(f"{where} ({name}): every option needs a label and a value")
    if is_input:
        value_types = field.get("supportedValueTypes", ["STATIC_VALUE"])
        if not isinstance(value_types, list) or not set(value_types) <= VALUE_TYPES:
            raise invalid(f"{where} ({name}): supportedValueTypes {value_types!r} must be a "
                          f"subset of {sorted(VALUE_TYPES)}")
    return name


def validate_definition(definition: Any) -> None:
    """Raise a VALIDATION_ERROR naming the first problem in an action definition."""
    if not isinstance(definition, dict):
        raise invalid("action definition must be an object")
    _check_url(definition.get("actionUrl"))
    object_types = definition.get("objectTypes")
    if not isinstance(object_types, list) or not object_types \
            or not set(object_types) <= OBJECT_TYPES:
        raise invalid(f"objectTypes must be a non-empty subset of {sorted(OBJECT_TYPES)}, "
                      f"got {object_types!r}")
    inputs = [_check_type_definition(f, f"inputFields[{i}]", True)
              for i, f in enumerate(definition.get("inputFields") or [])]
    outputs = [_check_type_definition(f, f"outputFields[{i}]", False)
               for i, f in enumerate(definition.get("outputFields") or [])]
    labels = definition.get("labels")
    english = labels.get("en") if isinstance(labels, dict) else None
    if not isinstance(english, dict) or not english.get("actionName"):
        raise invalid("labels.en.actionName is required")
    for kind, names in (("inputFieldLabels", inputs), ("outputFieldLabels", outputs)):
        given = english.get(kind) or {}
        missing = [n for n in names if n not in given]
        if missing:
            raise invalid(f"labels.en.{kind} is missing labels for {missing}")
