"""Configuration from environment variables (see README "Configuration" and `.env.example`).

Secrets (HubSpot tokens, Kleer API keys, the app client secret) live only here, in the processes
that need them. Workflows carry a portal id and look credentials up inside activities, so no secret
ever enters a Temporal history.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel


class StepPolicy(BaseModel):
    """Timeouts and retries of each step, fixed per run when it starts (so replays agree).

    Transient faults are retried with exponential backoff (a 429's Retry-After overrides it)
    until `give_up_after_s`; then the action fails with a message instead of hanging forever.
    """

    start_to_close_s: float = 30
    initial_retry_s: float = 1
    max_retry_s: float = 120
    give_up_after_s: float = 6 * 3600
    callback_give_up_after_s: float = 23 * 3600


@dataclass(frozen=True)
class PortalCredentials:
    portal_id: int
    hubspot_token: str = field(repr=False)
    kleer_company_id: int
    kleer_api_key: str = field(repr=False)
    # The portal's HubSpot API limit (hubspot.md section 6): private apps on Professional or
    # Enterprise 190 per 10 s, Free/Starter 100, public OAuth apps 110.
    hubspot_rate_limit: int = 190
    hubspot_rate_window_s: float = 10.0


@dataclass(frozen=True)
class Settings:
    hubspot_base_url: str = "https://api.hubapi.com"
    kleer_base_url: str = "https://api.accounting.pe/v1/"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "kleer-hubspot"
    hubspot_client_secret: str = field(default="", repr=False)
    # The URL HubSpot calls, when a proxy makes it differ from what the API process sees.
    public_base_url: str | None = None
    portals: dict[int, PortalCredentials] = field(default_factory=dict, repr=False)
    mappings_dir: Path | None = None
    # How long HubSpot waits for our callback (ISO-8601 duration in the BLOCK answer).
    callback_expiration: str = "P1D"
    http_timeout_s: float = 15.0
    # After a create whose outcome is unknown (timeout, dropped connection), wait this long before
    # looking for the record, so a request Kleer is still processing has committed by then.
    create_settle_s: float = 45.0
    max_request_bytes: int = 1_000_000
    # Keys (newest first, comma separated) for the codec that encrypts histories (codec.py).
    payload_key: str | None = field(default=None, repr=False)
    codec_auth_token: str | None = field(default=None, repr=False)
    codec_cors_origins: tuple[str, ...] = ("http://localhost:8233", "http://localhost:8080")
    # Temporal Cloud / TLS clusters.
    temporal_tls: bool = False
    temporal_api_key: str | None = field(default=None, repr=False)
    # Share of each portal's HubSpot limit this integration may use (the rest: other apps).
    hubspot_rate_share: float = 0.9
    # Callback completions wait up to this long to be sent in one batch call (activities/callbacks.py).
    callback_flush_s: float = 1.0
    max_concurrent_activities: int = 200
    max_cached_workflows: int = 10_000
    # Prometheus endpoint of this process (telemetry.py), e.g. "0.0.0.0:9464"; None = off.
    metrics_bind: str | None = None
    log_format: str = "text"  # or "json"
    # Custom search attributes (portal, action, object, result); must be registered on the cluster.
    search_attributes: bool = True
    step_policy: StepPolicy = field(default_factory=StepPolicy)

    def hubspot_pacing(self, portal_id: int) -> tuple[float, float]:
        """(HubSpot activities per second, callback flush interval in s) for a portal.

        The portal's budget is its limit times HUBSPOT_RATE_SHARE. Callback completions are
        batched and sent at most once per flush interval per worker process; the interval is
        stretched for small limits so they never take more than half the budget. The rest paces
        the one-call activities (Temporal task-queue rate limit, across all workers).
        """
        creds = self.portal(portal_id)
        budget = creds.hubspot_rate_limit / creds.hubspot_rate_window_s * self.hubspot_rate_share
        flush_s = max(self.callback_flush_s, 2 / budget)
        return budget - 1 / flush_s, flush_s

    def portal(self, portal_id: int) -> PortalCredentials:
        try:
            return self.portals[portal_id]
        except KeyError:
            raise UnknownPortalError(portal_id) from None


class UnknownPortalError(LookupError):
    def __init__(self, portal_id: int) -> None:
        super().__init__(f"portal {portal_id} is not connected (no credentials configured)")
        self.portal_id = portal_id


_PORTAL_VAR = re.compile(
    r"^PORTAL_(\d+)_(HUBSPOT_TOKEN|KLEER_COMPANY_ID|KLEER_API_KEY|HUBSPOT_RATE_LIMIT)$")


def _portals_from_env(env: dict[str, str]) -> dict[int, PortalCredentials]:
    """Portals from `PORTAL_<id>_*` variables and/or a JSON file named by `PORTALS_FILE`."""
    raw: dict[int, dict[str, str]] = {}
    if env.get("PORTALS_FILE"):
        for pid, values in json.loads(Path(env["PORTALS_FILE"]).read_text()).items():
            raw[int(pid)] = {k.lower(): str(v) for k, v in values.items()}
    for key, value in env.items():
        m = _PORTAL_VAR.match(key)
        if m:
            raw.setdefault(int(m.group(1)), {})[m.group(2).lower()] = value
    portals = {}
    for pid, values in raw.items():
        missing = {"hubspot_token", "kleer_company_id", "kleer_api_key"} - values.keys()
        if missing:
            raise ValueError(f"portal {pid}: missing {', '.join(sorted(missing))}")
        portals[pid] = PortalCredentials(
            portal_id=pid,
            hubspot_token=values["hubspot_token"],
            kleer_company_id=int(values["kleer_company_id"]),
            kleer_api_key=values["kleer_api_key"],
            hubspot_rate_limit=int(values.get("hubspot_rate_limit", 190)),
        )
    return portals


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    d = Settings()
    return Settings(
        hubspot_base_url=env.get("HUBSPOT_API_BASE_URL", d.hubspot_base_url),
        kleer_base_url=env.get("KLEER_API_BASE_URL", d.kleer_base_url),
        temporal_address=env.get("TEMPORAL_ADDRESS", d.temporal_address),
        temporal_namespace=env.get("TEMPORAL_NAMESPACE", d.temporal_namespace),
        task_queue=env.get("TEMPORAL_TASK_QUEUE", d.task_queue),
        hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET", ""),
        public_base_url=env.get("PUBLIC_BASE_URL") or None,
        portals=_portals_from_env(env),
        mappings_dir=Path(env["MAPPINGS_DIR"]) if env.get("MAPPINGS_DIR") else None,
        callback_expiration=env.get("HUBSPOT_CALLBACK_EXPIRATION", d.callback_expiration),
        http_timeout_s=float(env.get("HTTP_TIMEOUT_SECONDS", d.http_timeout_s)),
        create_settle_s=float(env.get("CREATE_SETTLE_SECONDS", d.create_settle_s)),
        payload_key=env.get("PAYLOAD_ENCRYPTION_KEY") or None,
        codec_auth_token=env.get("CODEC_AUTH_TOKEN") or None,
        metrics_bind=env.get("METRICS_BIND") or None,
        log_format=env.get("LOG_FORMAT", "text"),
        hubspot_rate_share=float(env.get("HUBSPOT_RATE_SHARE", d.hubspot_rate_share)),
        callback_flush_s=float(env.get("CALLBACK_FLUSH_SECONDS", d.callback_flush_s)),
        max_concurrent_activities=int(env.get("MAX_CONCURRENT_ACTIVITIES",
                                              d.max_concurrent_activities)),
        max_cached_workflows=int(env.get("MAX_CACHED_WORKFLOWS", d.max_cached_workflows)),
        codec_cors_origins=tuple(o.strip() for o in env.get("CODEC_CORS_ORIGINS", "").split(",")
                                 if o.strip()) or d.codec_cors_origins,
        temporal_tls=env.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes"),
        temporal_api_key=env.get("TEMPORAL_API_KEY") or None,
        search_attributes=env.get("TEMPORAL_SEARCH_ATTRIBUTES", "true").lower()
        not in ("0", "false", "no"),
        step_policy=StepPolicy(
            start_to_close_s=float(env.get("STEP_TIMEOUT_SECONDS", 30)),
            initial_retry_s=float(env.get("RETRY_INITIAL_SECONDS", 1)),
            max_retry_s=float(env.get("RETRY_MAX_INTERVAL_SECONDS", 120)),
            give_up_after_s=float(env.get("GIVE_UP_AFTER_SECONDS", 6 * 3600)),
        ),
    )
