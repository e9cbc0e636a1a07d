"""One error type for both remote services, classified once: retryable or final."""

from __future__ import annotations

import httpx


class ServiceError(Exception):
    """A HubSpot or Kleer call that did not succeed.

    `retryable` is True for what waiting can fix (timeouts, dropped connections, 5xx, 429);
    everything else (validation, auth, not found) is final for the execution.
    """

    def __init__(
        self,
        service: str,
        message: str,
        status: int | None = None,
        category: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.message = message
        self.status = status
        self.category = category
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    def __str__(self) -> str:
        where = f"{self.service} {self.status}" if self.status else self.service
        return f"{where}: {self.message}"


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds")
        return None if response.status_code != 429 or not interval else min(int(interval), 10_000) / 1000
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_from_response(service: str, response: httpx.Response) -> ServiceError:
    message, category = response.text[:500] or response.reason_phrase, None
    try:
        body = response.json()
        if isinstance(body, dict):
            message = str(body.get("message") or message)
            category = body.get("category") or body.get("errorType")
    except ValueError:
        pass
    return ServiceError(service, message, response.status_code, category, retry_after_seconds(response))


def error_from_transport(service: str, exc: httpx.HTTPError) -> ServiceError:
    # Never include the request (its headers hold credentials): type and text only.
    return ServiceError(service, f"{type(exc).__name__}: {exc}")
