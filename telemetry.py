"""Metrics and logs.

Metrics: one Prometheus endpoint per process (`METRICS_BIND`, e.g. 0.0.0.0:9464), served by the
Temporal SDK runtime. It carries the SDK's own metrics (workflow/activity task latencies, slots,
polls...) and ours, all prefixed `kleer_`:
- `kleer_api_requests{action,outcome}`: executions received by the API (started, duplicate,
  bad_signature, invalid, unknown_portal, too_large, unavailable);
- `kleer_executions_finished{action,result}`: runs ended (created/updated/skipped/failed);
- `kleer_http_calls{service,status}`: HubSpot and Kleer calls by status class, 429s included.

Logs: `LOG_FORMAT=json` prints one JSON object per line with the Temporal context (workflow id,
`<action>-<object type>-<object id>-<callbackId>`, activity type, attempt) as fields; no secret is ever logged
(requests are logged by URL, never with headers).
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Mapping
from typing import Any

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

_runtime: Runtime | None = None


class MetricsBindError(RuntimeError):
    """The Prometheus endpoint could not be opened (port in use, bad address): not a Temporal
    connection problem, so callers report it as what it is."""


def runtime(metrics_bind: str | None) -> Runtime:
    """The process's Temporal runtime; with a Prometheus endpoint when `metrics_bind` is set.

    Our own runtime rather than `Runtime.default()`, so `release()` can drop it, and without the
    SDK's `service_name="temporal-core-sdk"` label on every metric (ours included).
    """
    global _runtime
    if _runtime is None:
        metrics = PrometheusConfig(bind_address=metrics_bind, counters_total_suffix=True) \
            if metrics_bind else None
        try:
            _runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics, attach_service_name=False))
        except Exception as exc:
            if metrics_bind:
                hint = " (another API, worker or `kleer-hubspot dev` on this host?)" \
                    if "in use" in str(exc) else ""
                raise MetricsBindError(
                    f"cannot serve Prometheus metrics on METRICS_BIND={metrics_bind}: {exc}{hint}. "
                    "Give a free host:port (e.g. 0.0.0.0:9464) or unset METRICS_BIND") from exc
            raise
    return _runtime


def release() -> None:
    """Drop the runtime (and, with it, the SDK core's threads) while Python is fully alive.

    Short-lived commands call this before exiting: left to interpreter shutdown, the core's
    threads may still call into a half-finalized interpreter (`Fatal Python error:
    PyGILState_Release`, exit 134, or a segfault, in a few percent of runs). Clients hold the
    runtime too, so they must be unreachable by then; `gc.collect()` frees cycles holding them.
    """
    global _runtime
    _runtime = None
    gc.collect()


def meter() -> MetricMeter:
    return (_runtime or Runtime.default()).metric_meter


class HttpCallMetrics:
    """Counts HubSpot/Kleer calls by status class; the clients call it after every response."""

    def __init__(self, service: str) -> None:
        self._counter = meter().create_counter("kleer_http_calls", "HubSpot and Kleer API calls")
        self._service = service

    def __call__(self, status: int | None) -> None:
        bucket = "error" if status is None else "429" if status == 429 else f"{status // 100}xx"
        self._counter.add(1, {"service": self._service, "status": bucket})


class JsonFormatter(logging.Formatter):
    """One JSON object per line; Temporal's logger context becomes fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record), "level": record.levelname, "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("temporal_workflow", "temporal_activity"):
            context = getattr(record, key, None)
            if isinstance(context, Mapping):
                entry.update({k: v for k, v in context.items() if k in _CONTEXT_FIELDS})
        for key in ("callback_id", "workflow_id", "action", "portal_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_CONTEXT_FIELDS = {"workflow_id", "workflow_type", "run_id", "activity_type", "activity_id",
                   "attempt", "task_queue"}


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per call is noise
