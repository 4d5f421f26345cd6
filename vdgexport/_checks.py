"""Argument checks where arguments are given: a clear error now, not a strange one later."""

from __future__ import annotations

import math
from typing import overload

import httpx

__all__ = ["check_count", "check_id", "check_transport", "check_url", "seconds"]

_MAX_PORT = 65535


@overload
def seconds(name: str, value: float) -> float: ...
@overload
def seconds(name: str, value: float | None, *, optional: bool) -> float | None: ...


def seconds(name: str, value: float | None, *, optional: bool = False) -> float | None:
    """``value`` if it is a finite number above 0 (or ``None`` when ``optional``).

    Raises:
        TypeError: not a number (a `bool` is not one either).
        ValueError: NaN, infinite, zero or negative; the message names ``name``.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        allowed = "a number or None" if optional else "a number"
        raise TypeError(f"{name} must be {allowed}, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        hint = " (None means no limit)" if optional else ""
        raise ValueError(f"{name} must be a finite number above 0{hint}, not {value!r}")
    return float(value)


def check_count(name: str, value: int) -> int:
    """``value`` if it is an `int` above 0, else `TypeError` / `ValueError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be above 0, not {value!r}")
    return value


def check_url(base_url: str | httpx.URL) -> httpx.URL:
    """``base_url`` as an `httpx.URL` if it is an absolute http(s) URL with a valid port.

    Raises:
        TypeError: not a `str` (or `httpx.URL`).
        ValueError: not http(s), no host, or a port outside 1..65535.
    """
    if not isinstance(base_url, (str, httpx.URL)):
        raise TypeError(f"base_url must be a str, not {type(base_url).__name__}")
    shown = repr(str(base_url)[:80]) if "@" not in str(base_url) else "(with credentials)"
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL {shown}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host, not {shown}")
    if url.port is not None and not 0 < url.port <= _MAX_PORT:
        raise ValueError(f"base_url has a port outside 1..{_MAX_PORT}: {url.port}")
    return url


def check_id(export_id: int | str) -> str:
    """An export id as the text that is sent: an `int` or a non-empty `str` that can be sent.

    White space around a text is stripped (``" 5"`` is ``"5"``), as in the server's answers.

    Raises:
        TypeError: neither `int` nor `str` (`bool`, `None`, `bytes` and `float` are not ids).
        ValueError: a text that is empty or only white space, or one that cannot be sent
            (a lone surrogate).
    """
    if isinstance(export_id, bool) or not isinstance(export_id, (int, str)):
        raise TypeError(f"an export id is an int or a str, not {type(export_id).__name__}")
    if isinstance(export_id, int):
        try:
            return str(export_id)
        except ValueError:  # more digits than Python converts
            raise ValueError("export id has too many digits to be sent") from None
    if not export_id.strip():
        raise ValueError(f"export id must not be empty, not {export_id!r}")
    export_id = export_id.strip()
    try:
        export_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"export id {export_id!r} cannot be sent (a lone surrogate)") from None
    return export_id


def check_transport(
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncBaseTransport | None:
    """``transport`` if it is ``None`` or an `httpx.AsyncBaseTransport`, else `TypeError`."""
    if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
        raise TypeError(
            f"transport must be an httpx.AsyncBaseTransport, not {type(transport).__name__}"
        )
    return transport
