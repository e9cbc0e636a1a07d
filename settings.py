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

from actions.mappings import check_mappings_dir


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
    # Connections per host (HubSpot, Kleer) per process, shared by every portal: httpcore's CPU per
    # request grows with the pool's open connections (bench/http_cpu.py), and calls are paced anyway.
    http_max_connections: int = 8
    # After a create whose outcome is unknown (timeout, dropped connection), wait this long before
    # looking for the record, so a request Kleer is still processing has committed by then.
    create_settle_s: float = 45.0
    max_request_bytes: int = 1_000_000
    # Workflow starts in flight per API process beyond which executions are answered 429 with
    # Retry-After at once (Temporal saturated: an honest answer instead of a 10 s one).
    max_starts_in_flight: int = 64
    # Keys (newest first, comma separated) for the codec that encrypts histories (codec.py).
    payload_key: str | None = field(default=None, repr=False)
    # Who may call the codec endpoint (codec_server.py): "token" = `Authorization: Bearer
    # <codec_auth_token>`; "none" = no token, loopback clients only (the local stack's UI);
    # "proxy" = no token, an authenticating reverse proxy in front does the checking.
    codec_auth: str = "token"
    codec_auth_token: str | None = field(default=None, repr=False)
    codec_cors_origins: tuple[str, ...] = ("http://localhost:8233", "http://localhost:8080")
    # Temporal Cloud / TLS clusters: TLS (server verified with the system's roots, or
    # `temporal_tls_ca`), plus an API key or a client certificate (mTLS).
    temporal_tls: bool = False
    temporal_api_key: str | None = field(default=None, repr=False)
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    # Share of each portal's HubSpot limit this integration may use (the rest: other apps).
    hubspot_rate_share: float = 0.9
    # The HubSpot limit of portals installed through OAuth (hubspot.md section 6: public apps
    # get 110 requests per 10 s per portal).
    hubspot_app_rate_limit: int = 110
    # Kleer documents no rate limit: assume one per API token (README "Kleer API assumptions").
    # Calls per second and burst, paced for all processes together (pacing/).
    kleer_rate_limit: float = 10.0
    kleer_rate_burst: int = 5
    max_concurrent_activities: int = 200
    # HubSpot activities mostly wait (for a batch to fill, for the portal's turn): many at once.
    hubspot_max_concurrent_activities: int = 1000
    # Whether this worker process polls the HubSpot task queue. Batches gather within a process,
    # so the fewer processes make a portal's HubSpot calls, the fuller its batches: scale out the
    # workflows with processes that leave the HubSpot calls to a few (README "Scaling out").
    worker_hubspot_calls: bool = True
    # Items per HubSpot batch call (HubSpot's maximum is 100); 1 turns coalescing off.
    hubspot_max_batch: int = 100
    # How long a busy kind of HubSpot call lets its next batch gather (activities/batching.py);
    # a kind idle for longer sends at once, so a quiet portal never waits for it. 1 s halves a
    # client burst's calls, but executions 0.5 s apart then wait for it (README "Benchmark").
    hubspot_batch_window_s: float = 0.5
    max_cached_workflows: int = 10_000
    # Prometheus endpoint of this process (telemetry.py), e.g. "0.0.0.0:9464"; None = off.
    metrics_bind: str | None = None
    log_format: str = "text"  # or "json"
    # Custom search attributes (portal, action, object, result); must be registered on the cluster.
    search_attributes: bool = True
    step_policy: StepPolicy = field(default_factory=StepPolicy)
    # The database API and workers share (storage/): installed portals, their tokens, Kleer
    # credentials and field mappings. SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db or
    # sqlite+aiosqlite:///path/kleer.db; None = no database (portals from the environment only).
    database_url: str | None = field(default=None, repr=False)
    # Encrypts secrets at rest in the database (refresh/access tokens, Kleer API keys).
    database_secrets_key: str | None = field(default=None, repr=False)
    # The HubSpot app's OAuth client id (its client secret is hubspot_client_secret): marketplace
    # installs (oauth/) and sign-in to the settings pages (web/).
    hubspot_client_id: str | None = None
    hubspot_authorize_url: str = "https://app.hubspot.com/oauth/authorize"
    # Refresh an OAuth access token (about 30 minutes) this long before it expires.
    token_refresh_margin_s: float = 300.0
    # A disconnected portal's callbacks wait for a reconnect; look again this often.
    reconnect_retry_s: float = 60.0
    # Where HubSpot sends the user back after authorizing; default <PUBLIC_BASE_URL>/oauth/callback.
    oauth_redirect_url: str | None = None
    # Signs the settings pages' session cookies; sessions expire after session_max_age_s.
    session_secret: str | None = field(default=None, repr=False)
    session_max_age_s: int = 8 * 3600
    # The scheduled outbound sync (sync/): every portal's run interval; whether a Kleer client no
    # company matches gets a new company (else it is reported as unmatched); how often workers
    # check that every portal has its schedule.
    sync_interval_s: float = 15 * 60
    sync_create_companies: bool = False
    sync_reconcile_s: float = 300
    # Links from the settings pages to runs, e.g. http://localhost:8233 (the dev server's UI).
    temporal_ui_url: str | None = None

    @property
    def redirect_url(self) -> str:
        if self.oauth_redirect_url:
            return self.oauth_redirect_url
        return (self.public_base_url or "http://localhost:8000").rstrip("/") + "/oauth/callback"

    def portal(self, portal_id: int) -> PortalCredentials:
        try:
            return self.portals[portal_id]
        except KeyError:
            raise UnknownPortalError(portal_id) from None


