"""The install flow and the settings pages, mounted on the API app (api.create_app) when a database
and an OAuth client are configured.

Routes:
  GET  /install                                  -> HubSpot's authorize page (state bound to the session)
  GET  /oauth/callback                           <- HubSpot: exchange the code, record the install,
                                                    sign the user in to that portal
  GET  /settings                                 the portals this session may manage
  GET  /settings/portals/{id}                    status, Kleer, field mappings, recent runs
  POST /settings/portals/{id}/kleer              connect Kleer (checked live before it is saved)
  POST /settings/portals/{id}/kleer/check        check the stored Kleer credentials now
  POST /settings/portals/{id}/properties         create the missing kleer_* properties
  POST /settings/portals/{id}/mappings/{kind}    save the client or project field mappings
  POST /settings/portals/{id}/runs/replay        replay a failed run of this portal
  POST /signout

Sign-in is the install: the OAuth grant proves which HubSpot user may manage which portal. The
session (a signed cookie, expiring session_max_age_s after sign-in) holds that user's id and the
portals proven with it; any other portal answers 403. Every POST carries the session's CSRF token.
No secret (token, API key) is ever put in a page, a session or a message.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client

from actions.mappings import KLEER_FIELD_TO_INPUT, load_mappings
from hubspot_api.client import HubSpotClient
from kleer_api.client import KleerClient
from oauth.scopes import required_scope_names
from oauth.tokens import PortalDisconnected
from ops.portal_setup import OBJECT_TYPES, PROPERTIES, SetupReport, setup_hubspot, setup_portal
from ops.replay import ReplayError, replay
from pacing import RateLimit
from portals.directory import KleerAccess
from portals.services import PortalServices
from service_errors import ServiceError
from settings import Settings
from storage.db import StorageUnavailable
from storage.records import PortalRecord, as_utc
from sync import schedules
from web.forms import (
    OBJECT_OF_KIND,
    KleerForm,
    MappingRow,
    MappingsForm,
    kleer_field_labels,
    parse_kleer_form,
    parse_mappings_form,
    rows_of,
)
from web.runs import last_syncs, recent_runs, run_of_portal

log = logging.getLogger("web")

HERE = Path(__file__).resolve().parent
# Every path the pages answer (api.create_app routes these to them).
PATHS = ("/install", "/oauth/callback", "/signout", "/settings", "/settings/{rest:path}")
SESSION_COOKIE = "kleer_settings"
STATE_TTL_S = 600  # an install link's state is good for 10 minutes (HubSpot's codes live as long)
MAX_FORM_BYTES = 256 * 1024
BLANK_ROWS = 2  # empty mapping rows under the saved ones (more with "Add a row")
KINDS = ("client", "project")
KIND_TITLES = {"client": "Clients (from companies)", "project": "Projects (from deals)"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def enabled(settings: Settings, services: PortalServices | None) -> bool:
    """Mounted only with a database (where installs go) and an OAuth client (to sign in)."""
    if services is not None:
        return services.store is not None and services.oauth is not None
    return bool(settings.database_url and settings.hubspot_client_id)


class PageError(Exception):
    """Answered with the message page: a status, a title and what to do."""

    def __init__(self, status: int, title: str, message: str, sign_in: bool = False) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.sign_in = status, title, message, sign_in


@dataclass
class SignedIn:
    user_id: int
    email: str | None
    portals: list[int]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _when(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def create_web_app(settings: Settings, get_services: Callable[[], PortalServices],
                   get_client: Callable[[], Client]) -> Starlette:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["when"] = _when
    max_age = settings.session_max_age_s
    public = settings.public_base_url or ""
    hubspot_limit = RateLimit.from_window(settings.hubspot_app_rate_limit, 10.0,
                                          settings.hubspot_rate_share)
    kleer_limit = RateLimit(settings.kleer_rate_limit, settings.kleer_rate_burst)

    # -- sessions -------------------------------------------------------------------------------
    def signed_in(request: Request) -> SignedIn | None:
        session = request.session
        since = session.get("since")
        if not isinstance(since, int | float) or not isinstance(session.get("user_id"), int):
            return None
        if time.time() - since > max_age:  # absolute expiry, however active the session was
            session.clear()
            return None
        portals = [p for p in session.get("portals", []) if isinstance(p, int)]
        return SignedIn(session["user_id"], session.get("email"), portals)

    def require_user(request: Request) -> SignedIn:
        user = signed_in(request)
        if user is None:
            raise PageError(401, "Please sign in", "You are not signed in, or your session "
                            "expired. Sign in with HubSpot to manage your portals.", sign_in=True)
        return user

    def require_portal(request: Request, portal_id: int) -> SignedIn:
        user = require_user(request)
        if portal_id not in user.portals:
            # The same answer whether the portal exists or not: nothing to learn here.
            raise PageError(403, "Not your portal", f"Your sign-in does not cover HubSpot portal "
                            f"{portal_id}. Sign in again and choose that account on HubSpot's "
                            "page (only accounts your HubSpot user can install apps into are "
                            "offered).", sign_in=True)
        return user

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str) or len(token) < 20:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    async def form_of(request: Request) -> dict[str, str]:
        """The POSTed form after the CSRF check (403 without the session's token)."""
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
            raise PageError(413, "Form too large", "This form is larger than the settings pages "
                            f"accept ({MAX_FORM_BYTES // 1024} KB); nothing was changed.")
        async with request.form(max_files=0, max_fields=1000) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        sent, expected = fields.get("csrf", ""), request.session.get("csrf")
        if not isinstance(expected, str) or not secrets.compare_digest(sent, expected):
            raise PageError(403, "Form expired", "This form was not sent from your current "
                            "settings page (or your session changed since). Reload the page and "
                            "try again; nothing was changed.")
        return fields

    def flash(request: Request, kind: str, text: str) -> None:
        request.session.setdefault("flash", []).append([kind, text[:1000]])

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        user = signed_in(request)
        messages = request.session.pop("flash", []) if user else []
        page = env.get_template(template).render(
            user=user, csrf=csrf_token(request) if user else "", messages=messages, **context)
        return HTMLResponse(page, status)

    async def page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return render(request, "message.html", exc.status, title=exc.title, message=exc.message,
                      sign_in=exc.sign_in)

    def services() -> PortalServices:
        found = get_services()
        assert found.store is not None and found.oauth is not None and found.tokens is not None
        return found

    # -- install and sign-in --------------------------------------------------------------------
    async def install(request: Request) -> Response:
        state = secrets.token_urlsafe(32)
        request.session["oauth_state"] = state
        request.session["oauth_state_at"] = time.time()
        return RedirectResponse(services().oauth.authorize_url_for(state), 303)

    async def callback(request: Request) -> Response:
        params = request.query_params
        expected = request.session.pop("oauth_state", None)
        issued = request.session.pop("oauth_state_at", 0)
        if params.get("error"):
            why = params.get("error_description") or params["error"]
            raise PageError(400, "Not installed", f"HubSpot did not grant access: {why[:300]} "
                            "Nothing was installed or changed.", sign_in=True)
        state = params.get("state") or ""
        if (not isinstance(expected, str) or not secrets.compare_digest(state, expected)
                or not isinstance(issued, int | float) or time.time() - issued > STATE_TTL_S):
            raise PageError(400, "Sign-in link expired", "This answer from HubSpot does not "
                            "belong to a sign-in started in this browser in the last 10 minutes "
                            "(or it was used already). Start again from the install link.",
                            sign_in=True)
        code = params.get("code") or ""
        if not code:
            raise PageError(400, "Not installed", "HubSpot sent no authorization code. Start "
                            "again from the install link.", sign_in=True)
        found = services()
        try:
            tokens = await found.oauth.exchange_code(code)
            info = await found.oauth.token_info(tokens.access_token)
        except ServiceError as exc:
            log.warning("install failed: %s", exc)
            raise PageError(502, "Not installed", f"HubSpot refused the install: {exc.message} "
                            "Start again from the install link; if it keeps failing, check the "
                            "app's client id, secret and redirect URL.", sign_in=True) from None
        if info.user_id is None:
            raise PageError(502, "Not installed", "HubSpot did not say which user installed the "
                            "app, so nobody could manage it. Start again from the install link.",
                            sign_in=True)
        try:
            await found.store.record_install(info.hub_id, info.hub_domain, info.user_id, info.user,
                                             tokens)
        except StorageUnavailable:
            log.exception("install of portal %s not recorded", info.hub_id)
            raise PageError(503, "Not installed", "The database is unavailable right now, so the "
                            "install could not be recorded. Try again in a minute.",
                            sign_in=True) from None
        session = request.session
        previous = signed_in(request)
        if previous is None or previous.user_id != info.user_id:
            session.clear()  # another user (or none): a new session, a new CSRF token
            session.update(user_id=info.user_id, since=time.time(), portals=[])
            csrf_token(request)
        session["email"] = info.user
        session["since"] = time.time()  # proven again just now
        session["portals"] = sorted({*session.get("portals", []), info.hub_id})
        log.info("portal %s installed by user %s", info.hub_id, info.user_id)
        missing = [s for s in required_scope_names() if s not in info.scopes]
        flash(request, "ok", f"Connected to HubSpot portal {info.hub_id}"
              + (f" ({info.hub_domain})." if info.hub_domain else "."))
        if missing:
            flash(request, "error", "HubSpot granted fewer scopes than the actions need; missing: "
                  + ", ".join(missing) + ". Check the app's scopes and install again.")
        return RedirectResponse(f"/settings/portals/{info.hub_id}", 303)

    async def sign_out(request: Request) -> Response:
        await form_of(request)
        request.session.clear()
        return RedirectResponse("/settings", 303)

    # -- pages ----------------------------------------------------------------------------------
    async def portals_page(request: Request) -> Response:
        user = signed_in(request)
        if user is None:
            return render(request, "message.html", 200, title="Kleer for HubSpot: settings",
                          message="Sign in with the HubSpot user that installs the app: HubSpot "
                                  "asks which account (portal) to connect, and you come back to "
                                  "its settings.", sign_in=True)
        store = services().store
        mine = [r for r in [await store.portal(p) for p in user.portals] if r is not None]
        others = [r for r in await store.portals_of_user(user.user_id)
                  if r.portal_id not in user.portals]
        return render(request, "portals.html", portals=mine, others=others)

    def hubspot_client(portal_id: int) -> HubSpotClient:
        async def pace() -> None:
            await services().pacer.wait(f"hubspot:{portal_id}", hubspot_limit)

        return HubSpotClient(settings.hubspot_base_url, services().tokens.source(portal_id),
                             timeout_s=settings.http_timeout_s, pace=pace)

    @asynccontextmanager
    async def kleer_client(company_id: int, api_key: str) -> AsyncIterator[KleerClient]:
        key = KleerAccess(company_id, api_key).pacing_key

        async def pace() -> None:
            await services().pacer.wait(key, kleer_limit)

        client = KleerClient(settings.kleer_base_url, company_id, api_key,
                             timeout_s=settings.http_timeout_s, pace=pace)
        try:
            yield client
        finally:
            await client.aclose()

    async def kleer_check(company_id: int, api_key: str) -> str | None:
        """None when Kleer accepts the company and key (a harmless read), else why not."""
        try:
            async with kleer_client(company_id, api_key) as kleer:
                await kleer.list_all("product")
        except ServiceError as exc:
            detail = str(exc).replace(api_key, "[redacted]")[:300]
            if exc.status in (401, 403):
                return (f"Kleer refused this API key for company {company_id} ({detail}). Check "
                        "that the key is the one issued for this company.")
            if exc.status == 404:
                return (f"Kleer does not know company {company_id} for this key ({detail}). "
                        "Check the company id.")
            if exc.retryable:
                return (f"Kleer could not be reached or is busy ({detail}). Try again in a "
                        "minute.")
            return f"Kleer refused the check ({detail})."
        return None

    async def portal_record(portal_id: int) -> PortalRecord:
        record = await services().store.portal(portal_id)
        if record is None:
            raise PageError(404, "Portal not installed", f"HubSpot portal {portal_id} has not "
                            "installed the app. Install it from the install link.", sign_in=True)
        return record

    async def properties_of(record: PortalRecord) -> tuple[dict[str, list[dict]], dict[str, str]]:
        """The portal's properties per object type, and why a type could not be read."""
        if record.status == "disconnected":
            reason = "the portal is disconnected: reconnect it to read its properties"
            return {}, {t: reason for t in OBJECT_TYPES}
        hubspot = hubspot_client(record.portal_id)
        try:
            answers = await asyncio.gather(*(hubspot.list_properties(t) for t in OBJECT_TYPES),
                                           return_exceptions=True)
        finally:
            await hubspot.aclose()
        found: dict[str, list[dict]] = {}
        problems: dict[str, str] = {}
        for object_type, answer in zip(OBJECT_TYPES, answers, strict=True):
            if isinstance(answer, ServiceError | PortalDisconnected):
                problems[object_type] = str(answer)[:300]
            elif isinstance(answer, BaseException):
                log.error("reading %s properties of portal %s failed", object_type,
                          record.portal_id, exc_info=answer)
                problems[object_type] = f"could not be read ({type(answer).__name__})"
            else:
                found[object_type] = answer
        return found, problems

    async def portal_page(request: Request, portal_id: int, status: int = 200,
                          kleer_form: KleerForm | None = None,
                          mapping_forms: dict[str, MappingsForm] | None = None) -> HTMLResponse:
        record = await portal_record(portal_id)
        store = services().store
        (properties, property_problems), stored, (runs, runs_error), sync = await asyncio.gather(
            properties_of(record), store.mappings(portal_id), runs_of(portal_id),
            sync_of(portal_id))
        if property_problems and record.status == "connected":
            record = await portal_record(portal_id)  # a refused refresh disconnects it meanwhile
        checks = []
        for prop in PROPERTIES:
            listing = properties.get(prop.object_type)
            current = None if listing is None else next(
                (p for p in listing if p.get("name") == prop.name), None)
            if listing is None:
                state = "unknown"
            elif current is None:
                state = "missing"
            elif prop.unique and not current.get("hasUniqueValue"):
                state = "not unique"
            else:
                state = "exists"
            checks.append({"object_type": prop.object_type, "name": prop.name,
                           "unique": prop.unique, "state": state})
        mappings = []
        for kind in KINDS:
            object_type = OBJECT_OF_KIND[kind]
            listing = properties.get(object_type)
            names = {p.get("name") for p in listing} if listing is not None else None
            form = (mapping_forms or {}).get(kind)
            if kind in stored:
                source = "saved on this page"
            else:
                try:
                    in_file = load_mappings(settings.mappings_dir, portal_id, kind)
                except ValueError as exc:
                    in_file, source = [], f"the mappings file is broken: {exc}"
                else:
                    source = ("defaults (nothing saved yet)" if settings.mappings_dir is None
                              or not (settings.mappings_dir / f"{portal_id}.json").exists()
                              else "from the mappings file (MAPPINGS_DIR)")
            rows = form.rows if form else rows_of(stored[kind] if kind in stored else in_file)
            rows = list(rows) + [MappingRow() for _ in range(BLANK_ROWS)]
            options = sorted(listing or [], key=lambda p: (str(p.get("label") or p.get("name")),
                                                           str(p.get("name"))))
            mappings.append({
                "kind": kind, "title": KIND_TITLES[kind], "object_type": object_type,
                "source": source, "rows": rows, "errors": form.errors if form else [],
                "fields": kleer_field_labels(kind), "options": options, "names": names,
                "problem": property_problems.get(object_type),
                "missing": [r.hubspot for r in rows if r.hubspot and names is not None
                            and r.hubspot not in names],
            })
        return render(request, "portal.html", status, portal=record, checks=checks, sync=sync,
                      property_problems=property_problems, mappings=mappings,
                      kleer=kleer_form or KleerForm(), runs=runs, runs_error=runs_error,
                      token_valid=record.access_expires_at is not None
                      and as_utc(record.access_expires_at) > datetime.now(UTC))

    async def runs_of(portal_id: int) -> tuple[list, str | None]:
        try:
            return await recent_runs(get_client(), portal_id,
                                     namespace=settings.temporal_namespace,
                                     temporal_ui_url=settings.temporal_ui_url), None
        except Exception as exc:  # visibility down or not set up: the rest of the page still works
            log.warning("listing runs of portal %s failed: %s", portal_id, exc)
            return [], f"Temporal's run list could not be read ({type(exc).__name__}: {exc})"[:300]

    async def sync_of(portal_id: int) -> dict[str, Any]:
        """The portal's outbound sync: schedule, last runs, unmatched clients."""
        client, store = get_client(), services().store
        try:
            state, runs, unmatched = await asyncio.gather(
                schedules.status(client, portal_id),
                last_syncs(client, portal_id, namespace=settings.temporal_namespace,
                           temporal_ui_url=settings.temporal_ui_url),
                store.unmatched(portal_id))
        except StorageUnavailable:
            raise
        except Exception as exc:  # Temporal away: the rest of the page still works
            log.warning("reading the sync of portal %s failed: %s", portal_id, exc)
            return {"error": f"The sync's schedule could not be read ({type(exc).__name__})",
                    "state": None, "runs": [], "unmatched": []}
        return {"error": None, "state": state, "runs": runs, "unmatched": unmatched}

    async def sync_control(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        await form_of(request)
        op, client = request.path_params["op"], get_client()
        if not (await schedules.status(client, portal_id)).exists:
            flash(request, "error", "This portal has no sync schedule yet: workers create it "
                                    "within a few minutes of the install.")
            return back(portal_id, "sync")
        if op == "pause":
            await schedules.pause(client, portal_id, "paused on the settings page")
            flash(request, "ok", "Outbound sync paused: no runs until you resume it.")
        elif op == "resume":
            await schedules.resume(client, portal_id, "resumed on the settings page")
            flash(request, "ok", "Outbound sync resumed.")
        elif op == "run-now":
            await schedules.run_now(client, portal_id)
            flash(request, "ok", "A sync run was started (skipped if one is already going); "
                                 "its summary appears below when it ends.")
        else:
            raise PageError(404, "Unknown sync action", "Use pause, resume or run now.")
        return back(portal_id, "sync")

    def portal_id_of(request: Request) -> int:
        return int(request.path_params["portal_id"])

    async def portal_settings(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        return await portal_page(request, portal_id)

    def back(portal_id: int, anchor: str) -> RedirectResponse:
        return RedirectResponse(f"/settings/portals/{portal_id}#{anchor}", 303)

    # -- forms ----------------------------------------------------------------------------------
    async def connect_kleer(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        fields = await form_of(request)
        await portal_record(portal_id)
        shown, company_id, api_key = parse_kleer_form(fields)
        if company_id is not None and api_key is not None:
            problem = await kleer_check(company_id, api_key)
            if problem:
                shown.errors.append(problem + " Nothing was saved.")
            else:
                await services().store.set_kleer_credentials(portal_id, company_id, api_key)
                log.info("portal %s connected Kleer company %s", portal_id, company_id)
                flash(request, "ok", f"Kleer connected: company {company_id}, key stored "
                      "(checked with Kleer just now).")
                return back(portal_id, "kleer")
        return await portal_page(request, portal_id, 400, kleer_form=shown)

    async def check_kleer(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        await form_of(request)
        creds = await services().store.kleer_credentials(portal_id)
        if creds is None:
            flash(request, "error", "Kleer is not connected yet: enter the company id and API key "
                                    "below.")
        elif problem := await kleer_check(creds.company_id, creds.api_key):
            flash(request, "error", "Kleer check failed: " + problem)
        else:
            flash(request, "ok", f"Kleer check passed: company {creds.company_id} accepts the "
                                 "stored key.")
        return back(portal_id, "status")

    async def create_properties(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        await form_of(request)
        record = await portal_record(portal_id)
        if record.status == "disconnected":
            flash(request, "error", "The portal is disconnected: reconnect it first.")
            return back(portal_id, "status")
        creds = await services().store.kleer_credentials(portal_id)
        hubspot = hubspot_client(portal_id)
        try:
            if creds is not None:
                async with kleer_client(creds.company_id, creds.api_key) as kleer:
                    report = await setup_portal(hubspot, kleer, portal_id)
            else:
                report = SetupReport(portal_id)
                await setup_hubspot(hubspot, report)
        except PortalDisconnected as exc:
            flash(request, "error", str(exc))
            return back(portal_id, "status")
        finally:
            await hubspot.aclose()
        created = report.created()
        failed = [f"{s.what} ({s.detail})" for s in report.steps if s.status == "failed"]
        if created:
            flash(request, "ok", "Created in HubSpot: " + "; ".join(created) + ".")
        if failed:
            flash(request, "error", "Not created: " + "; ".join(failed))
        if not created and not failed:
            flash(request, "ok", "Every Kleer property exists already; nothing to create.")
        return back(portal_id, "status")

    async def save_mappings(request: Request) -> Response:
        portal_id = portal_id_of(request)
        kind = request.path_params["kind"]
        require_portal(request, portal_id)
        fields = await form_of(request)
        if kind not in KLEER_FIELD_TO_INPUT:
            raise PageError(404, "Unknown mappings", f'There are no "{kind[:40]}" mappings; '
                            "only client and project.")
        await portal_record(portal_id)
        shown, mappings = parse_mappings_form(kind, fields)
        if mappings is None:
            return await portal_page(request, portal_id, 400, mapping_forms={kind: shown})
        await services().store.set_mappings(portal_id, kind, mappings)
        log.info("portal %s saved %d %s mappings", portal_id, len(mappings), kind)
        flash(request, "ok", f"{kind.title()} field mappings saved ({len(mappings)} rows); the "
                             "next runs use them.")
        return back(portal_id, f"mappings-{kind}")

    async def replay_run(request: Request) -> Response:
        portal_id = portal_id_of(request)
        require_portal(request, portal_id)
        fields = await form_of(request)
        workflow_id = (fields.get("workflow_id") or "").strip()
        client = get_client()
        if not workflow_id or len(workflow_id) > 400 or not await run_of_portal(
                client, workflow_id, portal_id):
            flash(request, "error", f"No run {workflow_id[:100]!r} of portal {portal_id} to "
                                    "replay.")
            return back(portal_id, "runs")
        try:
            handle = await replay(client, settings, workflow_id)
        except ReplayError as exc:
            flash(request, "error", f"Not replayed: {exc}")
        else:
            flash(request, "ok", f"Replay started: {handle.id}. It appears in the list below "
                                 "within a few seconds.")
        return back(portal_id, "runs")

    portal = "/settings/portals/{portal_id:int}"
    routes = [
        Route("/install", install, methods=["GET"]),
        Route("/oauth/callback", callback, methods=["GET"]),
        Route("/signout", sign_out, methods=["POST"]),
        Route("/settings", portals_page, methods=["GET"]),
        Route(portal, portal_settings, methods=["GET"]),
        Route(portal + "/kleer", connect_kleer, methods=["POST"]),
        Route(portal + "/kleer/check", check_kleer, methods=["POST"]),
        Route(portal + "/properties", create_properties, methods=["POST"]),
        Route(portal + "/mappings/{kind:str}", save_mappings, methods=["POST"]),
        Route(portal + "/runs/replay", replay_run, methods=["POST"]),
        Route(portal + "/sync/{op:str}", sync_control, methods=["POST"]),
        Mount("/settings/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=settings.session_secret or "", max_age=max_age,
                   session_cookie=SESSION_COOKIE, same_site="lax",
                   https_only=urlsplit(public).scheme == "https"),
    ]

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("storage unavailable: %s", exc)
        return await page_error(request, PageError(
            503, "Try again", "The database is unavailable right now; nothing was changed. Try "
                              "again in a minute."))

    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={PageError: page_error, StorageUnavailable: unavailable})


def web_routes(settings: Settings, get_services: Callable[[], PortalServices],
               get_client: Callable[[], Client]) -> list[BaseRoute]:
    """The install flow and settings pages as routes for the API app, each handing its request
    to the pages' own app (sessions, CSRF, headers); every other path stays the API's. Without a
    SESSION_SECRET they answer 503 saying so, instead of signing sessions with a guessable key."""
    app: ASGIApp
    if settings.session_secret:
        app = create_web_app(settings, get_services, get_client)
    else:
        async def off(request: Request) -> Response:
            return HTMLResponse("<!doctype html><title>Settings pages off</title><p>The settings "
                                "pages and the install link need SESSION_SECRET (a long random "
                                "string that signs their sessions); set it and restart the API.",
                                503)

        app = Starlette(routes=[Route("/{rest:path}", off, methods=["GET", "POST"])])
    return [Route(path, app) for path in PATHS]
