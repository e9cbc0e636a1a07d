"""Typed client for HubSpot's OAuth endpoints: the install link, code exchange, refresh, token info.

Follows HubSpot's v1 token API
(https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/guide):
form-encoded POST /oauth/v1/token for both grants, GET /oauth/v1/access-tokens/{token},
DELETE /oauth/v1/refresh-tokens/{token}. HubSpot sunsets v1 on 2027-02-16 in favour of the
dated API (/oauth/2026-03/token, same form fields and answers); the paths are constants here.

Refusals come as HTTP 400 with `{"error", "error_description", "status", "message"}` (RFC 6749
`error` plus HubSpot's `status`). One of them means the install is gone (the app was uninstalled,
or the refresh token revoked or unknown): `invalid_grant` / `BAD_REFRESH_TOKEN`, raised as
`RefreshRefused` so the caller can mark the portal disconnected instead of retrying. A wrong
client id or secret (`invalid_client`) is a configuration error: a final `ServiceError`, never
`RefreshRefused`, so rotating the app secret cannot disconnect every portal. 5xx, 429 and
network errors are retryable `ServiceError`s; an answer whose shape we do not recognise is a
retryable `ServiceError` as well (never read as "no token").

No token, code or secret is ever logged or put in an error message: messages are scrubbed of
every credential of the request, and httpx's request log line for the token-info URL (which
carries the token in its path) is redacted.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oauth.scopes import optional_scope_names, required_scope_names
from service_errors import ServiceError
from storage.records import OAuthTokens

__all__ = ["HubSpotOAuth", "OAuthTokens", "RefreshRefused", "TokenInfo"]

SERVICE = "HubSpot OAuth"
TOKEN_PATH = "/oauth/v1/token"
ACCESS_TOKENS_PATH = "/oauth/v1/access-tokens"
REFRESH_TOKENS_PATH = "/oauth/v1/refresh-tokens"
# The answers that say the grant itself is gone (uninstalled, revoked, unknown refresh token);
# BAD_HUB: the portal itself was deleted (observed by integrators, answered with access_denied).
GONE_ERRORS = {"invalid_grant", "access_denied"}
GONE_STATUSES = {"BAD_REFRESH_TOKEN", "BAD_HUB"}

M = TypeVar("M", bound=BaseModel)


class RefreshRefused(ServiceError):  # noqa: N818 - the name the token manager expects
    """HubSpot refused the refresh token for good: the app was uninstalled from the portal, the
    token was revoked, or HubSpot does not know it. Retrying cannot help; reconnecting can.
    A `ServiceError` that is never retryable, so generic handling treats it as final."""

    def __init__(self, message: str, status: int | None = 400, category: str | None = None) -> None:
        super().__init__(SERVICE, message, status, category or "BAD_REFRESH_TOKEN",
                         service_body=True)

    @property
    def retryable(self) -> bool:
        return False


class TokenInfo(BaseModel):
    """GET /oauth/v1/access-tokens/{token}: which portal and user the token is for.

    `user`, `user_id` and `hub_domain` are optional in HubSpot's schema of this answer
    (https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/get-oauth-token-metadata),
    so they may be None; the rest is required.
    """

    model_config = ConfigDict(extra="ignore")

    hub_id: int
    hub_domain: str | None = None
    user: str | None = None  # the installing user's email
    user_id: int | None = None
    scopes: list[str]
    expires_in: int
    app_id: int | None = None


class _TokenAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    refresh_token: str | None = Field(default=None, min_length=1)
    expires_in: int = Field(ge=0)
    token_type: str | None = None


class _RedactTokenPaths(logging.Filter):
    """httpx logs every request URL at INFO; the token-info URLs carry a token in the path."""

    PATTERN = re.compile(r"(/oauth/v\d+/(?:access|refresh)-tokens/)[^\s\"'?]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self._redact(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._redact(v) for k, v in record.args.items()}
        record.msg = self._redact(record.msg)
        return True

    def _redact(self, value: object) -> object:
        if isinstance(value, str | httpx.URL):
            return self.PATTERN.sub(r"\1[redacted]", str(value))
        return value


_REDACT = _RedactTokenPaths()
for _name in ("httpx", "httpcore"):
    if not any(isinstance(f, _RedactTokenPaths) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_REDACT)


class HubSpotOAuth:
    """HubSpot's side of the install: build the authorize link, exchange and refresh tokens."""

    def __init__(self, api_base_url: str, authorize_url: str, client_id: str, client_secret: str,
                 redirect_uri: str, timeout_s: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.authorize_url = authorize_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._http = httpx.AsyncClient(base_url=api_base_url.rstrip("/"), timeout=timeout_s,
                                       transport=transport)

    def __repr__(self) -> str:
        return f"HubSpotOAuth(client_id={self.client_id!r}, redirect_uri={self.redirect_uri!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> HubSpotOAuth:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the install link --------------------------------------------------------------------
    def authorize_url_for(self, state: str) -> str:
        """HubSpot's authorize page for our app with the scopes our actions need
        (https://developers.hubspot.com/docs/apps/legacy-apps/authentication/oauth-quickstart-guide:
        `scope` separated by URL-encoded spaces, `state` returned unchanged on the redirect)."""
        params = {"client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": " ".join(required_scope_names())}
        if optional_scope_names():
            params["optional_scope"] = " ".join(optional_scope_names())
        params["state"] = state
        separator = "&" if "?" in self.authorize_url else "?"
        return self.authorize_url + separator + urlencode(params, quote_via=quote)

    # --- tokens ------------------------------------------------------------------------------
    async def exchange_code(self, code: str) -> OAuthTokens:
        """The code from the redirect, for the portal's first access and refresh tokens."""
        form = {"grant_type": "authorization_code", "client_id": self.client_id,
                "client_secret": self._client_secret, "redirect_uri": self.redirect_uri,
                "code": code}
        return await self._token(form, "exchange the authorization code", secrets=[code],
                                 refreshing=None)

    async def refresh(self, refresh_token: str) -> OAuthTokens:
        """A new access token; `RefreshRefused` when HubSpot says the grant is gone."""
        form = {"grant_type": "refresh_token", "client_id": self.client_id,
                "client_secret": self._client_secret, "refresh_token": refresh_token}
        return await self._token(form, "refresh the access token", secrets=[refresh_token],
                                 refreshing=refresh_token)

    async def token_info(self, access_token: str) -> TokenInfo:
        """Which portal (hub_id) and user an access token belongs to, and its scopes."""
        body = await self._call("GET", f"{ACCESS_TOKENS_PATH}/{quote(access_token, safe='')}",
                                "read the access token's details", [access_token])
        return _parse(TokenInfo, body, "access token details")

    async def revoke_refresh_token(self, refresh_token: str) -> None:
        """Delete the refresh token (on disconnect). Its access tokens keep working until they
        expire, and the app stays installed (v1 guide, "Delete a refresh token")."""
        try:
            await self._call("DELETE", f"{REFRESH_TOKENS_PATH}/{quote(refresh_token, safe='')}",
                             "revoke the refresh token", [refresh_token], refreshing=refresh_token)
        except RefreshRefused:
            pass  # already revoked or unknown: what we wanted

    async def _token(self, form: dict[str, str], what: str, secrets: list[str],
                     refreshing: str | None) -> OAuthTokens:
        issued = datetime.now(UTC)  # before the call: the expiry can only come early, not late
        body = await self._call("POST", TOKEN_PATH, what, secrets, refreshing=refreshing,
                                data=form)
        answer = _parse(_TokenAnswer, body, what)
        refresh_token = answer.refresh_token or refreshing
        if refresh_token is None:  # the code exchange must hand out the refresh token
            raise ServiceError(SERVICE, f"unexpected answer to {what}: refresh_token missing",
                               None, "UNEXPECTED_RESPONSE")
        return OAuthTokens(access_token=answer.access_token, refresh_token=refresh_token,
                           expires_at=issued + timedelta(seconds=answer.expires_in))

    async def _call(self, method: str, path: str, what: str, secrets: list[str],
                    refreshing: str | None = None, data: dict[str, str] | None = None) -> Any:
        hidden = [s for s in (*secrets, self._client_secret) if s]
        try:
            response = await self._http.request(method, path, data=data)
        except httpx.HTTPError as exc:
            # Type and text only, scrubbed: never the request (its URL or body holds credentials).
            raise ServiceError(SERVICE, _scrub(f"{what}: {type(exc).__name__}: {exc}", hidden)
                               ) from None
        if response.status_code >= 400:
            raise _refusal(response, what, hidden, refreshing is not None)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ServiceError(SERVICE, f"unexpected answer to {what}: not JSON", None,
                               "UNEXPECTED_RESPONSE") from None


def _refusal(response: httpx.Response, what: str, hidden: list[str],
             refreshing: bool) -> ServiceError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):  # a gateway page, not HubSpot's answer: never echo it
        return ServiceError(SERVICE, f"{what}: HTTP {status}", status, None,
                            _retry_after(response))
    error = body.get("error") if isinstance(body.get("error"), str) else None
    hubspot_status = body.get("status") if isinstance(body.get("status"), str) else None
    text = next((v for v in (body.get("error_description"), body.get("message"))
                 if isinstance(v, str) and v), None)
    code = hubspot_status if hubspot_status not in (None, "error") else error
    message = _scrub(f"{what}: {code or 'refused'}" + (f" ({text})" if text else ""), hidden)
    category = code or (body.get("category") if isinstance(body.get("category"), str) else None)
    gone = error in GONE_ERRORS or hubspot_status in GONE_STATUSES
    if refreshing and gone and 400 <= status < 500 and status != 429:
        return RefreshRefused(message, status, category)
    return ServiceError(SERVICE, message, status, category, _retry_after(response),
                        service_body=True)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _parse(model: type[M], raw: Any, what: str) -> M:
    """An answer as `model`; a shape we do not recognise is a retryable error (values never
    quoted: they may be tokens)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(map(str, first["loc"])) or "answer"
        raise ServiceError(SERVICE, f"unexpected answer to {what}: {where}: {first['msg']}", None,
                           "UNEXPECTED_RESPONSE") from None


def _scrub(text: str, hidden: list[str]) -> str:
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
        quoted = quote(secret, safe="")
        if quoted != secret:
            text = text.replace(quoted, "[redacted]")
    return text[:300]
