"""Kleer field validation: turns a request body into the stored record or raises `KleerError`.

Mirrors what Kleer rejects (required fields, dates, enums, money in integer cents, references to
existing clients/products) with a `<field>: <problem>` message. Unknown keys are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any


class KleerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


DELIVERY_TYPES = ("Mail", "Email", "Manually", "Svefaktura")
CLIENT_TYPES = ("Organisation", "Person")
INVOICE_DAYS = (
    "INVOICE_AT_START", "PAY_AT_START", "INVOICE_AT_END", "INVOICE_AT_START_MONTH",
    "INVOICE_AT_END_MONTH", "INVOICE_60_DAYS_PRIOR_TO_PERIOD_START",
    "INVOICE_ONE_DAY_PRIOR_TO_PERIOD_START", "INVOICE_FIVE_DAYS_PRIOR_TO_PERIOD_START",
)
ADDRESS_FIELDS = ("address1", "address2", "zip-code", "state", "country")

Exists = Callable[[int], bool]


def bad(field: str, problem: str) -> KleerError:
    return KleerError(400, f"{field}: {problem}")


def _given(body: dict, key: str) -> bool:
    return key in body and body[key] is not None


def text(body: dict, key: str, out: dict, required: bool = False) -> None:
    if not _given(body, key):
        if required:
            raise bad(key, "is required")
        return
    value = body[key]
    if not isinstance(value, str):
        raise bad(key, f"must be a string, got {value!r}")
    if required and not value.strip():
        raise bad(key, "must not be empty")
    out[key] = value


def pattern(body: dict, key: str, out: dict, regex: str, what: str) -> None:
    """Optional string matching `regex`; an empty string means "not given" (account default)."""
    if not _given(body, key) or body[key] == "":
        return
    value = body[key]
    if not isinstance(value, str) or not re.fullmatch(regex, value):
        raise bad(key, f"{value!r} is not {what}")
    out[key] = value


def enum(body: dict, key: str, out: dict, allowed: tuple[str, ...]) -> None:
    if not _given(body, key) or body[key] == "":
        return
    if body[key] not in allowed:
        raise bad(key, f"{body[key]!r} is not one of {', '.join(allowed)}")
    out[key] = body[key]


def integer(body: dict, key: str, out: dict, minimum: int | None = None, what: str = "") -> None:
    if not _given(body, key):
        return
    value = body[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(key, f"must be an integer{what}, got {value!r}")
    if minimum is not None and value < minimum:
        raise bad(key, f"must be >= {minimum}, got {value}")
    out[key] = value


def number(body: dict, key: str, out: dict, low: float | None = None,
           high: float | None = None) -> None:
    if not _given(body, key):
        return
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(key, f"must be a number, got {value!r}")
    if low is not None and value < low:
        raise bad(key, f"must be >= {low}, got {value}")
    if high is not None and value > high:
        raise bad(key, f"must be <= {high}, got {value}")
    out[key] = value


def boolean(body: dict, key: str, out: dict) -> None:
    if not _given(body, key):
        return
    if not isinstance(body[key], bool):
        raise bad(key, f"must be true or false, got {body[key]!r}")
    out[key] = body[key]


def a_date(body: dict, key: str, out: dict) -> None:
    if not _given(body, key):
        return
    value = body[key]
    try:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        date.fromisoformat(value)
    except ValueError:
        raise bad(key, f"{value!r} is not a date (YYYY-MM-DD)") from None
    out[key] = value


def reference(body: dict, key: str, out: dict, exists: Exists, kind: str,
              required: bool = False) -> None:
    if not _given(body, key):
        if required:
            raise bad(key, "is required")
        return
    ref = body[key]
    ref_id = ref.get("id") if isinstance(ref, dict) else None
    if isinstance(ref_id, bool) or not isinstance(ref_id, int):
        raise bad(key, f"must be an object with an integer id, got {ref!r}")
    if not exists(ref_id):
        raise bad(key, f"{kind} {ref_id} does not exist")
    out[key] = {"id": ref_id}


def address(body: dict, key: str, out: dict) -> None:
    if not _given(body, key):
        return
    value = body[key]
    if not isinstance(value, dict):
        raise bad(key, f"must be an object, got {value!r}")
    clean: dict[str, Any] = {}
    for field in ADDRESS_FIELDS:
        text(value, field, clean)
    out[key] = clean


def client(body: dict, create: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("foreign-id", "contact", "orgno", "phone", "vat-nr", "gln"):
        text(body, key, out)
    if create or "name" in body:
        text(body, "name", out, required=True)
    address(body, "address", out)
    pattern(body, "email", out, r"[^@\s]+@[^@\s]+", "an email address")
    pattern(body, "country-code", out, r"[A-Z]{2}", "an ISO 3166 alpha-2 code (e.g. SE)")
    pattern(body, "currency-type", out, r"[A-Z]{3}", "a 3-letter currency code (e.g. SEK)")
    integer(body, "payment-days", out, minimum=0)
    enum(body, "delivery-type", out, DELIVERY_TYPES)
    enum(body, "client-type", out, CLIENT_TYPES)
    boolean(body, "active", out)
    if create:
        out.setdefault("active", True)
    return out


def row(value: Any, where: str, product_exists: Exists) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(where, f"must be an object, got {value!r}")
    out: dict[str, Any] = {}
    try:
        text(value, "description", out)
        text(value, "unit", out)
        number(value, "quantity", out)
        integer(value, "price", out, what=" (cents)")
        reference(value, "product", out, product_exists, "product")
        discount = value.get("discount")
        if discount is not None:
            if not isinstance(discount, dict) or ("absolute" in discount) == (
                    "percentage" in discount):
                raise bad("discount", "give exactly one of absolute or percentage")
            clean: dict[str, Any] = {}
            integer(discount, "absolute", clean, what=" (cents)")
            number(discount, "percentage", clean, 0, 100)
            out["discount"] = clean
    except KleerError as exc:
        raise KleerError(400, f"{where}.{exc.message}") from None
    return out


def rows(body: dict, key: str, out: dict, product_exists: Exists) -> None:
    """Row lists; the XSD wraps them as {"row": [...]}, so that form is accepted too."""
    if not _given(body, key):
        return
    value = body[key]
    if isinstance(value, dict) and "row" in value:
        value = value["row"]
    if not isinstance(value, list):
        raise bad(key, f"must be a list of rows, got {value!r}")
    out[key] = [row(r, f"{key}[{i}]", product_exists) for i, r in enumerate(value)]


def invoice(body: dict, client_exists: Exists, product_exists: Exists) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("foreign-id", "po-nr", "your-reference"):
        text(body, key, out)
    reference(body, "client-ref", out, client_exists, "client", required=True)
    a_date(body, "invoice-date", out)
    pattern(body, "currency", out, r"[A-Z]{3}", "a 3-letter currency code (e.g. SEK)")
    enum(body, "delivery-type", out, DELIVERY_TYPES)
    address(body, "invoice-address", out)
    rows(body, "rows", out, product_exists)
    out.setdefault("invoice-date", date.today().isoformat())
    out.setdefault("currency", "SEK")
    out.setdefault("rows", [])
    return out


def agreement(body: dict, create: bool, client_exists: Exists,
              product_exists: Exists) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("foreign-id", "description", "your-reference", "po-nr"):
        text(body, key, out)
    reference(body, "client-ref", out, client_exists, "client", required=create)
    for key in ("start-date", "start-invoice-date", "end-date"):
        a_date(body, key, out)
    pattern(body, "currency", out, r"[A-Z]{3}", "a 3-letter currency code (e.g. SEK)")
    integer(body, "payment-days", out, minimum=0)
    integer(body, "invoice-interval-months", out, minimum=1)
    enum(body, "invoice-day", out, INVOICE_DAYS)
    rows(body, "first-invoice-rows", out, product_exists)
    rows(body, "recurring-rows", out, product_exists)
    return out


def check_agreement_dates(record: dict[str, Any]) -> None:
    end = record.get("end-date")
    for start_key in ("start-date", "start-invoice-date"):
        start = record.get(start_key)
        if end and start and end < start:
            raise bad("end-date", f"{end} is before {start_key} {start}")


def project(body: dict, create: bool, client_exists: Exists) -> dict[str, Any]:
    out: dict[str, Any] = {}
    reference(body, "client", out, client_exists, "client", required=create)
    if create or "name" in body:
        text(body, "name", out, required=True)
    text(body, "number", out)
    text(body, "comment", out)
    boolean(body, "fixed-price", out)
    number(body, "budget-hours", out, low=0)
    integer(body, "budget-amount", out, what=" (cents)")
    a_date(body, "opening-date", out)
    if create:
        out.setdefault("fixed-price", False)
        out.setdefault("active", True)
    return out
