"""HTTP endpoints of the HubSpot simulator (CRM v3/v4, properties, callbacks, action definitions).

Every portal endpoint goes through `_portal_endpoint`: bearer auth, the portal's rolling rate
limit (429 body and headers as HubSpot sends them), then the handler under the state lock.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulators.common import FaultRule, RateDecision, admin_routes, deep, now_iso, read_json
from simulators.hubspot_actions import validate_definition
from simulators.hubspot_model import (
    ASSOCIATION_TYPES,
    DEFAULT_READ,
    INVERSE,
    Crm,
    HubSpotError,
    invalid,
    not_found,
    object_type_name,
)
from simulators.hubspot_oauth import admin_routes as oauth_admin_routes
from simulators.hubspot_oauth import expired_body
from simulators.hubspot_oauth import routes as oauth_routes

if TYPE_CHECKING:
    from simulators.hubspot import HubSpotState, Portal

MAX_BATCH = 100
EXECUTION_STATES = ("SUCCESS", "FAIL_CONTINUE")
Result = tuple[int, Any]
PortalHandler = Callable[[Request, "Portal", Any], Result]


def _error_body(status: int, category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}


def _rate_limit_body() -> dict[str, Any]:
    return {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
            "policyName": "TEN_SECONDLY_ROLLING"}


def fault_body(status: int, rule: FaultRule) -> tuple[dict[str, Any], dict[str, str]]:
    """Body of an injected fault: HubSpot's 429 body, or a generic internal error."""
    if status == 429:
        return _rate_limit_body(), {}
    return _error_body(status, "INTERNAL_ERROR", f"Simulated fault: HTTP {status}"), {}


def _rate_headers(state: HubSpotState, portal: Portal, decision: RateDecision) -> dict[str, str]:
    return {"X-HubSpot-RateLimit-Max": str(decision.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(decision.remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(decision.window_ms),
            "X-HubSpot-RateLimit-Daily": str(state.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, state.daily_limit
                                                           - portal.daily_calls))}


def _respond(status: int, payload: Any, headers: dict[str, str]) -> Response:
    if payload is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(payload, status, headers=headers)


async def _json_body(request: Request) -> Any:
    try:
        return await read_json(request)
    except ValueError:
        raise invalid("Invalid input JSON: could not parse the request body") from None


def _portal_endpoint(state: HubSpotState, handler: PortalHandler) -> Callable[
        [Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        portal = state.portal_for_token(token) if token else None
        if portal is None:
            expired = state.oauth.expired_since(token) if token else None
            if expired is not None:  # an OAuth access token past its expires_in
                return JSONResponse(expired_body(*expired), 401)
            body = _error_body(401, "UNAUTHORIZED", "Authentication credentials not found. "
                               "This API supports OAuth 2.0 authentication.")
            return JSONResponse(body, 401)
        if "sim" in request.scope:
            request.scope["sim"]["key"] = portal.portal_id
        decision = state.limiter.hit(portal.portal_id)
        with state.lock:
            portal.daily_calls += 1
        headers = _rate_headers(state, portal, decision)
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after_s)
            return JSONResponse(_rate_limit_body(), 429, headers=headers)
        if request.url.path.endswith("/search"):
            # hubspot.md section 6: search endpoints are also limited to 5 requests per second.
            searched = state.search_limiter.hit(portal.portal_id)
            if not searched.allowed:
                body = {**_rate_limit_body(), "policyName": "SECONDLY",
                        "message": "You have reached your secondly limit."}
                return JSONResponse(body, 429, headers={**headers, "Retry-After": "1"})
        try:
            body = await _json_body(request) if request.method in ("POST", "PATCH", "PUT") \
                else None
            with state.lock:
                status, payload = handler(request, portal, body)
        except HubSpotError as exc:
            payload = _error_body(exc.status, exc.category, exc.message, **exc.extra)
            return JSONResponse(payload, exc.status, headers=headers)
        return _respond(status, payload, headers)

    return endpoint


# -- helpers --

def _type(request: Request, param: str = "object_type") -> str:
    object_type = object_type_name(request.path_params[param])
    Crm.check_type(object_type)
    return object_type


def _csv(request: Request, name: str) -> list[str] | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def _inputs(body: Any) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise invalid("inputs must be a list of objects")
    if len(inputs) > MAX_BATCH:
        raise invalid(f"Batch input size {len(inputs)} exceeds the limit of {MAX_BATCH}")
    return inputs


def _inline_associations(object_type: str, raw: Any) -> list[tuple[str, str, int]]:
    """Inline `associations` of a create; the target type follows from the typeId."""
    links = []
    for item in raw or []:
        to_id = str((item.get("to") or {}).get("id", ""))
        for spec in item.get("types") or []:
            type_id = spec.get("associationTypeId")
            known = ASSOCIATION_TYPES.get(type_id)
            if known is None or known[0] != object_type:
                raise invalid(f"association type id {type_id} is not valid from {object_type}")
            links.append((known[1], to_id, type_id))
    return links


def _render_default(crm: Crm, object_type: str, record: dict, request: Request) -> dict:
    wanted = _csv(request, "properties")
    properties = wanted if wanted is not None else list(DEFAULT_READ[object_type])
    associations = [object_type_name(a) for a in _csv(request, "associations") or []]
    return crm.render(object_type, record, properties, associations)


def _batch_envelope(results: list[Any], errors: list[dict] | None = None) -> dict[str, Any]:
    now = now_iso()
    out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now,
                           "completedAt": now}
    if errors:
        out["numErrors"] = len(errors)
        out["errors"] = errors
    return out


def _missing_error(object_type: str, ids: list[str]) -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {object_type} objects, they may be deleted or not "
                       "exist. Check that ids are valid.",
            "context": {"ids": ids}}


