"""Service errors -> Temporal activity errors: retry what waiting can fix, stop on the rest."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from service_errors import ServiceError
from settings import UnknownPortalError

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(exc: ServiceError) -> ApplicationError:
    if exc.retryable:
        delay = timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
        return ApplicationError(str(exc), type=f"{exc.service}Unavailable", next_retry_delay=delay)
    return ApplicationError(
        f"{exc.service} rejected the request ({exc.status}): {exc.message}",
        type=f"{exc.service}Rejected",
        non_retryable=True,
    )


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ServiceError as exc:
            raise to_application_error(exc) from None
        except UnknownPortalError as exc:
            raise ApplicationError(str(exc), type="UnknownPortal", non_retryable=True) from None

    return wrapper
