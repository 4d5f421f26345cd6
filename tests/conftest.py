"""Shared fixtures: both anyio backends, a simulator on a manual clock, a fast client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import vdgexport
from vdgexport.testing import ManualClock, SenseSimulator

#: The project's own attack documents (see the README beside them); tests never read
#: anything outside the repository.
HOSTILE_XML = Path(__file__).resolve().parent / "data" / "hostile-xml"
#: The placeholders in those documents, for a file to read and a URL to fetch.
SECRET_PLACEHOLDER = "/tmp/vdgexport-secret.txt"
URL_PLACEHOLDER = "http://127.0.0.1:9"


def hostile_documents(secret: Path | None = None, url: str | None = None) -> dict[str, bytes]:
    """Every attack document by file name, with ``secret`` and ``url`` put in place of the
    placeholders (in whatever encoding the document is written)."""
    documents: dict[str, bytes] = {}
    for path in sorted(HOSTILE_XML.glob("*.xml")):
        data = path.read_bytes()
        for old, new in ((SECRET_PLACEHOLDER, secret), (URL_PLACEHOLDER, url)):
            if new is not None:
                for codec in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le"):
                    data = data.replace(old.encode(codec), str(new).encode(codec))
        documents[path.name] = data
    return documents


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> SenseSimulator:
    return SenseSimulator(clock=clock)


def make_client(sim: Any, clock: ManualClock, **options: object) -> vdgexport.Client:
    """A client of ``sim`` that polls every millisecond (the product's pace, not a test wait)."""
    settings: dict[str, object] = {
        "transport": httpx.ASGITransport(app=sim),
        "poll_interval": 0.001,
        "max_poll_interval": 0.004,
        "timeout": 5.0,
        "clock": clock,
    }
    settings.update(options)
    return vdgexport.Client("http://sim.test", **settings)  # type: ignore[arg-type]


@pytest.fixture
async def client(sim: SenseSimulator, clock: ManualClock) -> AsyncIterator[vdgexport.Client]:
    async with make_client(sim, clock) as client:
        yield client


class Tap:
    """ASGI middleware that lets a test wait for the n-th request, without sleeping.

    It can also answer the next requests itself with a given body (``serve``).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self._arrived = anyio.Event()
        self._bodies: list[tuple[int, bytes]] = []

    def serve(self, body: bytes, *, status: int = 200, times: int = 1) -> None:
        self._bodies += [(status, body)] * times

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.count += 1
            self._arrived.set()
            self._arrived = anyio.Event()
            if self._bodies:
                status, body = self._bodies.pop(0)
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", b"text/xml")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def requests(self, n: int) -> None:
        """Return once ``n`` requests in all have arrived (fails after 5 s)."""
        with anyio.fail_after(5):
            while self.count < n:
                await self._arrived.wait()