# -- CRM objects (v3) --

def get_object(request: Request, portal: Portal, body: Any) -> Result:
    object_type = _type(request)
    crm = portal.crm
    record = crm.resolve(object_type, request.path_params["object_id"],
                         request.query_params.get("idProperty"))
    return 200, _render_default(crm, object_type, record, request)


def update_object(request: Request, portal: Portal, body: Any) -> Result:
    object_type = _type(request)
    props = (body or {}).get("properties") if isinstance(body, dict) else None
    record = portal.crm.update(object_type, request.path_params["object_id"], props or {},
                               request.query_params.get("idProperty"))
    return 200, portal.crm.render(object_type, record)


def archive_object(request: Request, portal: Portal, body: Any) -> Result:
    portal.crm.archive(_type(request), request.path_params["object_id"])
    return 204, None


def create_object(request: Request, portal: Portal, body: Any) -> Result:
    object_type = _type(request)
    if not isinstance(body, dict):
        raise invalid("body must be an object with properties")
    links = _inline_associations(object_type, body.get("associations"))
    record = portal.crm.create(object_type, body.get("properties") or {}, links)
    return 201, portal.crm.render(object_type, record)


SEARCH_OPERATORS = ("EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY")


def _search_matches(record: dict, flt: dict) -> bool:
    """One filter of HubSpot's CRM search; string comparisons ignore case, as HubSpot's do."""
    value = record["properties"].get(flt["propertyName"])
    text = None if value in (None, "") else str(value).lower()
    operator = flt["operator"]
    if operator == "HAS_PROPERTY":
        return text is not None
    if operator == "NOT_HAS_PROPERTY":
        return text is None
    if operator in ("IN", "NOT_IN"):
        found = text in {str(v).lower() for v in flt["values"]}
        return found if operator == "IN" else not found
    equal = text == str(flt["value"]).lower()
    return equal if operator == "EQ" else not equal


def search(request: Request, portal: Portal, body: Any) -> Result:
    """CRM search (developers.hubspot.com/docs/api-reference/.../crm/search-the-crm): filter
    groups ORed, filters ANDed (at most 5 groups, 25 filters, 10 per group, per HubSpot's
    2024-08 changelog), at most 200 results a page, `after` paging, 10,000 results in all."""
    object_type = _type(request)
    body = body if isinstance(body, dict) else {}
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list) or len(groups) > 5 or \
            sum(len(g.get("filters") or []) for g in groups) > 25 or \
            any(len(g.get("filters") or []) > 10 for g in groups):
        raise invalid("at most 5 filterGroups, 10 filters per group and 25 filters in all")
    for group in groups:
        for flt in group.get("filters") or []:
            if flt.get("operator") not in SEARCH_OPERATORS or not flt.get("propertyName"):
                raise invalid(f"filter {flt!r}: operator must be one of {SEARCH_OPERATORS}")
            if flt["operator"] in ("IN", "NOT_IN") and (
                    not isinstance(flt.get("values"), list) or len(flt["values"]) > 100):
                raise invalid("IN/NOT_IN filters need `values`, a list of at most 100")
    limit = int(body.get("limit", 10))
    after = int(body.get("after") or 0)
    if not 1 <= limit <= 200:
        raise invalid("limit must be between 1 and 200")
    if after + limit > 10_000:
        raise invalid("search results are limited to 10,000 per query")
    records = [r for _, r in sorted(portal.crm.objects[object_type].items(), key=lambda x: int(x[0]))
               if not r["archived"] and (not groups or any(
                   all(_search_matches(r, f) for f in g.get("filters") or []) for g in groups))]
    properties = body.get("properties") or list(DEFAULT_READ[object_type])
    page = [portal.crm.render(object_type, r, properties) for r in records[after:after + limit]]
    out: dict[str, Any] = {"total": len(records), "results": page}
    if after + limit < len(records):
        out["paging"] = {"next": {"after": str(after + limit)}}
    return 200, out


