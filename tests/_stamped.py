"""ASGI middleware stamping each request with the real time it arrived, for pacing tests."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from vdgexport.testing._requests import parse_query

__all__ = ["Stamp", "Stamped", "shortest_gap", "status_requests"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """One request: when it arrived (``time.monotonic``) and its query parameters."""

    at: float
    query: dict[str, str]

    @property
    def per_id(self) -> bool:
        return "exportid" in self.query


class Stamped:
    """In front of an app (the simulator): records a `Stamp` per request, then passes it on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stamps: list[Stamp] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.stamps.append(Stamp(time.monotonic(), parse_query(scope["query_string"])))
        await self.app(scope, receive, send)


def status_requests(stamps: list[Stamp]) -> list[Stamp]:
    """The status requests (list or per id) among ``stamps``."""
    return [s for s in stamps if s.query.get("command") == "getExportVideoStatus"]


def shortest_gap(stamps: list[Stamp]) -> float:
    """The shortest time between two consecutive ``stamps`` (infinite for fewer than two)."""
    return min((b.at - a.at for a, b in itertools.pairwise(stamps)), default=float("inf"))
