"""Create Kleer Invoice (deal workflows): inputs, deal + line items -> Kleer invoice, sync back."""

from __future__ import annotations

from datetime import date

from actions.base import ActionContext, ActionSpec, SyncSpec, foreign_id
from actions.fields import ActionInputs, Currency, DateInput, DeliveryType, Text, field
from actions.rows import to_line_item, to_row
from kleer_api.models import Address, Invoice, Ref


class InvoiceInputs(ActionInputs):
    invoice_date: DateInput = field("Invoice Date", description="empty = today")
    currency: Currency = field("Currency")
    delivery_type: DeliveryType = field("Delivery Type")
    address1: Text = field("Invoice Address Line 1")
    address2: Text = field("Invoice Address Line 2")
    zip: Text = field("Zip Code")
    state: Text = field("State")
    country: Text = field("Country")
    po_number: Text = field("PO Number")
    your_reference: Text = field("Your Reference")


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Invoice:
    inputs = InvoiceInputs.parse(raw)
    return Invoice(
        foreign_id=foreign_id(ctx.portal_id, "DEAL", ctx.record.id, "invoice"),
        client_ref=Ref(id=ctx.client_id()),
        invoice_date=inputs.invoice_date,
        currency=inputs.currency,
        delivery_type=inputs.delivery_type,
        invoice_address=Address.from_inputs(inputs),
        po_nr=inputs.po_number,
        your_reference=inputs.your_reference,
        rows=[to_row(item, ctx.products) for item in ctx.line_items],
    )


# A Kleer invoice's payment state in HubSpot's own invoice status values (HubSpot's invoices
# guide: draft, then open once it is sent; paid; voided). HubSpot shows an open invoice past its
# hs_due_date as overdue itself, so overdue stays "open" with the due date set.
HUBSPOT_INVOICE_STATUS = {"draft": "draft", "sent": "open", "overdue": "open", "paid": "paid",
                          "credited": "voided"}


def payment_state(invoice: dict, today: date | None = None) -> str:
    """draft, sent, overdue, paid or credited, from the XSD's read-only fields: `credit-invoices`
    (credited), `certified`/`sent`, `remaining` (öre left to pay; 0 while uncertified) and
    `due-date`. `today` None: never overdue (workflow code, which must not read the clock)."""
    if invoice.get("credit-invoices"):
        return "credited"
    if not (invoice.get("certified") or invoice.get("sent")):
        return "draft"
    remaining = invoice.get("remaining")
    if remaining == 0:
        return "paid"
    due = invoice.get("due-date")
    if today is not None and due and date.fromisoformat(due) < today:
        return "overdue"
    return "sent"


def hubspot_invoice(invoice: dict, today: date | None = None) -> dict[str, str]:
    props = {
        "hs_currency": invoice.get("currency") or "",
        "hs_invoice_date": invoice.get("invoice-date") or "",
        "hs_due_date": invoice.get("due-date") or "",
        "hs_number": str(invoice.get("invoice-nr") or ""),
        "hs_title": f"Kleer invoice {invoice.get('invoice-nr') or invoice['id']}",
        "hs_invoice_status": HUBSPOT_INVOICE_STATUS[payment_state(invoice, today)],
    }
    return {k: v for k, v in props.items() if v}


SPEC = ActionSpec(
    key="create-invoice",
    label="Create Kleer Invoice",
    description="Creates a Kleer invoice for the deal's company from the deal's line items, "
                "stores its id in kleer_invoice_id and mirrors it as a HubSpot invoice.",
    object_type="DEAL",
    kleer_kind="invoice",
    id_property="kleer_invoice_id",
    inputs=InvoiceInputs,
    build=build,
    needs_company=True,
    reads_line_items=True,
    record_properties=("dealname",),
    sync=SyncSpec("invoices", hubspot_invoice,
                  lambda invoice: [to_line_item(r) for r in invoice.get("rows") or []]),
)
