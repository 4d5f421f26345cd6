"""Serve an ASGI app over real loopback HTTP with uvicorn in a thread, for tests."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from vdgexport.testing import SenseSimulator

App = Callable[..., Any]


class _Server(uvicorn.Server):
    """A uvicorn server that tells another thread when it is listening (or gave up)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        try:
            await super().startup(sockets=sockets)  # type: ignore[arg-type]
        finally:
            self.ready.set()


@contextmanager
def serve(app: App, *, port: int = 0, log_level: str = "warning", **options: Any) -> Iterator[str]:
    """Serve ``app`` on ``127.0.0.1:port`` (0: a free one); yield its base URL; stop after.

    A fixed ``port`` lets a server stop and come back where a proxy expects it. Other
    ``options`` go to `uvicorn.Config`: ``ssl_certfile``/``ssl_keyfile`` serve HTTPS (the
    URL then starts with ``https``), ``lifespan="on"`` runs the app's lifespan.
    """
    settings: dict[str, Any] = {"lifespan": "off", **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level, **settings)
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(timeout=10), "uvicorn did not start"
        assert server.started, f"uvicorn could not listen on port {port}"
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"{'https' if config.is_ssl else 'http'}://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()


class Recorder:
    """ASGI middleware in front of a simulator: records headers, can restart it mid-way.

    Attributes:
        authorizations: the ``Authorization`` header of each request (``None`` if absent).
        restart_after: restart the simulator's PluginManager when this many ``/command``
            requests have been served (``None``: never).
    """

    def __init__(self, sim: SenseSimulator, *, restart_after: int | None = None) -> None:
        self.sim = sim
        self.authorizations: list[str | None] = []
        self.restart_after = restart_after
        self.commands = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers", []))
            auth = headers.get(b"authorization")
            self.authorizations.append(None if auth is None else auth.decode("latin-1"))
            if scope["path"].endswith("/command"):
                self.commands += 1
                if self.commands == self.restart_after:
                    self.sim.restart()
        await self.sim(scope, receive, send)


def basic(user: str, password: str) -> str:
    """The ``Authorization`` header value of HTTP Basic authentication."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
