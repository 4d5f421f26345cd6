"""Small ASGI 3 helpers: types, reading a request body, sending a response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Receive", "Response", "Scope", "Send", "read_body", "serve_lifespan"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

XML_TYPE = "text/xml; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html"


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response to send whole (or, for faults, in part).

    Attributes:
        status: the HTTP status code.
        content_type: the ``Content-Type`` header.
        body: the full body.
        headers: extra headers, as ``(name, value)`` pairs of text.
    """

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def _start(self, length: int) -> Message:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(length).encode("ascii")),
            (b"cache-control", b"no-cache"),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers]
        return {"type": "http.response.start", "status": self.status, "headers": headers}

    async def send(self, send: Send) -> None:
        """Send the whole response."""
        await send(self._start(len(self.body)))
        await send({"type": "http.response.body", "body": self.body, "more_body": False})

    async def send_truncated(self, send: Send) -> None:
        """Send only the first half of the body, with a ``Content-Length`` that matches it."""
        half = self.body[: len(self.body) // 2]
        await send(self._start(len(half)))
        await send({"type": "http.response.body", "body": half, "more_body": False})

    async def send_then_reset(self, send: Send) -> None:
        """Announce the full body, send its first half, then fail as a reset connection.

        Raises:
            ConnectionResetError: always, after the first half is sent.
        """
        await send(self._start(len(self.body)))
        half = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        raise ConnectionResetError("simulated connection reset by vdgexport.testing")


async def read_body(receive: Receive) -> bytes:
    """Read a request body to its end (empty if the client went away)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Answer the ASGI lifespan protocol: nothing to start, nothing to stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
