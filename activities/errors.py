"""Service errors -> Temporal activity errors: retry what waiting can fix, stop on the rest."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from actions.mappings import MappingsError
from oauth.tokens import PortalDisconnected
from portals.directory import KleerNotConnected
from service_errors import ServiceError
from settings import UnknownPortalError
from storage.db import StorageUnavailable

P = ParamSpec("P")
R = TypeVar("R")


def to_application_error(exc: ServiceError) -> ApplicationError:
    if exc.retryable:
        delay = timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
        # A 429 is the API pacing us, not a fault: BENIGN keeps it out of warning logs and
        # failure metrics (kleer_http_calls_total{status="429"} still counts it).
        category = ApplicationErrorCategory.BENIGN if exc.status == 429 else \
            ApplicationErrorCategory.UNSPECIFIED
        return ApplicationError(str(exc), type=f"{exc.service}Unavailable", next_retry_delay=delay,
                                category=category)
    return ApplicationError(
        f"{exc.service} rejected the request ({exc.status}): {exc.message}",
        type=f"{exc.service}Rejected",
        non_retryable=True,
    )


# The part of a merged activity that failed, as the ApplicationError's first detail: the run
# then names that part in its message (workflows/steps.py `step(..., failures=...)`).
WRITE_BACK = "write_back"


def tagged(error: ApplicationError, part: str) -> ApplicationError:
    return ApplicationError(error.message, part, type=error.type, non_retryable=error.non_retryable,
                            next_retry_delay=error.next_retry_delay, category=error.category)


def translate_errors(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ServiceError as exc:
            raise to_application_error(exc) from None
        except UnknownPortalError as exc:
            raise ApplicationError(str(exc), type="UnknownPortal", non_retryable=True) from None
        except (PortalDisconnected, KleerNotConnected) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from None
        except StorageUnavailable as exc:
            raise ApplicationError(f"the database is unavailable: {exc}", type="StorageUnavailable"
                                   ) from None
        except MappingsError as exc:
            raise ApplicationError(f"field mappings cannot be used: {exc}", type="BadMappings",
                                   non_retryable=True) from None

    return wrapper
