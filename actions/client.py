"""Create Kleer Client (company workflows): inputs, and their mapping to a Kleer client."""

from __future__ import annotations

from actions.base import ActionContext, ActionSpec, foreign_id
from actions.fields import (
    ActionInputs,
    ClientType,
    CountryCode,
    Currency,
    DeliveryType,
    Text,
    Whole0,
    field,
)
from kleer_api.models import Address, Client


class ClientInputs(ActionInputs):
    name: Text = field("Name", required=True)
    orgno: Text = field("Organization Number", description="Kleer orgno, e.g. 556677-8899")
    email: Text = field("Email")
    phone: Text = field("Phone")
    address1: Text = field("Address Line 1")
    address2: Text = field("Address Line 2")
    zip: Text = field("Zip Code")
    state: Text = field("State", description="State, city or region")
    country: Text = field("Country", description="Country name")
    country_code: CountryCode = field("Country Code")
    vat_number: Text = field("VAT Number")
    client_type: ClientType = field("Client Type")
    currency: Currency = field("Currency")
    delivery_type: DeliveryType = field("Delivery Type")
    payment_days: Whole0 = field("Payment Days")
    contact: Text = field("Contact", description="Contact person")

    def problems(self) -> list[str]:
        if self.email is not None and "@" not in self.email:
            return [f'Email "{self.email}" is not an email address']
        return []


def client_from_inputs(ctx: ActionContext, inputs: ClientInputs) -> Client:
    return Client(
        foreign_id=foreign_id(ctx.portal_id, ctx.object_type, ctx.record.id, "client"),
        name=inputs.name or "",
        orgno=inputs.orgno,
        email=inputs.email,
        phone=inputs.phone,
        address=Address.from_inputs(inputs),
        country_code=inputs.country_code,
        vat_nr=inputs.vat_number,
        client_type=inputs.client_type,
        currency_type=inputs.currency,
        delivery_type=inputs.delivery_type,
        payment_days=inputs.payment_days,
        contact=inputs.contact,
    )


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Client:
    return client_from_inputs(ctx, ClientInputs.parse(raw))


SPEC = ActionSpec(
    key="create-client",
    label="Create Kleer Client",
    description="Creates a client in Kleer from the company and stores its id in kleer_id.",
    object_type="COMPANY",
    kleer_kind="client",
    id_property="kleer_id",
    inputs=ClientInputs,
    build=build,
    record_properties=("name",),
)
