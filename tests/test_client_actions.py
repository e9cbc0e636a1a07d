"""Create Kleer Client, both variants, end to end: driver -> API -> Temporal -> simulators."""

from __future__ import annotations

import pytest

from tests.conftest import OTHER_COMPANY, OTHER_PORTAL, PORTAL


def company(stack, props: dict, portal: int = PORTAL) -> str:
    return stack.hubspot.create_object(portal, "companies", props)


def kleer_clients(stack, company_id: int = 1) -> list[dict]:
    return stack.kleer.records(company_id, "client")


async def test_create_client_writes_kleer_and_hubspot(stack, run):
    cid = company(stack, {"name": "Acme AB"})
    out = await run("create-client", "COMPANY", cid, {
        "name": "Acme AB", "orgno": "556677-8899", "email": "a@acme.se", "currency": "sek",
        "delivery_type": "EMAIL", "payment_days": "30", "address1": "Gatan 1", "zip": "111 22",
        "country_code": "se"})
    assert out["hs_execution_state"] == "SUCCESS" and out["result"] == "created"
    assert out["error_message"] == ""
    [client] = [c for c in kleer_clients(stack) if c["id"] == int(out["kleer_id"])]
    assert client["name"] == "Acme AB" and client["orgno"] == "556677-8899"
    assert client["delivery-type"] == "Email" and client["payment-days"] == 30
    assert client["address"]["zip-code"] == "111 22" and client["country-code"] == "SE"
    assert client["foreign-id"] == f"hubspot:{PORTAL}:company:{cid}:client"
    record = stack.hubspot.get_object(PORTAL, "companies", cid)
    assert record["properties"]["kleer_id"] == out["kleer_id"]


@pytest.mark.parametrize("action", ["create-client", "create-client-from-mappings"])
async def test_existing_kleer_id_skips_without_writing(stack, run, action):
    cid = company(stack, {"name": "Known AB", "kleer_id": "4242"})
    before = len(kleer_clients(stack))
    stack.hubspot.calls.clear()
    out = await run(action, "COMPANY", cid, {"name": "Known AB"})
    assert (out["hs_execution_state"], out["result"], out["kleer_id"]) == (
        "SUCCESS", "skipped", "4242")
    assert len(kleer_clients(stack)) == before
    writes = [c for c in stack.hubspot.calls.list() if c["method"] == "PATCH"]
    assert writes == []