def batch(request: Request, portal: Portal, body: Any) -> Result:
    object_type, op = _type(request), request.path_params["op"]
    handler = BATCH_OPS.get(op)
    if handler is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"unknown batch operation {op}")
    return handler(portal.crm, object_type, _inputs(body), body)


def _batch_read(crm: Crm, object_type: str, inputs: list[dict], body: dict) -> Result:
    properties = body.get("properties") or []
    id_property = body.get("idProperty")
    results, missing = [], []
    for item in inputs:
        try:
            record = crm.resolve(object_type, str(item.get("id")), id_property)
        except HubSpotError:
            missing.append(str(item.get("id")))
            continue
        results.append(crm.render(object_type, record, properties))
    if missing:
        return 207, _batch_envelope(results, [_missing_error(object_type, missing)])
    return 200, _batch_envelope(results)


def _batch_create(crm: Crm, object_type: str, inputs: list[dict], body: dict) -> Result:
    prepared = []
    for item in inputs:  # validate everything first: HubSpot creates all or none
        props = crm.clean_properties(object_type, item.get("properties"))
        links = _inline_associations(object_type, item.get("associations"))
        crm.check_associations(object_type, links)
        prepared.append((props, links))
    results = [crm.render(object_type, crm.create(object_type, props, links))
               for props, links in prepared]
    return 201, _batch_envelope(results)


def _batch_update(crm: Crm, object_type: str, inputs: list[dict], body: dict) -> Result:
    for item in inputs:
        crm.clean_properties(object_type, item.get("properties"))
    results, missing = [], []
    for item in inputs:
        try:
            record = crm.update(object_type, str(item.get("id")), item.get("properties") or {},
                                item.get("idProperty"))
        except HubSpotError as exc:
            if exc.status != 404:
                raise
            missing.append(str(item.get("id")))
            continue
        results.append(crm.render(object_type, record))
    if missing:
        return 207, _batch_envelope(results, [_missing_error(object_type, missing)])
    return 200, _batch_envelope(results)


def _batch_archive(crm: Crm, object_type: str, inputs: list[dict], body: dict) -> Result:
    for item in inputs:
        try:
            crm.archive(object_type, str(item.get("id")))
        except HubSpotError:
            pass  # HubSpot answers 204 for ids that are already gone
    return 204, None


def _batch_upsert(crm: Crm, object_type: str, inputs: list[dict], body: dict) -> Result:
    for item in inputs:
        id_property = item.get("idProperty")
        definition = crm.properties[object_type].get(id_property or "")
        if definition is None or not definition["hasUniqueValue"]:
            raise invalid(f"idProperty {id_property!r} is not a unique-value property of "
                          f"{object_type}")
        if item.get("id") in (None, ""):
            raise invalid("every upsert input needs an id")
        crm.clean_properties(object_type, item.get("properties"))
    results = []
    for item in inputs:
        id_property, key = item["idProperty"], str(item["id"])
        existing = crm.find_by(object_type, id_property, key)
        props = item.get("properties") or {}
        if existing is not None:
            record = crm.update(object_type, existing["id"], props)
        else:
            record = crm.create(object_type, {**props, id_property: key})
        results.append({**crm.render(object_type, record), "new": existing is None})
    return 200, _batch_envelope(results)


BATCH_OPS = {"read": _batch_read, "create": _batch_create, "update": _batch_update,
             "archive": _batch_archive, "upsert": _batch_upsert}


# -- associations (v4) --

def _spec(type_id: int) -> dict[str, Any]:
    return {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}


