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
        service_body: bool = False,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.message = message
        self.status = status
        self.category = category
        self.retry_after_s = retry_after_s
        # The answer carried the service's own JSON error body (not a gateway's page).
        self.service_body = service_body

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def nothing_written(self) -> bool:
        """For a write: the service said for certain that it wrote nothing.

        Only a 4xx in the service's own error body says so (kleer.md "Unknown outcome"). A
        timeout, a dropped connection, an answer we cannot read, and a 5xx (502/503/504 come from
        the gateway in front of the API, which may still pass the request on) leave the outcome
        unknown: the write may commit afterwards.
        """
        return self.status is not None and 400 <= self.status < 500 and self.service_body

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
    message, category, own_body = response.text[:500] or response.reason_phrase, None, False
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            message, own_body = body["message"], True
            category = body.get("category") or body.get("errorType")
    except ValueError:
        pass
    return ServiceError(service, message, response.status_code, category, retry_after_seconds(response),
                        service_body=own_body)


def unexpected(service: str, what: str, body: object) -> ServiceError:
    """A 2xx answer whose shape we do not recognise: an error (retried, then reported), never
    read as "empty" or "not found". The body is summarised, never logged whole."""
    shape = type(body).__name__
    if isinstance(body, dict):
        shape = "object with keys " + ", ".join(sorted(map(str, body))[:8])
    return ServiceError(service, f"unexpected answer to {what}: {shape}", None, "UNEXPECTED_RESPONSE")


def error_from_transport(service: str, exc: httpx.HTTPError) -> ServiceError:
    # Never include the request (its headers hold credentials): type and text only.
    return ServiceError(service, f"{type(exc).__name__}: {exc}")
