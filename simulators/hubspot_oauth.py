"""HubSpot's OAuth side in the simulator: the app, its users, the authorize page and the tokens.

`OAuthState` holds the app registration (client id/secret, redirect URIs, scopes), the simulated
HubSpot users and which portals each may install into, and every code and token issued; `routes`
serves HubSpot's endpoints for them and `admin_routes` the `/_sim/oauth` switches. The CRM side
asks `OAuthState` whether a bearer token is a live access token (`portal_for_access_token`) or
an expired one (`expired_since`), so expired tokens get HubSpot's 401 `EXPIRED_AUTHENTICATION`.

Sources; every behaviour below names the one it follows:
  [W]   Working with OAuth (legacy public apps): authorize URL, its query parameters, the account
        chooser, the redirect with `code` or `error`/`error_description`.
        https://developers.hubspot.com/docs/apps/legacy-apps/authentication/working-with-oauth
  [Q]   OAuth quickstart guide: `scope` separated by URL-encoded spaces, `optional_scope` dropped
        when the account lacks the product, `state` returned as given.
        https://developers.hubspot.com/docs/apps/legacy-apps/authentication/oauth-quickstart-guide
  [V1]  Manage OAuth tokens using the v1 APIs: POST /oauth/v1/token (both grants, form-encoded),
        GET /oauth/v1/access-tokens/{token}, DELETE /oauth/v1/refresh-tokens/{token} (deletes the
        refresh token only, access tokens keep working), the OAuth error body.
        https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide
  [V3]  Manage OAuth tokens using the v3 APIs: the authorization code is single-use with a short
        window; access tokens expire after 30 minutes; v1 took parameters as query parameters.
        https://developers.hubspot.com/docs/api-reference/legacy/authentication/manage-oauth-tokens
  [META] Token metadata reference (fields of the access-token answer).
        https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/get-oauth-token-metadata
  [CL]  Changelog: the token answer also carries `hub_id` and `scopes` (since 2025-08-18).
        https://developers.hubspot.com/changelog/additional-details-returned-when-generating-oauth-access-tokens
  [RFC] RFC 6749 (OAuth 2.0): 4.1.2 code lifetime (10 minutes at most, single use), 4.1.2.1
        `access_denied`, 5.2 token error codes. https://datatracker.ietf.org/doc/html/rfc6749
  [EXP] The 401 body for an expired access token (observed, not in HubSpot's reference):
        https://useparagon.com/integration-error-solutions/hubspot-the-oauth-token-used-to-make-this-call-expired
        and its `context: {"expire time": [...]}` as integrations quote it.
  [BAD] HubSpot-specific `status` values besides BAD_REFRESH_TOKEN (BAD_AUTH_CODE, BAD_CLIENT_ID,
        BAD_CLIENT_SECRET, BAD_REDIRECT_URI, BAD_GRANT_TYPE) are reported by integrators, not
        documented: https://nango.dev/blog/hubspot-oauth-bad-refresh-token (all at HTTP 400).

Token errors (what this simulator answers, and why): every refusal of the token endpoint is
HTTP 400 with the documented four-field body [V1] `{"error", "error_description", "status",
"message"}`: `error` is the RFC 6749 5.2 code (`invalid_grant` for a bad/used/expired code, a
redirect URI that differs from the authorization's, and an unknown, revoked or uninstalled
refresh token; `invalid_client` for a wrong client id or secret; `unsupported_grant_type`;
`invalid_request` for a missing parameter), `status` HubSpot's name for it [BAD]. HubSpot's own
docs show only the refresh-token case; the others follow RFC 6749 and [BAD].
"""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from simulators.common import deep

if TYPE_CHECKING:
    from simulators.hubspot import HubSpotState

ACCESS_TOKEN_TTL_S = 1800  # [V3] "expires after 30 minutes"; [V1] example answer expires_in 1800
CODE_TTL_S = 600  # [V3] "a short window"; [RFC] 4.1.2 recommends 10 minutes at most