def _associate_default(crm: Crm, from_type: str, from_id: str, to_type: str,
                       to_id: str) -> list[dict]:
    type_ids = crm.associate(from_type, from_id, to_type, to_id)
    forward = [{"from": {"id": from_id}, "to": {"id": to_id}, "associationSpec": _spec(t)}
               for t in type_ids]
    backward = [{"from": {"id": to_id}, "to": {"id": from_id},
                 "associationSpec": _spec(INVERSE[t])} for t in type_ids]
    return forward + backward


def associate_default(request: Request, portal: Portal, body: Any) -> Result:
    p = request.path_params
    results = _associate_default(portal.crm, _type(request, "from_type"), p["from_id"],
                                 _type(request, "to_type"), p["to_id"])
    return 200, _batch_envelope(results)


def batch_associate_default(request: Request, portal: Portal, body: Any) -> Result:
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    inputs = _inputs(body)
    for item in inputs:  # all targets must exist before anything is linked
        portal.crm.get(from_type, str((item.get("from") or {}).get("id")))
        portal.crm.get(to_type, str((item.get("to") or {}).get("id")))
    results = []
    for item in inputs:
        results += _associate_default(portal.crm, from_type, str(item["from"]["id"]), to_type,
                                      str(item["to"]["id"]))
    return 200, _batch_envelope(results)


def batch_read_associations(request: Request, portal: Portal, body: Any) -> Result:
    """v4 association batch read. Objects without associations (also ids that do not exist) are
    not in `results` but in a 207's `errors`, subCategory crm.associations.NO_ASSOCIATIONS_FOUND:
    the shape public integrations report from the real API (e.g. "No company is associated with
    deal 515690208449."), and HubSpot's reference for the endpoint
    (developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/batch/get-associations)."""
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    results, empty = [], []
    for item in _inputs(body):
        from_id = str(item.get("id"))
        links = portal.crm.associated(from_type, from_id, to_type) \
            if from_id in portal.crm.objects[from_type] else {}
        if not links:
            empty.append(from_id)
            continue
        results.append({"from": {"id": from_id}, "to": [
            {"toObjectId": int(to_id), "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOCIATION_TYPES[t][3]}
                for t in sorted(type_ids)]}
            for to_id, type_ids in sorted(links.items(), key=lambda x: int(x[0]))]})
    errors = [{"status": "error", "category": "OBJECT_NOT_FOUND",
               "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
               "message": f"No {to_type} is associated with {from_type} {from_id}.",
               "context": {"fromObjectId": [from_id], "fromObjectType": [from_type],
                           "toObjectType": [to_type]}} for from_id in empty]
    return (207 if errors else 200), _batch_envelope(results, errors)


def list_associations(request: Request, portal: Portal, body: Any) -> Result:
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    from_id = request.path_params["from_id"]
    portal.crm.get(from_type, from_id)
    links = portal.crm.associated(from_type, from_id, to_type)
    results = [{"toObjectId": int(to_id), "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": t, "label": ASSOCIATION_TYPES[t][3]}
        for t in sorted(type_ids)]} for to_id, type_ids in sorted(links.items(),
                                                                  key=lambda x: int(x[0]))]
    return 200, {"results": results}


def association_labels(request: Request, portal: Portal, body: Any) -> Result:
    """The association types defined from one object type to another (v4 labels API)."""
    from_type, to_type = _type(request, "from_type"), _type(request, "to_type")
    results = [{"category": "HUBSPOT_DEFINED", "typeId": tid, "label": label}
               for tid, (f, t, _, label) in sorted(ASSOCIATION_TYPES.items())
               if (f, t) == (from_type, to_type)]
    return 200, {"results": results}


# -- properties --

def list_properties(request: Request, portal: Portal, body: Any) -> Result:
    return 200, {"results": list(portal.crm.properties[_type(request)].values())}


def get_property(request: Request, portal: Portal, body: Any) -> Result:
    object_type, name = _type(request), request.path_params["name"]
    prop = portal.crm.properties[object_type].get(name)
    if prop is None:
        raise not_found("property", name)
    return 200, prop


def create_property(request: Request, portal: Portal, body: Any) -> Result:
    if not isinstance(body, dict):
        raise invalid("body must be a property definition")
    return 201, portal.crm.add_property(_type(request), body)


def list_groups(request: Request, portal: Portal, body: Any) -> Result:
    return 200, {"results": list(portal.crm.groups[_type(request)].values())}


def create_group(request: Request, portal: Portal, body: Any) -> Result:
    if not isinstance(body, dict):
        raise invalid("body must be a property group definition")
    return 201, portal.crm.add_group(_type(request), body)


