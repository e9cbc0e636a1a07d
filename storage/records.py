"""What crosses the storage boundary: plain pydantic values, never database rows or sessions.

Callers (the OAuth flow, the settings pages, activities) get copies they may keep and pass around
without holding a connection. Models that carry a secret hide it from `repr()` (and so from logs
and tracebacks that print them); the secret is still in the field for the caller that needs it.
Field mappings reuse `actions.mappings.FieldMapping`, the shape the actions already read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from actions.mappings import FieldMapping

__all__ = ["FieldMapping", "KleerCredentials", "OAuthTokens", "PortalRecord", "RecordLease",
           "SyncedRecord", "UnmatchedClient", "as_utc"]


def as_utc(value: datetime) -> datetime:
    """Aware UTC. A naive value is taken to be UTC already (what `datetime.utcnow()`-style code
    and SQLite hand back), so comparisons never mix naive and aware datetimes."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class OAuthTokens(BaseModel):
    """A portal's HubSpot OAuth tokens. `expires_at` is when the access token stops working (UTC);
    the refresh token does not expire, but a revoked or uninstalled app makes it fail."""

    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    expires_at: datetime

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class PortalRecord(BaseModel):
    """One installed portal, without its secrets: safe to log, render and compare.

    `status` is "disconnected" once a refresh was refused (the app was uninstalled or revoked);
    `disconnected_reason` says why, for the settings page and the actions' failure message.
    `kleer_connected` tells whether Kleer credentials are stored, without revealing them.
    `access_expires_at` is the current access token's expiry (None: no tokens stored).
    """

    portal_id: int
    hub_domain: str | None
    status: Literal["connected", "disconnected"]
    disconnected_reason: str | None
    kleer_company_id: int | None
    kleer_connected: bool
    access_expires_at: datetime | None
    installed_at: datetime
    updated_at: datetime


class KleerCredentials(BaseModel):
    """A portal's Kleer company and API key. The key is hidden from `repr()`: these objects end up
    in log lines and exception messages far more easily than anyone intends."""

    company_id: int
    api_key: str = Field(repr=False)


class SyncedRecord(BaseModel):
    """What the outbound sync last wrote for one Kleer record (sync/)."""

    kind: str
    kleer_id: int
    hubspot_id: str | None
    digest: str


class RecordLease(BaseModel):
    """Who holds a Kleer record's lease after a take (Store.take_record)."""

    holder: str
    first: bool = False  # taken for the first time ever: no execution wrote this record before


class UnmatchedClient(BaseModel):
    """A Kleer client the sync could not link to a HubSpot company, and why."""

    kleer_id: int
    name: str | None
    reason: str
    seen_at: datetime
