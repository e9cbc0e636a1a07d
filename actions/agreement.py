"""Create Kleer Agreement (deal workflows): recurring contract from the deal, sync back."""

from __future__ import annotations

from datetime import date, timedelta

from actions.base import ActionContext, ActionSpec, SyncSpec, foreign_id
from actions.fields import (
    ActionInputs,
    Currency,
    DateInput,
    InputError,
    InvoiceDay,
    Text,
    Whole0,
    Whole1,
    field,
)
from actions.rows import is_recurring, to_line_item, to_row
from kleer_api.models import Agreement, Ref


class AgreementInputs(ActionInputs):
    name: Text = field("Name", description="Agreement description")
    start_date: DateInput = field("Start Date")
    start_invoice_date: DateInput = field("Start Invoice Date")
    end_date: DateInput = field("End Date")
    your_reference: Text = field("Your Reference")
    payment_days: Whole0 = field("Payment Days")
    invoice_interval: Whole1 = field("Invoice Interval (Months)", description="e.g. 1, 3, 6, 12")
    currency: Currency = field("Currency")
    invoice_day: InvoiceDay = field("Invoice Day")
    po_number: Text = field("PO Number")

    def problems(self) -> list[str]:
        found = []
        if self.start_date and self.end_date and self.end_date < self.start_date:
            found.append(f'End Date "{self.end_date}" is before Start Date "{self.start_date}"')
        if self.invoice_interval is not None:
            try:
                billing_frequency(self.invoice_interval)  # mirrored as a HubSpot subscription
            except InputError as exc:
                found.append(str(exc))
        return found


def agreement_from(ctx: ActionContext, inputs: AgreementInputs) -> Agreement:
    return Agreement(
        description=inputs.name,
        start_date=inputs.start_date,
        start_invoice_date=inputs.start_invoice_date,
        end_date=inputs.end_date,
        your_reference=inputs.your_reference,
        payment_days=inputs.payment_days,
        invoice_interval_months=inputs.invoice_interval,
        currency=inputs.currency,
        invoice_day=inputs.invoice_day,
        po_nr=inputs.po_number,
        first_invoice_rows=[to_row(i, ctx.products) for i in ctx.line_items if not is_recurring(i)],
        recurring_rows=[to_row(i, ctx.products) for i in ctx.line_items if is_recurring(i)],
    )


def build(ctx: ActionContext, raw: dict[str, str | None]) -> Agreement:
    agreement = agreement_from(ctx, AgreementInputs.parse(raw))
    return agreement.model_copy(update={
        "foreign_id": foreign_id(ctx.portal_id, "DEAL", ctx.record.id, "agreement"),
        "client_ref": Ref(id=ctx.client_id()),
    })


# hubspot.md section 7: `recurringbillingfrequency` accepts only HubSpot's own values. Kleer's
# `invoice-interval-months` -> that value; intervals HubSpot has no value for cannot be mirrored.
HUBSPOT_FREQUENCIES = {1: "monthly", 3: "quarterly", 6: "per_six_months", 12: "annually",
                       24: "per_two_years", 36: "per_three_years", 48: "per_four_years",
                       60: "per_five_years"}


def billing_frequency(months: int | None) -> str:
    if months is None:
        months = 1  # Kleer's default interval when none is set
    try:
        return HUBSPOT_FREQUENCIES[months]
    except KeyError:
        raise InputError(f"Invoice Interval (Months) {months} has no HubSpot billing frequency: "
                         f"use one of {', '.join(map(str, HUBSPOT_FREQUENCIES))}") from None


def billing_term(start: str | None, end: str | None) -> str | None:
    """`hs_recurring_billing_period` as an ISO-8601 period (hubspot.md section 7: `P12M`): the
    whole months from the start up to and including the end date; None without an end."""
    if not start or not end:
        return None
    first, last = date.fromisoformat(start), date.fromisoformat(end) + timedelta(days=1)
    months = (last.year - first.year) * 12 + last.month - first.month
    if last.day < first.day:
        months -= 1
    return f"P{months}M" if months >= 1 else None


def hubspot_subscription(agreement: dict) -> dict[str, str]:
    months = agreement.get("invoice-interval-months")
    props = {
        "hs_name": agreement.get("description") or f"Kleer agreement {agreement['id']}",
        "hs_currency_code": agreement.get("currency") or "",
        "hs_recurring_billing_start_date": agreement.get("start-date") or "",
        "hs_recurring_billing_end_date": agreement.get("end-date") or "",
        "hs_billing_frequency": f"every {months} months" if months else "",
        "hs_status": "active",
    }
    return {k: v for k, v in props.items() if v}


def subscription_line_items(agreement: dict) -> list[dict[str, str]]:
    """The agreement's rows as line items of the subscription: recurring rows with HubSpot's
    billing frequency (and term, when the agreement ends), first-invoice rows as one-time items."""
    rows = agreement.get("recurring-rows") or []
    billing: dict[str, str] = {}
    if rows:
        billing["recurringbillingfrequency"] = billing_frequency(
            agreement.get("invoice-interval-months"))
        start = agreement.get("start-invoice-date") or agreement.get("start-date")
        if term := billing_term(start, agreement.get("end-date")):
            billing["hs_recurring_billing_period"] = term
    recurring = [{**to_line_item(r), **billing} for r in rows]
    return recurring + [to_line_item(r) for r in agreement.get("first-invoice-rows") or []]


SUBSCRIPTION_SYNC = SyncSpec("subscriptions", hubspot_subscription, subscription_line_items)

SPEC = ActionSpec(
    key="create-agreement",
    label="Create Kleer Agreement",
    description="Creates a Kleer agreement (recurring contract) for the deal's company, stores "
                "its id in kleer_agreement_id and mirrors it as a HubSpot subscription.",
    object_type="DEAL",
    kleer_kind="agreement",
    id_property="kleer_agreement_id",
    inputs=AgreementInputs,
    build=build,
    needs_company=True,
    reads_line_items=True,
    record_properties=("dealname",),
    sync=SUBSCRIPTION_SYNC,
)