# -- callbacks --

def _complete(portal: Portal, callback_id: str, output_fields: Any) -> None:
    callback = portal.callbacks.get(callback_id)
    if callback is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Callback {callback_id} not found")
    callback["completions"] += 1
    if callback["state"] == "completed":
        raise invalid(f"Callback {callback_id} is already completed")
    if not isinstance(output_fields, dict):
        raise invalid("outputFields must be an object")
    execution_state = output_fields.get("hs_execution_state")
    if execution_state not in EXECUTION_STATES:
        raise invalid(f"outputFields.hs_execution_state must be one of {EXECUTION_STATES}, "
                      f"got {execution_state!r}")
    callback.update(state="completed", outputFields=deep(output_fields),
                    completedAt=datetime.now(UTC).isoformat())


def complete_callback(request: Request, portal: Portal, body: Any) -> Result:
    fields = body.get("outputFields") if isinstance(body, dict) else None
    _complete(portal, request.path_params["callback_id"], fields)
    return 204, None


def complete_callbacks(request: Request, portal: Portal, body: Any) -> Result:
    """Batch completion; valid items are applied, failures reported in a 207."""
    errors = []
    for item in _inputs(body):
        callback_id = str(item.get("callbackId"))
        try:
            _complete(portal, callback_id, item.get("outputFields"))
        except HubSpotError as exc:
            errors.append({"status": "error", "category": exc.category, "message": exc.message,
                           "context": {"callbackId": [callback_id]}})
    if errors:
        return 207, _batch_envelope([], errors)
    return 204, None


# -- action definitions (developer API, hapikey auth) --

def _developer_endpoint(state: HubSpotState, handler: Callable[[Request, HubSpotState, Any],
                        Result]) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        if request.query_params.get("hapikey") != state.developer_api_key:
            return JSONResponse(_error_body(401, "UNAUTHORIZED",
                                            "The developer API key provided is invalid."), 401)
        try:
            body = await _json_body(request) if request.method in ("POST", "PATCH") else None
            with state.lock:
                status, payload = handler(request, state, body)
        except HubSpotError as exc:
            return JSONResponse(_error_body(exc.status, exc.category, exc.message), exc.status)
        return _respond(status, payload, {})

    return endpoint


def _definition(state: HubSpotState, request: Request) -> dict[str, Any]:
    app_id = str(request.path_params["app_id"])
    definition = state.actions.get(app_id, {}).get(request.path_params["definition_id"])
    if definition is None:
        raise not_found("action definition", request.path_params["definition_id"])
    return definition


def create_action(request: Request, state: HubSpotState, body: Any) -> Result:
    validate_definition(body)
    app_id = str(request.path_params["app_id"])
    definition_id = state.next_action_id()
    stored = {**deep(body), "id": definition_id, "revisionId": "1", "appId": app_id,
              "published": bool(body.get("published", False))}
    state.actions.setdefault(app_id, {})[definition_id] = stored
    return 200, stored


def update_action(request: Request, state: HubSpotState, body: Any) -> Result:
    current = _definition(state, request)
    if not isinstance(body, dict):
        raise invalid("body must be an object")
    fixed = {k: current[k] for k in ("id", "appId")}
    merged = {**current, **deep(body), **fixed}
    validate_definition(merged)
    merged["revisionId"] = str(int(current["revisionId"]) + 1)
    current.clear()
    current.update(merged)
    return 200, current


def list_actions(request: Request, state: HubSpotState, body: Any) -> Result:
    return 200, {"results": list(state.actions.get(str(request.path_params["app_id"]),
                                                   {}).values())}


def get_action(request: Request, state: HubSpotState, body: Any) -> Result:
    return 200, _definition(state, request)


# -- admin (/_sim/) --

