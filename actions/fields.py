"""Input field types: parse HubSpot's text inputs into Kleer values, with messages a user can act on.

Every HubSpot input is text. Each type here is an `Annotated` pydantic type carrying an `HsType`
marker, so the same declaration parses executions and generates the HubSpot action definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError


class InputError(ValueError):
    """Bad input: final for the execution, reported as FAIL_CONTINUE, nothing written."""


@dataclass(frozen=True)
class HsType:
    """How a field appears in the HubSpot action definition."""

    type: str = "string"
    field_type: str = "text"
    options: tuple[str, ...] = ()
    accepts: str = "text"  # for people: README and the definitions' descriptions


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(value: Any) -> str | None:
    return None if _blank(value) else str(value).strip()


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: Any) -> date | None:
    if _blank(value):
        return None
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if _DATE.match(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise ValueError("is not a date (YYYY-MM-DD)")


# Spaces people put between digit groups: plain, no-break and narrow no-break (Swedish "1 234,50").
_GROUP_SPACES = str.maketrans("", "", " \u00a0\u202f")
_PLAIN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DECIMAL_COMMA = re.compile(r"([+-]?\d+),(\d{1,2}|\d{4,})")  # 12,5  12,50  0,3333: not 1,234
_DOTS_THEN_COMMA = re.compile(r"([+-]?\d{1,3}(?:\.\d{3})+),(\d+)")  # 1.234,50
_COMMAS_THEN_DOT = re.compile(r"([+-]?\d{1,3}(?:,\d{3})+)\.(\d+)")  # 1,234.50


def _normalise_number(text: str) -> str:
    """A number as typed, with a decimal point. Swedish users type decimal commas (`12,5`) and
    group digits with spaces; both are read where they are unambiguous. `1,234` could be 1.234 or
    1234, so it is refused with a message instead of guessed."""
    text = text.translate(_GROUP_SPACES)
    if _PLAIN.fullmatch(text):
        return text
    if m := _DECIMAL_COMMA.fullmatch(text):
        return f"{m[1]}.{m[2]}"
    if m := _DOTS_THEN_COMMA.fullmatch(text):
        return f"{m[1].replace('.', '')}.{m[2]}"
    if m := _COMMAS_THEN_DOT.fullmatch(text):
        return f"{m[1].replace(',', '')}.{m[2]}"
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", text):
        plain = text.replace(",", "")
        raise ValueError(f"is ambiguous: write {plain} or {text.replace(',', '.', 1)}"
                         if text.count(",") == 1 else f"is ambiguous: write {plain}")
    raise ValueError


def parse_decimal(value: Any, what: str = "a number") -> Decimal | None:
    if _blank(value):
        return None
    try:
        number = Decimal(_normalise_number(str(value).strip()))
    except ValueError as exc:
        if str(exc):
            raise
        raise ValueError(f"is not {what}") from None
    except InvalidOperation:
        raise ValueError(f"is not {what}") from None
    if not number.is_finite():
        raise ValueError(f"is not {what}")
    return number


MAX_CENTS = 2**63 - 1  # Kleer money is xs:long


def to_cents(amount: Decimal) -> int:
    """Currency units to integer cents/öre, rounding half-up once (never via float)."""
    cents = int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(cents) > MAX_CENTS:
        raise ValueError("is too large an amount")
    return cents


def parse_money(value: Any) -> int | None:
    amount = parse_decimal(value, "an amount (e.g. 1234.50)")
    return None if amount is None else to_cents(amount)


def _whole(minimum: int):
    def parse(value: Any) -> int | None:
        number = parse_decimal(value, f"a whole number ≥ {minimum}")
        if number is None:
            return None
        if number != number.to_integral_value() or number < minimum:
            raise ValueError(f"is not a whole number ≥ {minimum}")
        return int(number)

    return parse


def _non_negative(value: Any) -> Decimal | None:
    number = parse_decimal(value, "a number ≥ 0")
    if number is not None and number < 0:
        raise ValueError("is not a number ≥ 0")
    return number


_TRUE, _FALSE = {"true", "yes", "1", "ja"}, {"false", "no", "0", "nej"}


def parse_bool(value: Any) -> bool | None:
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError("is not true or false (yes/no also accepted)")


def _one_of(options: tuple[str, ...]):
    by_lower = {o.lower(): o for o in options}

    def parse(value: Any) -> str | None:
        text = _text(value)
        if text is None:
            return None
        try:
            return by_lower[text.lower()]
        except KeyError:
            raise ValueError(f"is not one of: {', '.join(options)}") from None

    return parse


def _currency(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{3}", text):
        raise ValueError("is not a 3-letter currency code (e.g. SEK, EUR, USD)")
    return text.upper()


def _country_code(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise ValueError("is not a 2-letter ISO 3166 country code (e.g. SE)")
    return text.upper()


# --- The field types actions declare ---------------------------------------------------------
Text = Annotated[str | None, BeforeValidator(_text), HsType()]
DateInput = Annotated[date | None, BeforeValidator(parse_date),
                      HsType("date", "date", accepts="date YYYY-MM-DD")]
Money = Annotated[int | None, BeforeValidator(parse_money),
                  HsType("number", "number", accepts="amount in currency units, e.g. 1234.50 or 1234,50")]
Decimal0 = Annotated[Decimal | None, BeforeValidator(_non_negative),
                     HsType("number", "number", accepts="number ≥ 0, e.g. 12.5 or 12,5")]
Whole0 = Annotated[int | None, BeforeValidator(_whole(0)),
                   HsType("number", "number", accepts="whole number ≥ 0")]
Whole1 = Annotated[int | None, BeforeValidator(_whole(1)),
                   HsType("number", "number", accepts="whole number ≥ 1")]
Bool = Annotated[bool | None, BeforeValidator(parse_bool),
                 HsType("bool", "booleancheckbox", accepts="true/false (also yes/no)")]
CountryCode = Annotated[str | None, BeforeValidator(_country_code),
                        HsType(accepts="ISO 3166 alpha-2 code, e.g. SE")]

CURRENCIES = ("SEK", "EUR", "USD", "NOK", "DKK", "GBP")
# Currency accepts any 3-letter code the Kleer account supports; the options are suggestions.
Currency = Annotated[str | None, BeforeValidator(_currency),
                     HsType(accepts="3-letter code: SEK, EUR, USD, NOK, DKK, GBP or another your "
                                    "Kleer account supports")]


def one_of(*options: str) -> Any:
    return Annotated[str | None, BeforeValidator(_one_of(options)),
                     HsType("enumeration", "select", options,
                            accepts=" / ".join(f"`{o}`" for o in options) + " (any case)")]


DeliveryType = one_of("Mail", "Email", "Manually", "Svefaktura")
ClientType = one_of("Organisation", "Person")
InvoiceDay = one_of(
    "INVOICE_AT_START", "PAY_AT_START", "INVOICE_AT_END", "INVOICE_AT_START_MONTH",
    "INVOICE_AT_END_MONTH", "INVOICE_60_DAYS_PRIOR_TO_PERIOD_START",
    "INVOICE_ONE_DAY_PRIOR_TO_PERIOD_START", "INVOICE_FIVE_DAYS_PRIOR_TO_PERIOD_START",
)


def field(label: str, required: bool = False, description: str | None = None) -> Any:
    return Field(default=None, title=label, description=description,
                 json_schema_extra={"required_input": required})


class ActionInputs(BaseModel):
    """Base of every action's inputs: parse() turns HubSpot's text fields into typed values."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def parse(cls, raw: dict[str, str | None], source: str = "",
              why_missing: dict[str, str] | None = None) -> Self:
        """Validate raw inputs, reporting every problem at once (not one per try).

        `source` is appended to messages, e.g. " (from field mappings)"; `why_missing` explains a
        required field that is empty (e.g. which HubSpot property a mapping read)."""
        problems: list[str] = []
        bad: set[str] = set()
        try:
            parsed = cls.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                name = str(err["loc"][0]) if err["loc"] else ""
                bad.add(name)
                info = cls.model_fields.get(name)
                label = info.title if info and info.title else name
                reason = str(err.get("ctx", {}).get("error") or err["msg"])
                problems.append(f'{label} "{err["input"]}" {reason}{source}')
            # Check the rest with the fields that did parse, so one message names everything.
            parsed = cls.model_validate({k: v for k, v in raw.items() if k not in bad})
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra or {}
            if isinstance(extra, dict) and extra.get("required_input") and name not in bad \
                    and getattr(parsed, name) is None:
                why = (why_missing or {}).get(name)
                problems.append(f"{info.title} is required: {why}" if why
                                else f"{info.title} is required{source}")
        problems += [p + source for p in parsed.problems()]
        if problems:
            raise InputError("; ".join(problems))
        return parsed

    def problems(self) -> list[str]:
        """Cross-field rules (e.g. end date after start date), each broken one as a message."""
        return []


