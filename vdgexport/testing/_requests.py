"""What the simulator records of each request, and how it reads a query string."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import anyio
import anyio.lowlevel

from ._faults import Fault

__all__ = ["Hung", "SimRequest", "parse_query"]


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request the simulator received, recorded even when a fault answered it.

    Attributes:
        method: the HTTP method, e.g. ``"GET"``.
        path: the URL path as received, base prefix included (e.g. ``"/vdg/command"``).
        query: the query parameters, URL-decoded, names lower-cased (first one wins).
        body: the request body.
        time: the simulator clock when the request arrived.
        fault: the fault served to it, or ``None`` for a normal answer.
    """

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    time: float
    fault: Fault | None = None


@dataclass(slots=True)
class Hung:
    """A request held by `Fault.HANG` until its event is set (from the thread it names)."""

    event: anyio.Event
    token: anyio.lowlevel.EventLoopToken
    thread: int = field(default_factory=threading.get_ident)


def parse_query(raw: bytes) -> dict[str, str]:
    """Query parameters, URL-decoded, names lower-cased; the first of a name wins."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        query.setdefault(name.lower(), value)
    return query