def _admin_routes(state: HubSpotState) -> list[Route]:
    def guarded(fn: Callable[[Request, Any], Awaitable[Response]]) -> Callable[
            [Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await read_json(request) if request.method == "POST" else None
                return await fn(request, body)
            except HubSpotError as exc:
                return JSONResponse(_error_body(exc.status, exc.category, exc.message),
                                    exc.status)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"message": f"bad admin request: {exc!r}"}, 400)

        return endpoint

    async def add_portal(request: Request, body: Any) -> Response:
        limit = (int(body.get("max", 190)), int(body.get("window_ms", 10_000)))
        state.add_portal(int(body["portal_id"]), str(body["token"]), limit,
                         bool(body.get("seed_kleer_properties", True)))
        return JSONResponse({})

    async def add_object(request: Request, body: Any) -> Response:
        links = [(a["to_type"], str(a["to_id"]), int(a["type_id"]))
                 for a in body.get("associations") or []]
        object_id = state.create_object(int(body["portal_id"]), request.path_params["object_type"],
                                        body.get("properties") or {}, links)
        return JSONResponse({"id": object_id})

    async def read_object(request: Request, body: Any) -> Response:
        record = state.get_object(int(request.query_params["portal_id"]),
                                  request.path_params["object_type"],
                                  request.path_params["object_id"])
        if record is None:
            raise not_found(request.path_params["object_type"], request.path_params["object_id"])
        return JSONResponse(record)

    async def delete_object(request: Request, body: Any) -> Response:
        state.archive_object(int(request.query_params["portal_id"]),
                             request.path_params["object_type"], request.path_params["object_id"])
        return Response(status_code=204)

    async def add_callback(request: Request, body: Any) -> Response:
        state.expect_callback(int(body["portal_id"]), str(body["callback_id"]))
        return JSONResponse({})

    async def list_callbacks(request: Request, body: Any) -> Response:
        return JSONResponse({"callbacks": state.callbacks()})

    return [
        Route("/_sim/portals", guarded(add_portal), methods=["POST"]),
        Route("/_sim/objects/{object_type}", guarded(add_object), methods=["POST"]),
        Route("/_sim/objects/{object_type}/{object_id}", guarded(read_object), methods=["GET"]),
        Route("/_sim/objects/{object_type}/{object_id}", guarded(delete_object),
              methods=["DELETE"]),
        Route("/_sim/callbacks", guarded(add_callback), methods=["POST"]),
        Route("/_sim/callbacks", guarded(list_callbacks), methods=["GET"]),
    ]


def routes(state: HubSpotState) -> list[Route]:
    def portal(path: str, handler: PortalHandler, method: str) -> Route:
        return Route(path, _portal_endpoint(state, handler), methods=[method])

    def developer(path: str, handler: Callable[[Request, HubSpotState, Any], Result],
                  method: str) -> Route:
        return Route(path, _developer_endpoint(state, handler), methods=[method])

    objects = "/crm/v3/objects/{object_type}"
    callbacks = "/automation/v4/actions/callbacks"
    dated = "/automation/actions/callbacks/{api_version}"
    actions = "/automation/v4/actions/{app_id:int}"
    return [
        portal(objects, create_object, "POST"),
        portal(objects + "/batch/{op}", batch, "POST"),
        portal(objects + "/search", search, "POST"),
        portal(objects + "/{object_id}", get_object, "GET"),
        portal(objects + "/{object_id}", update_object, "PATCH"),
        portal(objects + "/{object_id}", archive_object, "DELETE"),
        portal("/crm/v4/objects/{from_type}/{from_id}/associations/default/{to_type}/{to_id}",
               associate_default, "PUT"),
        portal("/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}",
               list_associations, "GET"),
        portal("/crm/v4/associations/{from_type}/{to_type}/labels", association_labels, "GET"),
        portal("/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
               batch_associate_default, "POST"),
        portal("/crm/v4/associations/{from_type}/{to_type}/batch/read", batch_read_associations,
               "POST"),
        portal("/crm/v3/properties/{object_type}", list_properties, "GET"),
        portal("/crm/v3/properties/{object_type}", create_property, "POST"),
        portal("/crm/v3/properties/{object_type}/groups", list_groups, "GET"),
        portal("/crm/v3/properties/{object_type}/groups", create_group, "POST"),
        portal("/crm/v3/properties/{object_type}/{name}", get_property, "GET"),
        portal(callbacks + "/complete", complete_callbacks, "POST"),
        portal(callbacks + "/{callback_id}/complete", complete_callback, "POST"),
        portal(dated + "/complete", complete_callbacks, "POST"),
        portal(dated + "/{callback_id}/complete", complete_callback, "POST"),
        developer(actions, create_action, "POST"),
        developer(actions, list_actions, "GET"),
        developer(actions + "/{definition_id}", get_action, "GET"),
        developer(actions + "/{definition_id}", update_action, "PATCH"),
        *oauth_routes(state),
        *admin_routes(state.calls, state.faults, state.reset, state.snapshot),
        *_admin_routes(state),
        *oauth_admin_routes(state),
    ]

