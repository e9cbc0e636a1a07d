"""Kleer resources as pydantic models; JSON keys are the XSD element names (kebab-case).

Money is an integer in cents/öre; quantities and percentages are decimals (sent as JSON numbers).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

JsonDecimal = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class KleerModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=lambda name: name.replace("_", "-"), populate_by_name=True, extra="ignore"
    )

    def payload(self) -> dict[str, Any]:
        """The JSON body for Kleer: aliases, and fields not given left out (Kleer defaults)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Ref(KleerModel):
    id: int


class Address(KleerModel):
    address1: str | None = None
    address2: str | None = None
    zip_code: str | None = None
    state: str | None = None
    country: str | None = None

    @classmethod
    def from_inputs(cls, inputs: object) -> Address | None:
        """From an action's address inputs (address1, address2, zip, state, country); None when
        none is given, so Kleer applies its default (an invoice gets the client's address)."""
        address = cls(address1=getattr(inputs, "address1", None),
                      address2=getattr(inputs, "address2", None), zip_code=getattr(inputs, "zip", None),
                      state=getattr(inputs, "state", None), country=getattr(inputs, "country", None))
        return None if not any(address.model_dump().values()) else address


class Discount(KleerModel):
    absolute: int | None = None
    percentage: JsonDecimal | None = None


class Row(KleerModel):
    description: str | None = None
    quantity: JsonDecimal = Decimal(1)
    price: int = 0
    unit: str | None = None
    product: Ref | None = None
    discount: Discount | None = None


class Client(KleerModel):
    foreign_id: str | None = None
    name: str
    contact: str | None = None
    address: Address | None = None
    email: str | None = None
    country_code: str | None = None
    payment_days: int | None = None
    orgno: str | None = None
    phone: str | None = None
    delivery_type: str | None = None
    vat_nr: str | None = None
    currency_type: str | None = None
    client_type: str | None = None


class Invoice(KleerModel):
    foreign_id: str | None = None
    client_ref: Ref
    invoice_date: date | None = None
    currency: str | None = None
    delivery_type: str | None = None
    invoice_address: Address | None = None
    po_nr: str | None = None
    your_reference: str | None = None
    rows: list[Row] = []


class AgreementHeader(KleerModel):
    """Header fields of an agreement: all optional, so an update can send only what is given."""

    description: str | None = None
    start_date: date | None = None
    start_invoice_date: date | None = None
    end_date: date | None = None
    your_reference: str | None = None
    currency: str | None = None
    payment_days: int | None = None
    invoice_interval_months: int | None = None
    invoice_day: str | None = None
    po_nr: str | None = None


class Agreement(AgreementHeader):
    foreign_id: str | None = None
    client_ref: Ref | None = None
    first_invoice_rows: list[Row] = []
    recurring_rows: list[Row] = []


class Project(KleerModel):
    client: Ref
    name: str
    number: str | None = None
    comment: str | None = None
    fixed_price: bool | None = None
    budget_hours: JsonDecimal | None = None
    budget_amount: int | None = None
    opening_date: date | None = None