async def test_bad_input_fails_continue_and_writes_nothing(stack, run):
    cid = company(stack, {"name": "Typo AB"})
    before = len(kleer_clients(stack))
    out = await run("create-client", "COMPANY", cid, {"name": "Typo AB", "payment_days": "-3",
                                                      "delivery_type": "fax"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE" and out["result"] == "failed"
    assert 'Payment Days "-3" is not a whole number ≥ 0' in out["error_message"]
    assert 'Delivery Type "fax" is not one of: Mail, Email, Manually, Svefaktura' \
        in out["error_message"]
    assert len(kleer_clients(stack)) == before
    assert not stack.hubspot.get_object(PORTAL, "companies", cid)["properties"].get("kleer_id")


async def test_missing_name_is_reported(stack, run):
    cid = company(stack, {"name": "No Name Given"})
    out = await run("create-client", "COMPANY", cid, {"email": "x@y.se"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert out["error_message"] == "Name is required"


async def test_kleer_validation_error_is_final_and_readable(stack, run):
    cid = company(stack, {"name": "Rejected AB"})
    stack.kleer.faults.add(method="PUT", path_contains="/client", status=400, count=1)
    out = await run("create-client", "COMPANY", cid, {"name": "Rejected AB"})
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert out["error_message"].startswith("Kleer client not created: Kleer rejected the request (400)")


async def test_from_mappings_uses_default_mappings(stack, run):
    cid = company(stack, {"name": "Mapped Oy", "kleer_email": "billing@mapped.fi",
                          "address": "Esplanadi 1", "zip": "00100", "country": "Finland",
                          "kleer_currency": "eur", "kleer_delivery_method": "MAIL",
                          "kleer_payment_days": "14", "vat_number": "FI123"})
    out = await run("create-client-from-mappings", "COMPANY", cid)
    assert out["result"] == "created", out
    client = stack.kleer.get(1, "client", int(out["kleer_id"]))
    assert client["name"] == "Mapped Oy" and client["email"] == "billing@mapped.fi"
    assert client["address"] == {"address1": "Esplanadi 1", "zip-code": "00100",
                                 "country": "Finland"}
    assert client["currency-type"] == "EUR" and client["delivery-type"] == "Mail"
    assert client["payment-days"] == 14 and client["vat-nr"] == "FI123"
    assert stack.hubspot.get_object(PORTAL, "companies", cid)["properties"]["kleer_id"] \
        == out["kleer_id"]


async def test_from_mappings_empty_name_fails(stack, run):
    cid = company(stack, {"name": "", "phone": "123"})
    before = len(kleer_clients(stack))
    out = await run("create-client-from-mappings", "COMPANY", cid)
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert out["error_message"].startswith('Name is required: HubSpot property "name" is empty')
    assert len(kleer_clients(stack)) == before


async def test_from_mappings_per_portal_override(stack, run):
    stack.hubspot.portals[OTHER_PORTAL].crm.add_property(
        "companies", {"name": "legal_name", "label": "Legal name", "type": "string",
                      "fieldType": "text", "groupName": "companyinformation"})
    cid = company(stack, {"name": "Short", "legal_name": "Long Legal Name AB"}, OTHER_PORTAL)
    out = await run("create-client-from-mappings", "COMPANY", cid, portal=OTHER_PORTAL)
    assert out["result"] == "created", out
    client = stack.kleer.get(OTHER_COMPANY, "client", int(out["kleer_id"]))
    assert client["name"] == "Long Legal Name AB" and client["email"] == "fallback@x.se"


async def test_both_client_actions_share_one_kleer_client(stack, run):
    """Standard then from-mappings on a company whose write-back was lost: no second client."""
    cid = company(stack, {"name": "Twice AB"})
    first = await run("create-client", "COMPANY", cid, {"name": "Twice AB"})
    stack.hubspot.portals[PORTAL].crm.update("companies", cid, {"kleer_id": ""})
    second = await run("create-client-from-mappings", "COMPANY", cid)
    # Made by the earlier execution: found by its marker, reported as there already.
    assert second["result"] == "skipped" and second["kleer_id"] == first["kleer_id"]
    assert sum(c["name"] == "Twice AB" for c in kleer_clients(stack)) == 1
    # ...and its id is written back again.
    assert stack.hubspot.get_object(PORTAL, "companies", cid)["properties"]["kleer_id"] == \
        first["kleer_id"]


async def test_a_broken_mappings_file_fails_the_run_at_once_naming_file_and_field(
        stack, run, mappings_dir):
    path = mappings_dir / f"{OTHER_PORTAL}.json"
    good = path.read_text()
    path.write_text('{"client": [{"kleer": "nmae", "hubspot": "name"}]}')
    try:
        cid = company(stack, {"name": "Mapped AB"}, OTHER_PORTAL)
        out = await run("create-client-from-mappings", "COMPANY", cid, portal=OTHER_PORTAL)
    finally:
        path.write_text(good)
    assert out["hs_execution_state"] == "FAIL_CONTINUE"
    assert str(path) in out["error_message"]
    assert 'client[0].kleer: unknown Kleer client field "nmae"' in out["error_message"]
    assert "gave up after retrying" not in out["error_message"]  # final, not retried for hours


def test_the_worker_checks_every_mappings_file_at_start(tmp_path):
    from actions.mappings import check_mappings_dir

    (tmp_path / "1.json").write_text('{"client": [{"kleer": "name", "hubspot": "name"}]}')
    (tmp_path / "2.json").write_text("{not json")
    (tmp_path / "3.json").write_text('{"project": [{"kleer": "name"}]}')
    (tmp_path / "notes.json").write_text("{}")
    problems = check_mappings_dir(tmp_path)
    assert len(problems) == 3, problems
    assert f"{tmp_path / '2.json'}: not JSON" in problems[0]
    assert f"{tmp_path / '3.json'}: project.0.hubspot: Field required" in problems[1]
    assert "notes.json: the file name must be <portalId>.json" in problems[2]
    assert check_mappings_dir(tmp_path / "missing") == [f"MAPPINGS_DIR={tmp_path / 'missing'}: "
                                                        "not a directory"]
