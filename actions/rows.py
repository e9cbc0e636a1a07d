"""HubSpot line items -> Kleer rows, and Kleer rows -> HubSpot line items (sync back).

Money is converted with Decimal only: `price` "1234.50" -> 123450 öre, rounded half-up once.
"""

from __future__ import annotations

from decimal import Decimal

from actions.fields import InputError, parse_decimal, to_cents
from hubspot_api.models import CrmObject
from kleer_api.models import Discount, Ref, Row

LINE_ITEM_PROPERTIES = (
    "name", "quantity", "price", "hs_product_id", "description", "discount",
    "hs_discount_percentage", "recurringbillingfrequency", "hs_recurring_billing_period",
)


def _number(item: CrmObject, prop: str, what: str) -> Decimal | None:
    try:
        return parse_decimal(item.prop(prop), what)
    except ValueError as exc:
        label = item.prop("name") or item.id
        raise InputError(f'Line item "{label}" {prop} "{item.prop(prop)}" {exc}') from None


def to_row(item: CrmObject, products: dict[str, int]) -> Row:
    quantity = _number(item, "quantity", "a number")
    price = _number(item, "price", "an amount (e.g. 1234.50)")
    percentage = _number(item, "hs_discount_percentage", "a percentage")
    absolute = _number(item, "discount", "an amount")
    label = item.prop("name") or item.id
    if percentage is not None and not (0 <= percentage <= 100):
        raise InputError(f'Line item "{label}" hs_discount_percentage "{percentage}" is not 0-100')
    discount = None
    if percentage:
        discount = Discount(percentage=percentage)
    elif absolute:
        discount = Discount(absolute=to_cents(absolute))
    product_id = item.prop("hs_product_id")
    return Row(
        description=item.prop("name") or item.prop("description"),
        quantity=Decimal(1) if quantity is None else quantity,
        price=0 if price is None else to_cents(price),
        product=Ref(id=products[product_id]) if product_id in products else None,
        discount=discount,
    )


def is_recurring(item: CrmObject) -> bool:
    return bool(item.prop("recurringbillingfrequency") or item.prop("hs_recurring_billing_period"))


def product_ids(items: list[CrmObject]) -> list[str]:
    return sorted({pid for item in items if (pid := item.prop("hs_product_id"))})


def _amount(cents: int | None) -> str:
    return str((Decimal(cents or 0) / 100).quantize(Decimal("0.01")))


def to_line_item(row: dict) -> dict[str, str]:
    """A Kleer row (as Kleer answers it) as HubSpot line item properties."""
    props = {
        "name": row.get("description") or "Kleer row",
        "quantity": str(row.get("quantity", 1)),
        "price": _amount(row.get("price")),
    }
    discount = row.get("discount") or {}
    if discount.get("percentage") is not None:
        props["hs_discount_percentage"] = str(discount["percentage"])
    elif discount.get("absolute") is not None:
        props["discount"] = _amount(discount["absolute"])
    return props
