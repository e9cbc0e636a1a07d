"""Pure action logic: input parsing, messages, money, rows, mappings (no servers)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actions import ACTIONS
from actions.base import ActionContext
from actions.fields import InputError, parse_money, to_cents
from actions.mappings import DEFAULTS, FieldMapping, apply_mappings
from hubspot_api.models import CrmObject


def ctx(record_props=None, line_items=(), company_kleer_id="42", mappings=None, products=None,
        object_type="DEAL") -> ActionContext:
    return ActionContext(
        portal_id=1, object_type=object_type,
        record=CrmObject(id="7", properties=record_props or {}),
        company=CrmObject(id="9", properties={"kleer_id": company_kleer_id}),
        line_items=[CrmObject(id=str(n), properties=p) for n, p in enumerate(line_items)],
        mappings=mappings or [], products=products or {},
    )


@pytest.mark.parametrize("text,cents", [
    ("1234.50", 123450), ("0.30000000000000004", 30), ("0.1", 10), ("19.995", 2000),
    ("123456789012345.67", 12345678901234567), ("-5.005", -501), ("1e3", 100000), ("7", 700),
])
def test_money_to_cents_exact(text, cents):
    assert parse_money(text) == cents


def test_money_sum_of_tenths_has_no_float_error():
    assert sum(to_cents(Decimal("0.1")) for _ in range(3)) == 30


def test_client_inputs_normalise_enums_case_insensitively():
    client = ACTIONS["create-client"].build(
        ctx(object_type="COMPANY"),
        {"name": " Acme AB ", "delivery_type": "email", "client_type": "PERSON", "currency": "eur",
         "payment_days": "30", "country_code": "se", "zip": "111 22", "email": ""},
    )
    body = client.payload()
    assert body["name"] == "Acme AB"
    assert body["delivery-type"] == "Email" and body["client-type"] == "Person"
    assert body["currency-type"] == "EUR" and body["payment-days"] == 30
    assert body["country-code"] == "SE" and body["address"] == {"zip-code": "111 22"}
    assert "email" not in body  # empty input = not given
    assert body["foreign-id"] == "hubspot:1:company:7:client"


@pytest.mark.parametrize("raw,message", [
    ({"name": ""}, "Name is required"),
    ({"name": "A", "payment_days": "-1"}, 'Payment Days "-1" is not a whole number ≥ 0'),
    ({"name": "A", "payment_days": "2.5"}, 'Payment Days "2.5" is not a whole number ≥ 0'),
    ({"name": "A", "delivery_type": "pigeon"},
     'Delivery Type "pigeon" is not one of: Mail, Email, Manually, Svefaktura'),
    ({"name": "A", "currency": "kronor"}, 'Currency "kronor" is not a 3-letter currency code'),
    ({"name": "A", "email": "nope"}, 'Email "nope" is not an email address'),
])
def test_client_bad_input_messages_name_field_and_value(raw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ACTIONS["create-client"].build(ctx(object_type="COMPANY"), raw)


def test_invoice_rows_from_line_items_with_discounts_and_products():
    invoice = ACTIONS["create-invoice"].build(
        ctx(line_items=[
            {"name": "Licence", "quantity": "3", "price": "1234.50", "hs_discount_percentage": "10",
             "hs_product_id": "555"},
            {"name": "Setup", "quantity": "1.5", "price": "0.1", "discount": "0.05"},
        ], products={"555": 77}),
        {"invoice_date": "2026-12-01", "currency": "sek"},
    ).payload()
    assert invoice["client-ref"] == {"id": 42} and invoice["currency"] == "SEK"
    assert invoice["invoice-date"] == "2026-12-01" and "invoice-address" not in invoice
    licence, setup = invoice["rows"]
    assert licence == {"description": "Licence", "quantity": 3.0, "price": 123450,
                       "product": {"id": 77}, "discount": {"percentage": 10.0}}
    assert setup["price"] == 10 and setup["discount"] == {"absolute": 5}
    assert "product" not in setup


def test_invoice_bad_date_and_bad_line_item_price():
    with pytest.raises(InputError, match=r'Invoice Date "2026-13-01" is not a date \(YYYY-MM-DD\)'):
        ACTIONS["create-invoice"].build(ctx(), {"invoice_date": "2026-13-01"})
    with pytest.raises(InputError, match='Line item "X" price "abc" is not an amount'):
        ACTIONS["create-invoice"].build(ctx(line_items=[{"name": "X", "price": "abc"}]), {})


def test_agreement_splits_recurring_and_one_time_rows_and_checks_dates():
    agreement = ACTIONS["create-agreement"].build(
        ctx(line_items=[{"name": "Monthly", "price": "100", "recurringbillingfrequency": "monthly"},
                        {"name": "Onboarding", "price": "500"}]),
        {"start_date": "2026-01-01", "end_date": "2026-12-31", "invoice_day": "invoice_at_start",
         "invoice_interval": "3"},
    ).payload()
    assert [r["description"] for r in agreement["recurring-rows"]] == ["Monthly"]
    assert [r["description"] for r in agreement["first-invoice-rows"]] == ["Onboarding"]
    assert agreement["invoice-day"] == "INVOICE_AT_START"
    assert agreement["invoice-interval-months"] == 3
    with pytest.raises(InputError, match="End Date .* is before Start Date"):
        ACTIONS["create-agreement"].build(ctx(), {"start_date": "2026-05-01",
                                                  "end_date": "2026-04-30"})
    with pytest.raises(InputError, match=r'Invoice Interval \(Months\) "0"'):
        ACTIONS["create-agreement"].build(ctx(), {"invoice_interval": "0"})


def test_update_agreement_sends_only_given_header_fields_and_all_rows():
    update = ACTIONS["update-agreement"].build(ctx(line_items=[]), {"po_number": "PO-9"}).payload()
    assert update == {"po-nr": "PO-9", "first-invoice-rows": [], "recurring-rows": []}


def test_project_inputs():
    project = ACTIONS["create-project"].build(
        ctx(), {"name": "Rollout", "fixed_price": "Yes", "budget_hours": "12.5",
                "budget_amount": "25000.50", "opening_date": "2026-02-01"}).payload()
    assert project == {"client": {"id": 42}, "name": "Rollout", "fixed-price": True,
                       "budget-hours": 12.5, "budget-amount": 2500050,
                       "opening-date": "2026-02-01"}
    with pytest.raises(InputError, match='Fixed Price "maybe" is not true or false'):
        ACTIONS["create-project"].build(ctx(), {"name": "R", "fixed_price": "maybe"})


def test_client_from_default_mappings_and_empty_name():
    company = {"name": "Mapped AB", "kleer_email": "a@b.se", "zip": "12345",
               "kleer_payment_days": "15", "kleer_delivery_method": "mail"}
    spec = ACTIONS["create-client-from-mappings"]
    body = spec.build(ctx(company, mappings=DEFAULTS["client"], object_type="COMPANY"), {}).payload()
    assert body["name"] == "Mapped AB" and body["email"] == "a@b.se"
    assert body["payment-days"] == 15 and body["delivery-type"] == "Mail"
    with pytest.raises(InputError, match='Name is required: HubSpot property "name" is empty'):
        spec.build(ctx({"name": ""}, mappings=DEFAULTS["client"], object_type="COMPANY"), {})


def test_project_from_mappings_defaults_and_overrides():
    deal = {"dealname": "Big deal", "closedate": "2026-03-04T10:00:00.000Z", "amount": "999.99"}
    spec = ACTIONS["create-project-from-mappings"]
    body = spec.build(ctx(deal, mappings=DEFAULTS["project"]), {}).payload()
    assert body["opening-date"] == "2026-03-04" and body["budget-amount"] == 99999
    custom = [FieldMapping(kleer="name", hubspot="missing", default="Fallback"),
              FieldMapping(kleer="number", hubspot="dealname")]
    assert apply_mappings("project", custom, CrmObject(id="1", properties=deal)) == {
        "name": "Fallback", "number": "Big deal"}


def test_prerequisites():
    spec = ACTIONS["create-invoice"]
    no_company = ctx().model_copy(update={"company": None})
    assert "has no associated company" in spec.prerequisite_error(no_company)
    assert "is not a Kleer client yet" in spec.prerequisite_error(ctx(company_kleer_id=""))
    assert "no kleer_agreement_id" in ACTIONS["update-agreement"].prerequisite_error(ctx())


def test_every_input_problem_is_reported_in_one_message():
    """Type errors, the missing required Name and cross-field rules, all at once."""
    with pytest.raises(InputError) as caught:
        ACTIONS["create-client"].build(ctx(object_type="COMPANY"), {
            "payment_days": "-3", "currency": "kronor", "email": "nope"})
    message = str(caught.value)
    for part in ('Payment Days "-3" is not a whole number ≥ 0', 'Currency "kronor"',
                 "Name is required", 'Email "nope" is not an email address'):
        assert part in message, message
    with pytest.raises(InputError) as caught:
        ACTIONS["create-agreement"].build(ctx(), {
            "payment_days": "x", "start_date": "2027-05-01", "end_date": "2027-01-01",
            "invoice_interval": "2"})
    message = str(caught.value)
    assert 'Payment Days "x"' in message and "is before Start Date" in message
    assert "Invoice Interval (Months) 2 has no HubSpot billing frequency" in message


def test_mapped_name_missing_is_reported_with_the_other_problems():
    mappings = [FieldMapping(kleer="name", hubspot="legal_name"),
                FieldMapping(kleer="payment-days", hubspot="terms")]
    with pytest.raises(InputError) as caught:
        ACTIONS["create-client-from-mappings"].build(
            ctx({"terms": "soon"}, mappings=mappings, object_type="COMPANY"), {})
    message = str(caught.value)
    assert 'Name is required: HubSpot property "legal_name" is empty and has no default' in message
    assert 'Payment Days "soon" is not a whole number ≥ 0 (from field mappings)' in message


@pytest.mark.parametrize("text,cents", [
    ("12,5", 1250), ("12,50", 1250), ("0,3", 30), ("1 234,50", 123450), ("1\u00a0234,5", 123450),
    ("1.234,50", 123450), ("1,234.50", 123450), ("-7,25", -725), ("1234.5", 123450),
])
def test_decimal_commas_are_read_where_unambiguous(text, cents):
    assert parse_money(text) == cents


@pytest.mark.parametrize("text,hint", [("1,234", "write 1234 or 1.234"),
                                       ("1,234,567", "write 1234567"), ("12,5,0", "not an amount")])
def test_ambiguous_or_broken_numbers_are_refused_with_a_hint(text, hint):
    with pytest.raises(ValueError, match=hint):
        parse_money(text)
