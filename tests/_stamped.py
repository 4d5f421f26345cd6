"""A client transport that stamps each request as it leaves, for pacing tests.

The pace is the client's promise (when it sends), so requests are stamped in the client,
before the real loopback connection: times taken at the server would add the jitter of
its thread on a loaded machine.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import httpx

from vdgexport.testing._requests import parse_query

__all__ = ["Stamp", "Stamping", "shortest_gap", "status_requests"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """One request: when it left (``time.monotonic``) and its query parameters."""

    at: float
    query: dict[str, str]

    @property
    def per_id(self) -> bool:
        return "exportid" in self.query


class Stamping(httpx.AsyncBaseTransport):
    """httpx's own HTTP transport, recording a `Stamp` per request it sends."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.stamps: list[Stamp] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.stamps.append(Stamp(time.monotonic(), parse_query(request.url.query)))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def status_requests(stamps: list[Stamp]) -> list[Stamp]:
    """The status requests (list or per id) among ``stamps``."""
    return [s for s in stamps if s.query.get("command") == "getExportVideoStatus"]


def shortest_gap(stamps: list[Stamp]) -> float:
    """The shortest time between two consecutive ``stamps`` (infinite for fewer than two)."""
    return min((b.at - a.at for a, b in itertools.pairwise(stamps)), default=float("inf"))
