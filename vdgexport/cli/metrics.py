"""``/metrics`` (Prometheus text) and ``/healthz``: of a publisher, and of the relay.

The metric families are made here once for both. A publisher serves them from a small
threaded HTTP server beside its event loop (so the same on asyncio and trio); the relay
(``vdgexport serve``) serves them as routes of its app, from its event loop. Values are
read when scraped.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import anyio

import vdgexport

if TYPE_CHECKING:
    from vdgexport.web import FleetSource, RelayStats

__all__ = [
    "ClientHealth",
    "PublisherCollector",
    "RelayCollector",
    "fleet_health",
    "metrics_text",
    "relay_routes",
    "serve_metrics",
]

Health = tuple[int, dict[str, Any]]


def _client_families(client: vdgexport.Client) -> Iterator[Any]:
    """The client's requests, failures and open watches."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    now = client.stats()
    yield CounterMetricFamily(
        "vdgexport_requests", "HTTP requests sent to the VDG server", now.requests
    )
    yield CounterMetricFamily(
        "vdgexport_request_failures",
        "requests to the VDG server that ended in an error",
        now.failures,
    )
    yield GaugeMetricFamily("vdgexport_watches", "open watches", now.watches)


class PublisherCollector:
    """The publisher's metrics: its client's requests and watches, and whether it leads."""

    def __init__(self, client: vdgexport.Client, publisher: Any) -> None:
        self._client, self._publisher = client, publisher

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        yield from _client_families(self._client)
        yield GaugeMetricFamily(
            "vdgexport_leader",
            "1 while this publisher leads its fleet",
            int(self._publisher.leading),
        )

    def health(self) -> Health:
        """200 while the publisher reaches Redis, else 503 with the reason."""
        publisher = self._publisher
        if publisher.reachable:
            role = "leading" if publisher.leading else "standing by"
            return 200, {"status": "ok", "role": role}
        why = "Redis not reached yet" if publisher.reachable is None else "Redis unreachable"
        return 503, {"status": "unhealthy", "reason": why}


class RelayCollector:
    """The relay's metrics: its streams and the events sent, and its client's (``--url``)."""

    def __init__(self, stats: RelayStats, client: vdgexport.Client | None = None) -> None:
        self._stats, self._client = stats, client

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if self._client is not None:
            yield from _client_families(self._client)
        yield GaugeMetricFamily(
            "vdgexport_sse_subscribers", "server-sent event streams open", self._stats.subscribers
        )
        yield CounterMetricFamily(
            "vdgexport_events_sent", "events written to the streams", self._stats.events_sent
        )


def metrics_text(collector: Any) -> Callable[[], tuple[bytes, str]]:
    """A function giving the Prometheus text of ``collector`` and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry()
    registry.register(collector)
    return lambda: (generate_latest(registry), CONTENT_TYPE_LATEST)


def _ok(**more: Any) -> Health:
    return 200, {"status": "ok", **more}


def _down(reason: str) -> Health:
    return 503, {"status": "unhealthy", "reason": reason}


class ClientHealth:
    """``/healthz`` of ``serve --url``: 200 while the VDG server answers, else 503.

    The client's own requests tell (at least one answered since the last look); when it
    sent none, one list request is made, at most every ``max_age`` seconds.
    """

    def __init__(self, client: vdgexport.Client, *, max_age: float, timeout: float) -> None:
        self._client, self._max_age, self._timeout = client, max_age, timeout
        self._seen: tuple[int, int] | None = None
        self._last = _down("not checked yet")
        self._at = -math.inf
        self._lock: anyio.Lock | None = None

    async def __call__(self) -> Health:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            now = self._client.stats()
            seen, self._seen = self._seen, (now.requests, now.failures)
            if seen is not None and now.requests > seen[0]:
                answered = now.failures - seen[1] < now.requests - seen[0]
                self._last = _ok() if answered else _down("requests to the VDG server fail")
            elif time.monotonic() - self._at >= self._max_age:
                self._last = await self._probe()
                self._at = time.monotonic()
                now = self._client.stats()
                self._seen = (now.requests, now.failures)
            return self._last

    async def _probe(self) -> Health:
        try:
            with anyio.fail_after(self._timeout):
                await self._client.list_exports()
        except TimeoutError:
            return _down(f"the VDG server did not answer within {self._timeout:g} s")
        except (vdgexport.VdgError, RuntimeError) as exc:
            return _down(f"{type(exc).__name__}: {exc}")
        return _ok()


async def fleet_health(source: FleetSource) -> Health:
    """``/healthz`` of ``serve --redis``: 200 while Redis answers and a publisher leads."""
    try:
        now = await source.snapshot()
    except (vdgexport.VdgError, RuntimeError) as exc:
        return _down(str(exc))
    if not now.leading:
        return _down("no publisher holds the lease")
    return _ok(exports=len(now.exports))


def relay_routes(collector: Any, health: Callable[[], Awaitable[Health]]) -> list[Any]:
    """``GET /metrics`` and ``GET /healthz`` as Starlette routes (the relay's event loop)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    text = metrics_text(collector)

    async def metrics(request: Request) -> Response:
        body, content_type = text()
        return Response(body, headers={"content-type": content_type})

    async def healthz(request: Request) -> Response:
        code, body = await health()
        return JSONResponse(body, status_code=code, headers={"cache-control": "no-store"})

    return [Route("/metrics", metrics), Route("/healthz", healthz)]


def serve_metrics(host: str, port: int, client: vdgexport.Client, publisher: Any) -> str:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` in a daemon thread; its URL."""
    collector = PublisherCollector(client, publisher)
    text = metrics_text(collector)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, *text())
            elif self.path == "/healthz":
                code, body = collector.health()
                self._send(code, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # no access log on stderr, which says what the publisher does

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="vdgexport metrics").start()
    bound = server.server_address[1]
    return f"http://{host}:{bound}"