class TokenError(Exception):
    """A refusal of the token endpoints, answered as HubSpot's OAuth error body [V1]."""

    def __init__(self, error: str, status: str, description: str, http_status: int = 400) -> None:
        super().__init__(description)
        self.error, self.status, self.description, self.http_status = (error, status, description,
                                                                       http_status)

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description,
                "status": self.status, "message": self.description}


class AuthorizeError(Exception):
    """A request the authorize page refuses with an error page (it never redirects then) [W]."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.message, self.http_status = message, http_status


@dataclass
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scopes: list[str]
    optional_scopes: list[str]
    app_id: int
    name: str


@dataclass
class User:
    user_id: int
    email: str
    portal_ids: list[int]


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    portal_id: int
    user_id: int
    scopes: list[str]
    expires_at: float
    used: bool = False


@dataclass
class Token:
    client_id: str
    portal_id: int
    user_id: int
    scopes: list[str]
    expires_at: float | None = None  # access tokens only
    revoked: bool = False


@dataclass
class OAuthState:
    """The app registration, users, codes and tokens; guarded by the HubSpot state's lock."""

    lock: threading.RLock
    app: App | None = None
    users: dict[int, User] = field(default_factory=dict)
    default_user_id: int | None = None
    codes: dict[str, Code] = field(default_factory=dict)
    refresh_tokens: dict[str, Token] = field(default_factory=dict)
    access_tokens: dict[str, Token] = field(default_factory=dict)
    hub_domains: dict[int, str] = field(default_factory=dict)
    access_token_ttl_s: float = ACCESS_TOKEN_TTL_S
    code_ttl_s: float = CODE_TTL_S
    clock: Callable[[], float] = time.time

    # -- configuration --

    def configure_app(self, client_id: str, client_secret: str, redirect_uris: list[str],
                      scopes: list[str], optional_scopes: list[str] | None = None,
                      app_id: int = 1, name: str = "Kleer workflow actions",
                      access_token_ttl_s: float | None = None) -> None:
        """Register the app as its Auth settings page would [W]: `scopes` are the required ones."""
        with self.lock:
            self.app = App(client_id, client_secret, list(redirect_uris), list(scopes),
                           list(optional_scopes or []), int(app_id), name)
            if access_token_ttl_s is not None:
                self.access_token_ttl_s = float(access_token_ttl_s)

    def add_user(self, user_id: int, email: str, portal_ids: list[int],
                 default: bool = False) -> None:
        """A HubSpot user who may install apps into these portals (super admin there) [W]."""
        with self.lock:
            self.users[int(user_id)] = User(int(user_id), email, [int(p) for p in portal_ids])
            if default or self.default_user_id is None:
                self.default_user_id = int(user_id)

    def hub_domain(self, portal_id: int) -> str:
        return self.hub_domains.get(portal_id, f"portal-{portal_id}.example.com")

    # -- the authorize page [W] --

    def user(self, ref: str | None) -> User:
        """The signed-in user: `ref` is a user id or an email; none means the default user."""
        with self.lock:
            if not ref:
                if self.default_user_id is None:
                    raise AuthorizeError("No HubSpot user is signed in (the simulator has no users).",
                                         401)
                return self.users[self.default_user_id]
            for user in self.users.values():
                if ref in (str(user.user_id), user.email):
                    return user
        raise AuthorizeError(f"Unknown HubSpot user {ref!r}.", 401)

    def check_request(self, params: dict[str, str]) -> tuple[App, list[str]]:
        """The app and the scopes it would be granted, or AuthorizeError [W][Q]."""
        with self.lock:
            app = self.app
        if app is None or params.get("client_id") != app.client_id:
            raise AuthorizeError("Authorization failed because the client_id is not valid: no app "
                                 "with this client ID exists.")
        # [W] the redirect URL is registered on the app's Auth settings page; exact match.
        if params.get("redirect_uri") not in app.redirect_uris:
            raise AuthorizeError("Authorization failed because the redirect_uri does not match any "
                                 "redirect URL in the app's settings.")
        requested = _scope_list(params.get("scope"))
        optional = _scope_list(params.get("optional_scope"))
        # [W] scopes checked in the app's settings are required and must all be in `scope`.
        missing = [s for s in app.scopes if s not in requested]
        unknown = [s for s in requested if s not in app.scopes]
        unknown_optional = [s for s in optional if s not in app.optional_scopes + app.scopes]
        if missing or unknown or unknown_optional:
            parts = []
            if missing:
                parts.append("missing required scopes: " + ", ".join(missing))
            if unknown or unknown_optional:
                parts.append("scopes not configured for this app: "
                             + ", ".join(unknown + unknown_optional))
            raise AuthorizeError("Authorization failed because there is a mismatch between the "
                                 "scopes in the install URL and the app's configured scopes ("
                                 + "; ".join(parts) + ").")
        # [Q] optional scopes are dropped only when the account lacks the product; every
        # simulated portal has every product, so all are granted.
        return app, list(dict.fromkeys(requested + optional))

    def grant(self, params: dict[str, str], user: User, portal_id: int) -> str:
        """The user grants access to one portal: a fresh single-use code [W][V3]."""
        app, scopes = self.check_request(params)
        if portal_id not in user.portal_ids:
            raise AuthorizeError(f"{user.email} cannot install apps into account {portal_id}.", 403)
        code = str(uuid.uuid4())
        with self.lock:
            self.codes[code] = Code(app.client_id, params["redirect_uri"], portal_id, user.user_id,
                                    scopes, self.clock() + self.code_ttl_s)
        return code

    # -- the token endpoint [V1] --

    def _client(self, form: dict[str, str]) -> App:
        for name in ("client_id", "client_secret"):
            if not form.get(name):
                raise TokenError("invalid_request", "BAD_REQUEST", f"missing {name}")
        app = self.app
        if app is None or form["client_id"] != app.client_id:
            raise TokenError("invalid_client", "BAD_CLIENT_ID", "missing or unknown client id")
        if not secrets.compare_digest(form["client_secret"], app.client_secret):
            raise TokenError("invalid_client", "BAD_CLIENT_SECRET",
                             "missing or invalid client secret")
        return app

    def token(self, form: dict[str, str]) -> tuple[int | None, dict[str, Any]]:
        """(portal id or None, answer) for POST /oauth/v1/token; TokenError when refused."""
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise TokenError("unsupported_grant_type", "BAD_GRANT_TYPE",
                             "grant_type must be authorization_code or refresh_token")
        with self.lock:
            app = self._client(form)
            if grant_type == "authorization_code":
                return self._exchange(app, form)
            return self._refresh(app, form)

    def _exchange(self, app: App, form: dict[str, str]) -> tuple[int | None, dict[str, Any]]:
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise TokenError("invalid_request", "BAD_REQUEST", f"missing {name}")
        code = self.codes.get(form["code"])
        # [V3] single-use, short-lived; [RFC] 5.2 invalid_grant for a bad, used or expired code.
        if (code is None or code.used or code.client_id != app.client_id
                or code.expires_at <= self.clock()):
            raise TokenError("invalid_grant", "BAD_AUTH_CODE", "missing or unknown auth code")
        # [RFC] 4.1.3/5.2: the redirect URI must be the one the code was issued for.
        if form["redirect_uri"] != code.redirect_uri:
            raise TokenError("invalid_grant", "BAD_REDIRECT_URI",
                             "redirect_uri does not match the one used to authorize")
        code.used = True
        refresh_token = f"na1-{uuid.uuid4()}"
        self.refresh_tokens[refresh_token] = Token(app.client_id, code.portal_id, code.user_id,
                                                   list(code.scopes))
        return code.portal_id, self._issue(refresh_token, self.refresh_tokens[refresh_token])

    def _refresh(self, app: App, form: dict[str, str]) -> tuple[int | None, dict[str, Any]]:
        if not form.get("refresh_token"):
            raise TokenError("invalid_request", "BAD_REQUEST", "missing refresh_token")
        grant = self.refresh_tokens.get(form["refresh_token"])
        # [V1] the documented answer for an invalid, expired or revoked refresh token.
        if grant is None or grant.revoked or grant.client_id != app.client_id:
            raise TokenError("invalid_grant", "BAD_REFRESH_TOKEN",
                             "refresh token is invalid, expired or revoked")
        # The refresh token stays the same across refreshes (observed; [V1] shows no rotation).
        return grant.portal_id, self._issue(form["refresh_token"], grant)

    def _issue(self, refresh_token: str, grant: Token) -> dict[str, Any]:
        access_token = secrets.token_urlsafe(96)
        self.access_tokens[access_token] = Token(
            grant.client_id, grant.portal_id, grant.user_id, list(grant.scopes),
            self.clock() + self.access_token_ttl_s)
        # [V1] token_type/refresh_token/access_token/expires_in; [CL] hub_id and scopes.
        return {"token_type": "bearer", "refresh_token": refresh_token,
                "access_token": access_token, "expires_in": int(self.access_token_ttl_s),
                "hub_id": grant.portal_id, "scopes": list(grant.scopes)}

    # -- token metadata [V1][META] --

    def access_token_info(self, token: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            grant = self.access_tokens.get(token)
            now = self.clock()
            if grant is None or grant.revoked or (grant.expires_at or 0) <= now:
                # Not documented: answered like the refresh-token case [V1] (own choice).
                raise TokenError("invalid_grant", "BAD_ACCESS_TOKEN",
                                 "access token is invalid, expired or revoked")
            return grant.portal_id, {
                "token": token, "user": self.users[grant.user_id].email,
                "hub_domain": self.hub_domain(grant.portal_id), "scopes": list(grant.scopes),
                "hub_id": grant.portal_id, "app_id": self.app.app_id if self.app else None,
                "expires_in": int((grant.expires_at or now) - now), "user_id": grant.user_id,
                "token_type": "access", "is_private_distribution": False}

    def refresh_token_info(self, token: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            grant = self._live_refresh_token(token)
            return grant.portal_id, {
                "token": token, "user": self.users[grant.user_id].email,
                "hub_domain": self.hub_domain(grant.portal_id), "scopes": list(grant.scopes),
                "hub_id": grant.portal_id, "client_id": grant.client_id,
                "user_id": grant.user_id, "token_type": "refresh"}

    def delete_refresh_token(self, token: str) -> int:
        """[V1]: deletes the refresh token only; its access tokens keep working until expiry."""
        with self.lock:
            grant = self._live_refresh_token(token)
            grant.revoked = True
            return grant.portal_id

    def _live_refresh_token(self, token: str) -> Token:
        grant = self.refresh_tokens.get(token)
        if grant is None or grant.revoked:
            raise TokenError("invalid_grant", "BAD_REFRESH_TOKEN",
                             "refresh token is invalid, expired or revoked")
        return grant

    # -- what the CRM endpoints ask --

    def portal_for_access_token(self, token: str) -> int | None:
        with self.lock:
            grant = self.access_tokens.get(token)
            if grant is None or grant.revoked or (grant.expires_at or 0) <= self.clock():
                return None
            return grant.portal_id

    def expired_since(self, token: str) -> tuple[float, float] | None:
        """(seconds since expiry, expiry time) of an expired, not revoked access token."""
        with self.lock:
            grant = self.access_tokens.get(token)
            if grant is None or grant.revoked or grant.expires_at is None:
                return None
            now = self.clock()
            return (now - grant.expires_at, grant.expires_at) if grant.expires_at <= now else None

    # -- admin --

    def expire_access_tokens(self, portal_id: int | None = None) -> int:
        """Make live access tokens (of one portal, or all) expire now; returns how many."""
        with self.lock:
            now, count = self.clock(), 0
            for grant in self.access_tokens.values():
                if (portal_id is None or grant.portal_id == portal_id) and not grant.revoked \
                        and (grant.expires_at or 0) > now:
                    grant.expires_at = now
                    count += 1
            return count

    def uninstall(self, portal_id: int) -> int:
        """The app is uninstalled from the portal: all its codes and tokens die at once
        (https://nango.dev/blog/hubspot-oauth-bad-refresh-token: "When a user uninstalls your app
        from their HubSpot portal, all refresh tokens associated with that app are immediately
        revoked"). Returns how many refresh tokens were revoked."""
        with self.lock:
            revoked = 0
            for grant in [*self.refresh_tokens.values(), *self.access_tokens.values()]:
                if grant.portal_id == portal_id and not grant.revoked:
                    revoked += grant.expires_at is None
                    grant.revoked = True
            for code in self.codes.values():
                if code.portal_id == portal_id:
                    code.used = True
            return revoked

    def installs(self) -> dict[int, list[int]]:
        """Portal -> users holding a live refresh token for it."""
        with self.lock:
            out: dict[int, list[int]] = {}
            for grant in self.refresh_tokens.values():
                if not grant.revoked:
                    out.setdefault(grant.portal_id, [])
                    if grant.user_id not in out[grant.portal_id]:
                        out[grant.portal_id].append(grant.user_id)
            return out

    def snapshot(self) -> dict[str, Any]:
        """Configuration and counts; never a secret or a token."""
        with self.lock:
            app = self.app
            now = self.clock()
            return deep({
                "app": None if app is None else {
                    "client_id": app.client_id, "redirect_uris": app.redirect_uris,
                    "scopes": app.scopes, "optional_scopes": app.optional_scopes,
                    "app_id": app.app_id},
                "access_token_ttl_s": self.access_token_ttl_s,
                "users": {str(u.user_id): {"email": u.email, "portal_ids": u.portal_ids}
                          for u in self.users.values()},
                "default_user_id": self.default_user_id,
                "installs": {str(p): users for p, users in self.installs().items()},
                "live_access_tokens": sum(1 for t in self.access_tokens.values()
                                          if not t.revoked and (t.expires_at or 0) > now)})


def _scope_list(raw: str | None) -> list[str]:
    """[Q] scopes are separated by (URL-encoded) spaces; commas are tolerated as well."""
    return [s for s in (raw or "").replace(",", " ").split() if s]


def expired_message(seconds_ago: float) -> str:
    """[EXP] "The OAuth token used to make this call expired 5 minute(s) ago." (units as seen:
    second(s), minute(s), hour(s), day(s))."""
    seconds = max(0, int(seconds_ago))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            return f"The OAuth token used to make this call expired {seconds // size} {unit}(s) ago."
    return f"The OAuth token used to make this call expired {seconds} second(s) ago."


def expired_body(seconds_ago: float, expired_at: float) -> dict[str, Any]:
    """[EXP] HubSpot's 401 body for a CRM call with an expired access token."""
    when = datetime.fromtimestamp(expired_at, UTC).isoformat(timespec="milliseconds")
    return {"status": "error", "message": expired_message(seconds_ago),
            "correlationId": str(uuid.uuid4()), "category": "EXPIRED_AUTHENTICATION",
            "context": {"expire time": [when.replace("+00:00", "Z")]}}


# -- HTTP --

async def _form(request: Request, query_too: bool = False) -> dict[str, str]:
    """A form-encoded body as a dict (the SimMiddleware replays the body, so no multipart
    parser is needed); v1 also took its values as query parameters [V3]."""
    raw = (await request.body()).decode("utf-8", "replace")
    values = dict(request.query_params) if query_too else {}
    values.update(parse_qsl(raw, keep_blank_values=True))
    return values


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    style = ("body{font-family:system-ui,sans-serif;background:#f5f8fa;color:#33475b;margin:0}"
             "main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;"
             "border:1px solid #cbd6e2;border-radius:4px}"
             "ul.accounts{list-style:none;padding:0}ul.accounts li{margin:.5rem 0}"
             "button{font-size:1rem;padding:.5rem 1rem;cursor:pointer}"
             "button.grant{background:#ff7a59;color:#fff;border:0;border-radius:3px}"
             ".error{color:#d94c53}")
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f' | HubSpot (simulator)</title><style>{style}</style></head><body><main>{body}</main>'
        "</body></html>", status)


def _error_page(exc: AuthorizeError) -> HTMLResponse:
    return _page("Authorization error", '<h1>Something went wrong</h1><p class="error" '
                 f'role="alert">{html.escape(exc.message)}</p>', exc.http_status)


AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "scope", "optional_scope", "state", "user")