class UnknownPortalError(LookupError):
    def __init__(self, portal_id: int) -> None:
        super().__init__(f"portal {portal_id} is not connected (no credentials configured)")
        self.portal_id = portal_id


class ConfigError(ValueError):
    """The configuration cannot work: names each variable or file at fault and what it accepts.
    The commands print it as one paragraph and exit with status 2 (nothing is started)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def paragraph(self) -> str:
        return ("configuration error: " + "; ".join(self.problems)
                + ". Fix the environment (see .env.example and README \"Configuration\") and start "
                  "again; nothing was started.")


_PORTAL_VAR = re.compile(
    r"^PORTAL_(\d+)_(HUBSPOT_TOKEN|KLEER_COMPANY_ID|KLEER_API_KEY|HUBSPOT_RATE_LIMIT)$")
_PORTAL_KEYS = ("hubspot_token", "kleer_company_id", "kleer_api_key", "hubspot_rate_limit")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# ISO-8601 duration as HubSpot takes it (hs_expiration_duration), e.g. P1D, PT12H, P1DT6H.
_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
CODEC_AUTH_MODES = ("token", "none", "proxy")


class _Env:
    """Reads variables, collecting every problem (so one message lists them all)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.problems = env, []

    def text(self, name: str, default: str) -> str:
        return self.env.get(name) or default

    def url(self, name: str, default: str | None) -> str | None:
        value = self.env.get(name) or default
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            self.problems.append(f"{name}={value!r} is not an http(s) URL (e.g. https://host/path)")
        return value

    def number(self, name: str, default: float, *, minimum: float, inclusive: bool = True,
               maximum: float | None = None, integer: bool = False, unit: str = "") -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value: float = int(raw) if integer else float(raw)
        except ValueError:
            value = float("nan")
        ok = value == value and (value >= minimum if inclusive else value > minimum) and (
            maximum is None or value <= maximum)
        if not ok:
            kind = "a whole number" if integer else "a number"
            bound = f"{'≥' if inclusive else '>'} {minimum:g}" + (
                f" and ≤ {maximum:g}" if maximum is not None else "")
            self.problems.append(f"{name}={raw!r} must be {kind} {bound}{unit}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw not in _TRUE + _FALSE:
            self.problems.append(f"{name}={self.env[name]!r} must be true or false "
                                 "(also 1/0, yes/no, on/off)")
            return default
        return raw in _TRUE

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw not in choices:
            self.problems.append(f"{name}={self.env[name]!r} must be one of {', '.join(choices)}")
            return default
        return raw


def _portals_file(path_text: str, problems: list[str]) -> dict[int, dict[str, str]]:
    where = f"PORTALS_FILE={path_text}"
    shape = ('{"<portalId>": {"hubspot_token": "...", "kleer_company_id": 1, '
             '"kleer_api_key": "...", "hubspot_rate_limit": 190}}')
    try:
        text = Path(path_text).read_text()
    except OSError as exc:
        problems.append(f"{where} cannot be read ({exc.strerror or exc})")
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                        f"{exc.colno}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{where} must hold a JSON object {shape}")
        return {}
    raw: dict[int, dict[str, str]] = {}
    for pid, values in data.items():
        if not str(pid).isdigit() or not isinstance(values, dict):
            problems.append(f"{where}: entry {pid!r} must be a HubSpot portal id (digits) mapped to "
                            f"an object, as in {shape}")
            continue
        unknown = sorted(set(values) - set(_PORTAL_KEYS))
        if unknown:
            problems.append(f"{where}: portal {pid} has unknown keys {', '.join(unknown)} "
                            f"(accepted: {', '.join(_PORTAL_KEYS)})")
        raw[int(pid)] = {k: str(v) for k, v in values.items() if k in _PORTAL_KEYS}
    return raw


