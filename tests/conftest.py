"""Shared fixtures: both anyio backends, a simulator on a manual clock, a fast client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import vdgexport
from vdgexport.testing import ManualClock, SenseSimulator

HOSTILE_XML = Path(__file__).resolve().parents[2] / "shared" / "hostile-xml"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> SenseSimulator:
    return SenseSimulator(clock=clock)


def make_client(sim: SenseSimulator, clock: ManualClock, **options: object) -> vdgexport.Client:
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