def _hidden(params: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{name}" value="{html.escape(params[name])}">'
                   for name in AUTHORIZE_FIELDS if params.get(name) is not None)


def _chooser(oauth: OAuthState, params: dict[str, str], app: App, scopes: list[str], user: User,
             only_portal: int | None) -> HTMLResponse:
    """[W] "a screen that allows them to select their account and grant access"."""
    portals = [p for p in user.portal_ids if only_portal is None or p == only_portal]
    items = "".join(
        f'<li><form method="post" action="/oauth/authorize">{_hidden(params)}'
        f'<input type="hidden" name="portal_id" value="{p}">'
        f'<button class="grant" type="submit" name="decision" value="grant">Grant access to {p}'
        f'</button> <span>{html.escape(oauth.hub_domain(p))}</span></form></li>' for p in portals)
    accounts = (f'<ul class="accounts" aria-label="Accounts">{items}</ul>' if portals else
                '<p role="alert">You have no account to install this app into.</p>')
    scope_items = "".join(f"<li><code>{html.escape(s)}</code></li>" for s in scopes)
    deny = (f'<form method="post" action="/oauth/authorize">{_hidden(params)}'
            '<button type="submit" name="decision" value="deny">Deny access</button></form>')
    return _page("Choose an account", (
        f"<h1>Choose an account</h1><p>Signed in as <strong>{html.escape(user.email)}</strong>. "
        f"<strong>{html.escape(app.name)}</strong> is requesting access to:</p>"
        f'<ul aria-label="Requested scopes">{scope_items}</ul>{accounts}{deny}'))