def _portals_from_env(env: dict[str, str], problems: list[str] | None = None
                      ) -> dict[int, PortalCredentials]:
    """Portals from `PORTAL_<id>_*` variables and/or a JSON file named by `PORTALS_FILE`.
    Problems are appended to `problems` (or raised as ConfigError when none is given)."""
    collect: list[str] = [] if problems is None else problems
    raw: dict[int, dict[str, str]] = {}
    named: dict[tuple[int, str], str] = {}  # (portal, key) -> how the operator names that value
    if env.get("PORTALS_FILE"):
        raw = _portals_file(env["PORTALS_FILE"], collect)
        named = {(pid, k): f"PORTALS_FILE={env['PORTALS_FILE']}: portal {pid} {k}"
                 for pid, values in raw.items() for k in _PORTAL_KEYS}
    for key, value in env.items():
        m = _PORTAL_VAR.match(key)
        if m:
            pid, field_name = int(m.group(1)), m.group(2).lower()
            raw.setdefault(pid, {})[field_name] = value
            named[(pid, field_name)] = key
    portals = {}
    for pid, values in sorted(raw.items()):
        missing = [k for k in _PORTAL_KEYS[:3] if not values.get(k, "").strip()]
        if missing:
            names = ", ".join(f"PORTAL_{pid}_{k.upper()}" for k in missing)
            collect.append(f"portal {pid} is missing {', '.join(missing)} (set {names}, or give all "
                           "three in PORTALS_FILE)")
            continue
        company, limit = values["kleer_company_id"].strip(), values.get("hubspot_rate_limit", "190")
        if not company.isdigit() or int(company) < 1:
            collect.append(f"{named[(pid, 'kleer_company_id')]}={company!r} must be a whole number "
                           "≥ 1 (the portal's Kleer company id)")
            continue
        if not limit.strip().isdigit() or int(limit) < 1:
            collect.append(f"{named[(pid, 'hubspot_rate_limit')]}={limit!r} must be a whole number "
                           "≥ 1 (HubSpot requests per 10 s: 190 Pro/Enterprise, 100 Free/Starter, "
                           "110 public apps)")
            continue
        portals[pid] = PortalCredentials(
            portal_id=pid,
            hubspot_token=values["hubspot_token"].strip(),
            kleer_company_id=int(company),
            kleer_api_key=values["kleer_api_key"].strip(),
            hubspot_rate_limit=int(limit),
        )
    if problems is None and collect:
        raise ConfigError(collect)
    return portals


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from environment variables; `ConfigError` names every variable or file that is
    wrong and what it accepts (nothing here crashes with a bare int()/JSON traceback)."""
    env = dict(os.environ if env is None else env)
    d, p = Settings(), StepPolicy()
    e = _Env(env)
    seconds = " (seconds)"
    metrics_bind = env.get("METRICS_BIND") or None
    if metrics_bind and not re.match(r"^\[?[\w.:-]*\]?:\d{1,5}$", metrics_bind):
        e.problems.append(f"METRICS_BIND={metrics_bind!r} must be host:port (e.g. 0.0.0.0:9464)")
    expiration = e.text("HUBSPOT_CALLBACK_EXPIRATION", d.callback_expiration)
    if not _DURATION.match(expiration):
        e.problems.append(f"HUBSPOT_CALLBACK_EXPIRATION={expiration!r} must be an ISO-8601 duration "
                          "(e.g. P1D, PT12H, P1DT6H)")
    tls_files: dict[str, Path | None] = {}
    for var in ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
                "TEMPORAL_TLS_SERVER_CA_CERT_PATH"):
        tls_files[var] = Path(env[var]) if env.get(var) else None
        if tls_files[var] is not None and not tls_files[var].is_file():
            e.problems.append(f"{var}={env[var]} is not a readable file (PEM)")
    if bool(tls_files["TEMPORAL_TLS_CLIENT_CERT_PATH"]) != bool(tls_files["TEMPORAL_TLS_CLIENT_KEY_PATH"]):
        e.problems.append("TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together "
                          "(the client certificate and its private key, for mTLS)")
    keys = env.get("PAYLOAD_ENCRYPTION_KEY") or None
    if keys is not None and not [k for k in keys.split(",") if k.strip()]:
        e.problems.append("PAYLOAD_ENCRYPTION_KEY holds no key (comma separated keys, newest first)")
    settings = Settings(
        hubspot_base_url=e.url("HUBSPOT_API_BASE_URL", d.hubspot_base_url) or d.hubspot_base_url,
        kleer_base_url=e.url("KLEER_API_BASE_URL", d.kleer_base_url) or d.kleer_base_url,
        temporal_address=e.text("TEMPORAL_ADDRESS", d.temporal_address),
        temporal_namespace=e.text("TEMPORAL_NAMESPACE", d.temporal_namespace),
        task_queue=e.text("TEMPORAL_TASK_QUEUE", d.task_queue),
        hubspot_client_secret=env.get("HUBSPOT_CLIENT_SECRET", ""),
        public_base_url=e.url("PUBLIC_BASE_URL", None),
        portals=_portals_from_env(env, e.problems),
        mappings_dir=Path(env["MAPPINGS_DIR"]) if env.get("MAPPINGS_DIR") else None,
        callback_expiration=expiration,
        http_timeout_s=e.number("HTTP_TIMEOUT_SECONDS", d.http_timeout_s, minimum=0,
                                inclusive=False, unit=seconds),
        http_max_connections=int(e.number("HTTP_MAX_CONNECTIONS", d.http_max_connections,
                                          minimum=1, integer=True)),
        create_settle_s=e.number("CREATE_SETTLE_SECONDS", d.create_settle_s, minimum=0,
                                 unit=seconds),
        payload_key=keys,
        codec_auth=e.choice("CODEC_AUTH", d.codec_auth, CODEC_AUTH_MODES),
        codec_auth_token=env.get("CODEC_AUTH_TOKEN") or None,
        metrics_bind=metrics_bind,
        log_format=e.choice("LOG_FORMAT", d.log_format, ("text", "json")),
        hubspot_rate_share=e.number("HUBSPOT_RATE_SHARE", d.hubspot_rate_share, minimum=0,
                                    inclusive=False, maximum=1),
        kleer_rate_limit=e.number("KLEER_RATE_LIMIT", d.kleer_rate_limit, minimum=0,
                                  inclusive=False, unit=" (requests per second per API token)"),
        kleer_rate_burst=int(e.number("KLEER_RATE_BURST", d.kleer_rate_burst, minimum=1,
                                      integer=True)),
        max_concurrent_activities=int(e.number("MAX_CONCURRENT_ACTIVITIES",
                                               d.max_concurrent_activities, minimum=1,
                                               integer=True)),
        max_cached_workflows=int(e.number("MAX_CACHED_WORKFLOWS", d.max_cached_workflows,
                                          minimum=0, integer=True)),
        hubspot_batch_window_s=e.number("HUBSPOT_BATCH_WINDOW_MS", d.hubspot_batch_window_s * 1000,
                                        minimum=0, maximum=2000) / 1000,
        hubspot_max_batch=int(e.number("HUBSPOT_MAX_BATCH", d.hubspot_max_batch, minimum=1,
                                       maximum=100, integer=True)),
        max_starts_in_flight=int(e.number("MAX_STARTS_IN_FLIGHT", d.max_starts_in_flight,
                                          minimum=1, integer=True)),
        hubspot_max_concurrent_activities=int(e.number(
            "HUBSPOT_MAX_CONCURRENT_ACTIVITIES", d.hubspot_max_concurrent_activities, minimum=1,
            integer=True)),
        worker_hubspot_calls=e.boolean("WORKER_HUBSPOT_CALLS", d.worker_hubspot_calls),
        codec_cors_origins=tuple(o.strip() for o in env.get("CODEC_CORS_ORIGINS", "").split(",")
                                 if o.strip()) or d.codec_cors_origins,
        temporal_tls=e.boolean("TEMPORAL_TLS", d.temporal_tls),
        temporal_api_key=env.get("TEMPORAL_API_KEY") or None,
        temporal_tls_cert=tls_files["TEMPORAL_TLS_CLIENT_CERT_PATH"],
        temporal_tls_key=tls_files["TEMPORAL_TLS_CLIENT_KEY_PATH"],
        temporal_tls_ca=tls_files["TEMPORAL_TLS_SERVER_CA_CERT_PATH"],
        search_attributes=e.boolean("TEMPORAL_SEARCH_ATTRIBUTES", d.search_attributes),
        database_url=_database_url(env.get("DATABASE_URL", "").strip(), e.problems),
        database_secrets_key=env.get("DATABASE_SECRETS_KEY") or None,
        hubspot_client_id=env.get("HUBSPOT_CLIENT_ID", "").strip() or None,
        hubspot_authorize_url=e.url("HUBSPOT_AUTHORIZE_URL", d.hubspot_authorize_url)
        or d.hubspot_authorize_url,
        oauth_redirect_url=e.url("OAUTH_REDIRECT_URL", None),
        token_refresh_margin_s=e.number("HUBSPOT_TOKEN_REFRESH_MARGIN_SECONDS",
                                        d.token_refresh_margin_s, minimum=0, unit=seconds),
        reconnect_retry_s=e.number("RECONNECT_RETRY_SECONDS", d.reconnect_retry_s, minimum=0,
                                   inclusive=False, unit=seconds),
        session_secret=env.get("SESSION_SECRET") or None,
        session_max_age_s=int(e.number("SESSION_MAX_AGE_SECONDS", d.session_max_age_s, minimum=60,
                                       integer=True, unit=seconds)),
        temporal_ui_url=e.url("TEMPORAL_UI_URL", None),
        sync_interval_s=60 * e.number("SYNC_INTERVAL_MINUTES", d.sync_interval_s / 60, minimum=0,
                                      inclusive=False, unit=" (minutes)"),
        sync_create_companies=e.boolean("SYNC_CREATE_COMPANIES", d.sync_create_companies),
        step_policy=StepPolicy(
            start_to_close_s=e.number("STEP_TIMEOUT_SECONDS", p.start_to_close_s, minimum=0,
                                      inclusive=False, unit=seconds),
            initial_retry_s=e.number("RETRY_INITIAL_SECONDS", p.initial_retry_s, minimum=0,
                                     inclusive=False, unit=seconds),
            max_retry_s=e.number("RETRY_MAX_INTERVAL_SECONDS", p.max_retry_s, minimum=0,
                                 inclusive=False, unit=seconds),
            give_up_after_s=e.number("GIVE_UP_AFTER_SECONDS", p.give_up_after_s, minimum=0,
                                     inclusive=False, unit=seconds),
        ),
    )
    if settings.database_url and not settings.database_secrets_key:
        e.problems.append("DATABASE_URL is set but DATABASE_SECRETS_KEY is not: tokens and Kleer API "
                          "keys are encrypted in the database with it (any long random string; "
                          "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    if e.problems:
        raise ConfigError(e.problems)
    return settings


_DATABASE_SCHEMES = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
                     "postgresql+asyncpg": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite",
                     "sqlite+aiosqlite": "sqlite+aiosqlite"}


def _database_url(raw: str, problems: list[str]) -> str | None:
    """DATABASE_URL with the async driver each database is used through (asyncpg, aiosqlite)."""
    if not raw:
        return None
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme not in _DATABASE_SCHEMES:
        problems.append(f"DATABASE_URL must be postgresql://user:password@host:5432/db or "
                        f"sqlite:///path/to/file.db, not {scheme + sep or raw!r}...")
        return None
    return f"{_DATABASE_SCHEMES[scheme]}://{rest}"


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_role(settings: Settings, role: str, *, host: str | None = None, workers: int = 1) -> None:
    """What a role needs beyond well-formed values; `ConfigError` (exit status 2) when missing.

    - api: the client secret (every execution's signature is verified with it); `CODEC_AUTH=none`
      only on a loopback bind (otherwise `proxy`, declaring an authenticating proxy in front);
      one metrics endpoint per process.
    - worker: every field-mappings file in MAPPINGS_DIR is readable and names known Kleer fields
      (a broken one would otherwise fail each run that reads it).
    """
    problems = []
    if role == "api":
        if not settings.hubspot_client_secret:
            problems.append(
                "HUBSPOT_CLIENT_SECRET is not set: the API verifies every execution's signature with "
                "your HubSpot app's client secret (developer account > Apps > your app > Auth > "
                "Client secret) and refuses to start without it")
        if settings.codec_auth == "none" and settings.payload_key and host is not None \
                and not _is_loopback(host):
            problems.append(
                f"CODEC_AUTH=none serves decrypted payloads without a token, so it is only accepted "
                f"when the API listens on loopback (--host 127.0.0.1), not on {host}: use "
                "CODEC_AUTH=token with CODEC_AUTH_TOKEN, or CODEC_AUTH=proxy behind an "
                "authenticating reverse proxy")
        if settings.database_url and settings.hubspot_client_id and not settings.session_secret:
            problems.append(
                "SESSION_SECRET is not set: with DATABASE_URL and HUBSPOT_CLIENT_ID the API serves "
                "the install flow and the settings pages, whose sessions are signed with it (any "
                "long random string, e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)")
        if settings.metrics_bind and workers > 1:
            problems.append(
                f"METRICS_BIND={settings.metrics_bind} with --workers {workers}: every process needs "
                "its own metrics port; run one `kleer-hubspot api` per port instead, or unset "
                "METRICS_BIND")
    if role == "worker":
        problems += check_mappings_dir(settings.mappings_dir)
    if problems:
        raise ConfigError(problems)
