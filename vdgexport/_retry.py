"""The retry policy shared by one-shot calls and the poller.

What may heal (`is_transient`), how long to wait (`backoff`, with the server's
``Retry-After`` read by `parse_retry_after`), and the retry loop of one-shot calls
(`retrying`). It knows nothing of HTTP requests: the transport raises `RetryableStatus`
and this module reads it.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import tenacity

from ._exceptions import ApiError, HTTPStatusError, ProtocolError, TransportError

__all__ = [
    "ATTEMPTS",
    "MAX_RETRY_AFTER",
    "RetryableStatus",
    "backoff",
    "is_transient",
    "parse_retry_after",
    "retry_after",
    "retrying",
]

logger = logging.getLogger("vdgexport")

#: Longest ``Retry-After`` honoured, in seconds; a longer one is capped to this.
MAX_RETRY_AFTER = 30.0
#: Attempts of a one-shot call (``list_exports``, ``get_export``) before it raises.
ATTEMPTS = 3
_T = TypeVar("_T")


class RetryableStatus(HTTPStatusError):
    """A transient non-2xx answer, with the server's ``Retry-After`` (seconds) if any."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


def parse_retry_after(value: str) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date), else ``None``.

    Whatever the text, the result is ``None`` or a finite number of seconds, at least 0:
    a hostile or broken header never raises.

    Example:
        ```python
        assert parse_retry_after("7") == 7.0
        assert parse_retry_after("²") is None      # a digit to str.isdigit, not to float
        ```
    """
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)  # float(): no 4,300-digit limit
    try:
        when = email.utils.parsedate_to_datetime(value)
        remaining = when.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if not math.isfinite(remaining):
        return None
    return max(0.0, remaining)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may heal on its own, so that waiting and retrying makes sense.

    Transient: network failures and timeouts, 408/429/5xx, HTML pages, malformed or
    truncated bodies, -18 (general error). Permanent: authentication, a refused TLS
    certificate, unsafe XML, other 4xx, and API errors other than -18 (-57 is handled by
    the caller).
    """
    if isinstance(exc, TransportError):
        return not exc.certificate_refused
    if isinstance(exc, RetryableStatus):
        return True
    if isinstance(exc, ProtocolError):
        return not exc.unsafe
    return isinstance(exc, ApiError) and exc.code == -18


def retry_after(exc: BaseException | None) -> float | None:
    """The server's ``Retry-After`` carried by ``exc``, capped at `MAX_RETRY_AFTER`."""
    if isinstance(exc, RetryableStatus) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER)
    return None


def backoff(failures: int, base: float, cap: float, exc: BaseException | None = None) -> float:
    """Exponential backoff with full jitter, or the server's ``Retry-After`` if longer."""
    exponent = min(max(0, failures - 1), 64)  # 2.0 ** 1024 would overflow
    delay = random.uniform(0.0, min(cap, base * 2.0**exponent))
    hint = retry_after(exc)
    return delay if hint is None else max(delay, hint)


async def retrying(call: Callable[[], Awaitable[_T]], *, base: float, cap: float) -> _T:
    """Run ``call`` up to `ATTEMPTS` times while it fails transiently; raise the last error."""

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        return backoff(state.attempt_number, base, cap, exc)

    retry = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=wait,
        retry=tenacity.retry_if_exception(is_transient),
        sleep=anyio.sleep,
        reraise=True,
        before_sleep=_log_retry,
    )
    return await retry(call)


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    exc = outcome.exception() if outcome is not None else None
    logger.info("attempt %d failed (%s); retrying", state.attempt_number, exc)
