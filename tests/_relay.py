"""The relay over real loopback HTTP for tests: a simulator, a client, uvicorn; an SSE reader."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio
import coredis
import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

import vdgexport
import vdgexport.fleet
from vdgexport.testing import ManualClock, SenseSimulator
from vdgexport.web import FleetSource, create_app

from ._fleet import PublisherProcess
from ._redis import RedisServer, redis_server
from ._servers import Recorder, serve

PREFIX = "/relay"
#: The lease and the interval of the fleet tests' publisher.
LEASE = 1.0
INTERVAL = 0.05


class Counter:
    """ASGI middleware in front of the simulator: the wall-clock time of each status request.

    Another thread (the test's) can wait for the n-th request with `wait_for`.
    """

    def __init__(self, sim: SenseSimulator) -> None:
        self.sim = sim
        self.times: list[float] = []
        self.queries: list[dict[str, str]] = []
        self._arrived = threading.Condition()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/command"):
            with self._arrived:
                self.times.append(time.monotonic())
                self.queries.append(dict(parse_qsl(scope["query_string"].decode())))
                self._arrived.notify_all()
        await self.sim(scope, receive, send)

    def ids(self, n: int) -> str | None:
        """The ``exportid`` of the n-th request (``None``: the whole list)."""
        return self.queries[n].get("exportid")

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` requests in all have arrived (fails after ``timeout``)."""
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.times) >= n, timeout), (
                f"only {len(self.times)} of {n} requests arrived"
            )


@dataclass
class Relay:
    """A served relay: its base URL (with the mount prefix), simulator, clock and counter."""

    url: str
    sim: SenseSimulator
    clock: ManualClock
    counter: Counter
    client: vdgexport.Client
    poll: float = field(default=0.02)


@contextmanager
def relay(*, poll: float = 0.02, keepalive: float = 15.0, **client: Any) -> Iterator[Relay]:
    """The relay mounted under `PREFIX` in a Starlette app whose lifespan owns the client."""
    clock = ManualClock()
    sim = SenseSimulator(clock=clock)
    counter = Counter(sim)
    settings: dict[str, Any] = {"poll_interval": poll, "max_poll_interval": poll, "clock": clock}
    settings.update(client)
    vdg = vdgexport.Client("http://sim", transport=httpx.ASGITransport(app=counter), **settings)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with vdg:
            yield

    app = Starlette(
        lifespan=lifespan, routes=[Mount(PREFIX, app=create_app(vdg, keepalive=keepalive))]
    )
    with serve(app, lifespan="on") as base:
        yield Relay(base + PREFIX, sim, clock, counter, vdg, poll)


@dataclass
class Fleet:
    """A VDG server (simulator), a real redis-server, and the publisher's process."""

    redis: RedisServer
    recorder: Recorder
    vdg_url: str
    publisher: PublisherProcess | None = None

    async def publish(self) -> PublisherProcess:
        self.publisher = PublisherProcess(
            self.vdg_url, self.redis.url, user="a", lease=LEASE, interval=INTERVAL
        )
        await self.publisher.says("leading")
        return self.publisher

    async def knows(self, export_id: str) -> None:
        """Wait until the fleet holds ``export_id`` (listed within a tick of the leader's)."""
        with anyio.fail_after(15):
            async with vdgexport.fleet.subscribe(
                self.redis.url, name="site", export_id=export_id
            ) as events:
                await events.__anext__()

    async def lapse(self) -> None:
        """End the lease now, as its TTL would once its leader is gone."""
        async with coredis.Redis.from_url(self.redis.url) as redis:
            await redis.delete(["vdgexport:{site}:lease"])


@contextmanager
def fleet_of(sim: SenseSimulator) -> Iterator[Fleet]:
    """A `Fleet` of ``sim`` (its publisher started by `Fleet.publish`, closed after)."""
    recorder = Recorder(sim)
    with redis_server() as redis, serve(recorder) as vdg_url:
        made = Fleet(redis, recorder, vdg_url)
        try:
            yield made
        finally:
            if made.publisher is not None:
                made.publisher.close()


@contextmanager
def fleet_relay(redis_url: str, *, name: str = "site", keepalive: float = 15.0) -> Iterator[str]:
    """A relay served from fleet ``name`` (no VDG server), mounted under `PREFIX`; its URL."""
    source = FleetSource(redis_url, name=name)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with source:
            yield

    inner = create_app(source, keepalive=keepalive)
    app = Starlette(lifespan=lifespan, routes=[Mount(PREFIX, app=inner)])
    with serve(app, lifespan="on") as base:
        yield base + PREFIX


@dataclass
class Sse:
    """One event as read from the stream."""

    type: str
    data: dict[str, Any]
    id: str | None


class SseStream:
    """The events of an open ``text/event-stream`` response, until the server ends it.

    An async iterator (not a generator), closed with `aclose`: it ends httpx's chain of
    async generators so that trio does not warn about them (httpx issue 3686).
    """

    def __init__(self, response: httpx.Response, comments: list[str] | None = None) -> None:
        self.response = response
        self.comments = comments if comments is not None else []
        self._lines = response.aiter_lines()

    def __aiter__(self) -> SseStream:
        return self

    async def __anext__(self) -> Sse:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    data = json.loads(fields["data"])
                    return Sse(fields.get("event", "message"), data, fields.get("id"))
                fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        raise StopAsyncIteration

    async def comment(self) -> str:
        """The next comment line (a keep-alive); an event before it fails the test."""
        async for line in self._lines:
            if line.startswith(":"):
                return line[1:].strip()
            assert line == "", f"an event came first: {line!r}"
        raise AssertionError("the stream ended")

    async def aclose(self) -> None:
        """Close the connection (the subscriber goes away) and end the generators."""
        await self.response.aclose()
        with contextlib.suppress(Exception):
            for _ in range(100):
                await self._lines.__anext__()


async def read_until(stream: SseStream, stop: Callable[[list[Sse]], bool]) -> list[Sse]:
    """Events of ``stream`` until ``stop(events)`` holds (or the stream ends)."""
    events: list[Sse] = []
    async for event in stream:
        events.append(event)
        if stop(events):
            break
    return events


@asynccontextmanager
async def sse(
    http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SseStream]:
    """``GET url`` as a stream of events; leaving the block closes the connection."""
    async with http.stream("GET", url, headers=headers) as response:
        stream = SseStream(response)
        try:
            yield stream
        finally:
            await stream.aclose()


@contextmanager
def relay_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``vdgexport serve ARGS --port 0``; yield the process and the URL of its first line."""
    env = {k: v for k, v in os.environ.items() if k not in ("VDG_URL", "VDG_PASSWORD")}
    process = subprocess.Popen(
        [sys.executable, "-m", "vdgexport", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # blocks until uvicorn listens
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