def hs_type(info: Any) -> HsType:
    """The HsType marker of a model field (FieldInfo)."""
    return next((m for m in info.metadata if isinstance(m, HsType)), HsType())


def reference_markdown(actions: dict) -> str:
    """The user-facing reference of every action's inputs (README "Actions"), from the models."""
    from actions.mappings import DEFAULTS

    out = []
    for spec in actions.values():
        out.append(f"#### {spec.label}\n\n`POST /hubspot/actions/{spec.key}` · enrolled: "
                   f"{spec.object_type.lower()} · writes `{spec.id_property}`\n\n{spec.description}\n")
        if spec.inputs is None:
            pairs = ", ".join(f"`{m.kleer}` ← `{m.hubspot}`" for m in DEFAULTS[spec.mapping_kind])
            out.append(f"No inputs: the values come from the portal's *{spec.mapping_kind}* field "
                       f"mappings. Defaults: {pairs}.\n")
            continue
        out.append("| Input | Name | Accepts |\n|---|---|---|")
        for name, info in spec.inputs.model_fields.items():
            required = " (required)" if (info.json_schema_extra or {}).get("required_input") else ""
            accepts = hs_type(info).accepts
            if info.description:
                accepts += f"; {info.description}"
            out.append(f"| {info.title}{required} | `{name}` | {accepts} |")
        out.append("")
    return "\n".join(out)