def _redirect(redirect_uri: str, **params: str | None) -> RedirectResponse:
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), 302)


def _token_error(exc: TokenError) -> JSONResponse:
    return JSONResponse(exc.body(), exc.http_status)


def _keyed(request: Request, portal_id: int | None) -> None:
    """Attribute the call to its portal in the call log."""
    if portal_id is not None and "sim" in request.scope:
        request.scope["sim"]["key"] = portal_id


def routes(state: HubSpotState) -> list[Route]:
    """HubSpot's OAuth endpoints: the authorize page (served on the simulator's own origin,
    where HubSpot serves it on app.hubspot.com) and the v1 token endpoints on the API origin.
    None of them counts against a portal's CRM rate limit."""
    oauth = state.oauth

    async def authorize_page(request: Request) -> Response:
        params = dict(request.query_params)
        only = request.path_params.get("portal_id")  # [W] /oauth/{accountId}/authorize
        try:
            app, scopes = oauth.check_request(params)
            user = oauth.user(params.get("user"))
        except AuthorizeError as exc:
            return _error_page(exc)
        return _chooser(oauth, params, app, scopes, user, only)

    async def authorize_decision(request: Request) -> Response:
        form = await _form(request)
        try:
            oauth.check_request(form)  # hidden fields come back from the browser: check again
            user = oauth.user(form.get("user"))
            if form.get("decision") != "grant":
                # [W] "?error=error_code&error_description=..."; [RFC] 4.1.2.1 access_denied.
                return _redirect(form["redirect_uri"], error="access_denied",
                                 error_description="The user denied access to the app.",
                                 state=form.get("state"))
            portal_id = int(form.get("portal_id") or 0)
            code = oauth.grant(form, user, portal_id)
        except AuthorizeError as exc:
            return _error_page(exc)
        except ValueError:
            return _error_page(AuthorizeError("portal_id must be an account id."))
        _keyed(request, portal_id)
        return _redirect(form["redirect_uri"], code=code, state=form.get("state"))

    def token_endpoint(query_too: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                portal_id, answer = oauth.token(await _form(request, query_too))
            except TokenError as exc:
                return _token_error(exc)
            _keyed(request, portal_id)
            return JSONResponse(answer)

        return endpoint

    async def access_token_info(request: Request) -> Response:
        try:
            portal_id, info = oauth.access_token_info(request.path_params["token"])
        except TokenError as exc:
            return _token_error(exc)
        _keyed(request, portal_id)
        return JSONResponse(info)

    async def refresh_token_info(request: Request) -> Response:
        try:
            portal_id, info = oauth.refresh_token_info(request.path_params["token"])
        except TokenError as exc:
            return _token_error(exc)
        _keyed(request, portal_id)
        return JSONResponse(info)

    async def delete_refresh_token(request: Request) -> Response:
        try:
            portal_id = oauth.delete_refresh_token(request.path_params["token"])
        except TokenError as exc:
            return _token_error(exc)
        _keyed(request, portal_id)
        return Response(status_code=204)

    return [
        Route("/oauth/authorize", authorize_page, methods=["GET"]),
        Route("/oauth/{portal_id:int}/authorize", authorize_page, methods=["GET"]),
        Route("/oauth/authorize", authorize_decision, methods=["POST"]),
        Route("/oauth/v1/token", token_endpoint(query_too=True), methods=["POST"]),
        Route("/oauth/v3/token", token_endpoint(query_too=False), methods=["POST"]),  # [V3]
        Route("/oauth/v1/access-tokens/{token}", access_token_info, methods=["GET"]),
        Route("/oauth/v1/refresh-tokens/{token}", refresh_token_info, methods=["GET"]),
        Route("/oauth/v1/refresh-tokens/{token}", delete_refresh_token, methods=["DELETE"]),
    ]


def admin_routes(state: HubSpotState) -> list[Route]:
    """`/_sim/oauth/...`: configure the app, add users, uninstall, expire tokens, inspect."""

    def guarded(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[
            [Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                raw = await request.body()
                body = json.loads(raw) if raw.strip() else {}
                return JSONResponse(fn(body if isinstance(body, dict) else {}))
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"message": f"bad admin request: {exc!r}"}, 400)

        return endpoint

    def app(body: dict[str, Any]) -> dict[str, Any]:
        state.configure_app(
            client_id=str(body["client_id"]), client_secret=str(body["client_secret"]),
            redirect_uris=[str(u) for u in body["redirect_uris"]],
            scopes=[str(s) for s in body["scopes"]],
            optional_scopes=[str(s) for s in body.get("optional_scopes") or []],
            app_id=int(body.get("app_id", 1)),
            access_token_ttl_s=body.get("access_token_ttl_s"))
        return {}

    def user(body: dict[str, Any]) -> dict[str, Any]:
        state.add_user(int(body["user_id"]), str(body["email"]),
                       [int(p) for p in body["portal_ids"]], bool(body.get("default", False)))
        return {}

    def uninstall(body: dict[str, Any]) -> dict[str, Any]:
        return {"revoked_refresh_tokens": state.uninstall_app(int(body["portal_id"]))}

    def expire(body: dict[str, Any]) -> dict[str, Any]:
        portal = body.get("portal_id")
        return {"expired": state.oauth.expire_access_tokens(None if portal is None else int(portal))}

    async def show(request: Request) -> Response:
        return JSONResponse(state.oauth.snapshot())

    return [
        Route("/_sim/oauth", show, methods=["GET"]),
        Route("/_sim/oauth/app", guarded(app), methods=["POST"]),
        Route("/_sim/oauth/users", guarded(user), methods=["POST"]),
        Route("/_sim/oauth/uninstall", guarded(uninstall), methods=["POST"]),
        Route("/_sim/oauth/expire", guarded(expire), methods=["POST"]),
    ]
