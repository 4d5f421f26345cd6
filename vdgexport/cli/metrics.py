"""``/metrics`` (Prometheus text) and ``/healthz`` of a publisher, on a port of its own.

Served by a small threaded HTTP server beside the event loop (so the same on asyncio and
trio); the values are read when scraped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import vdgexport

__all__ = ["PublisherCollector", "serve_metrics"]


class PublisherCollector:
    """The publisher's metrics: its client's requests and watches, and whether it leads."""

    def __init__(self, client: vdgexport.Client, publisher: Any) -> None:
        self._client, self._publisher = client, publisher

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = getattr(self._client, "stats", None)
        if stats is not None:
            now = stats()
            yield CounterMetricFamily(
                "vdgexport_requests", "HTTP requests sent to the VDG server", now.requests
            )
            yield CounterMetricFamily(
                "vdgexport_request_failures",
                "requests to the VDG server that ended in an error",
                now.failures,
            )
            yield GaugeMetricFamily("vdgexport_watches", "open watches", now.watches)
        yield GaugeMetricFamily(
            "vdgexport_leader",
            "1 while this publisher leads its fleet",
            int(self._publisher.leading),
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        """200 while the publisher reaches Redis, else 503 with the reason."""
        publisher = self._publisher
        if publisher.reachable:
            role = "leading" if publisher.leading else "standing by"
            return 200, {"status": "ok", "role": role}
        why = "Redis not reached yet" if publisher.reachable is None else "Redis unreachable"
        return 503, {"status": "unhealthy", "reason": why}


def serve_metrics(host: str, port: int, client: vdgexport.Client, publisher: Any) -> str:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` in a daemon thread; its URL."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    collector = PublisherCollector(client, publisher)
    registry = CollectorRegistry()
    registry.register(collector)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
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
