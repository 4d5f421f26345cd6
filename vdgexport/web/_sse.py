"""Server-sent events: frames, resume tokens, and a response that notices a client leaving.

The response is written by hand (no sse-starlette): a producer writes frames to a `Channel`
while a second task waits for the client's ``http.disconnect``; whichever ends first cancels
the other, so a client that goes away stops its producer, and with it its watches, at once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

import vdgexport

__all__ = [
    "KEEPALIVE",
    "Channel",
    "EventStream",
    "RelayStats",
    "TokenError",
    "comment",
    "decode_token",
    "encode_token",
    "event_frame",
    "frame",
]

#: A comment line is sent after this many seconds without an event.
KEEPALIVE = 15.0
#: A token larger than this once inflated is refused (its checkpoint is a few hundred bytes).
MAX_TOKEN_BYTES = 256 * 1024

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


class RelayStats:
    """What a relay's streams have done, for its ``/metrics`` (read them at any time).

    Attributes:
        subscribers: the server-sent event streams open now.
        events_sent: the events (not comments) written to every stream so far.

    Example:
        ```python
        stats = vdgexport.web.RelayStats()
        app = vdgexport.web.create_app(client, stats=stats)
        ...
        print(stats.subscribers, stats.events_sent)
        ```
    """

    def __init__(self) -> None:
        self.subscribers = 0
        self.events_sent = 0

    def __repr__(self) -> str:
        return f"<RelayStats subscribers={self.subscribers} events_sent={self.events_sent}>"


class TokenError(ValueError):
    """A ``Last-Event-ID`` that is not a token of this relay."""


def encode_token(checkpoint: dict[str, Any], *, end: bool) -> str:
    """An opaque ``id:`` for an event: the watch checkpoint after it, deflated, base64url.

    ``end`` marks the token of a terminal event: a reconnect with it has nothing to resume.
    """
    raw = json.dumps({"c": checkpoint, "end": end}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 6)).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> tuple[dict[str, Any], bool]:
    """The checkpoint and the ``end`` mark inside ``token``; `TokenError` if unreadable."""
    try:
        packed = base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4))
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, MAX_TOKEN_BYTES)
        if inflate.unconsumed_tail or not inflate.eof:
            raise TokenError("the Last-Event-ID is not a token of this relay")
        data = json.loads(raw)
    except (binascii.Error, zlib.error, UnicodeError, ValueError) as exc:
        raise TokenError("the Last-Event-ID is not a token of this relay") from exc
    if not isinstance(data, dict) or not isinstance(checkpoint := data.get("c"), dict):
        raise TokenError("the Last-Event-ID is not a token of this relay")
    return checkpoint, data.get("end") is True


def frame(event_type: str, data: dict[str, Any], token: str | None = None) -> bytes:
    """One SSE event: ``id:`` (if any), ``event:`` and one line of JSON ``data:``."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = "" if token is None else f"id: {token}\n"
    return f"{head}event: {event_type}\ndata: {text}\n\n".encode()


def event_frame(event: vdgexport.WatchEvent, watch: vdgexport.Watch) -> bytes:
    """``event`` as read from ``watch``, with the watch's checkpoint after it as its id."""
    data = vdgexport.event_to_dict(event)
    end = isinstance(event, vdgexport.TerminalEvent)  # type: ignore[arg-type]
    return frame(str(data["type"]), data, encode_token(watch.checkpoint(), end=end))


def comment(text: str = "keep-alive") -> bytes:
    """A comment line: ignored by clients, it keeps proxies from closing an idle stream."""
    return f": {text}\n\n".encode()


class Channel:
    """Where a producer writes: the stream's chunks, or one JSON error before any chunk."""

    def __init__(self, send: Send, stats: RelayStats | None = None) -> None:
        self._send = send
        self._stats = stats
        self.started = False
        self.finished = False

    async def write(self, chunk: bytes) -> None:
        """Send ``chunk``, starting the ``text/event-stream`` response first if need be."""
        if not self.started:
            self.started = True
            await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self._stats is not None and chunk and not chunk.startswith(b":"):
            self._stats.events_sent += 1  # a frame: a comment begins with a colon

    async def answer(self, status: int, data: dict[str, Any] | None = None) -> None:
        """Answer with ``status`` and a JSON body instead of a stream (before any chunk)."""
        assert not self.started, "the stream has started"
        self.started = self.finished = True
        body = b"" if data is None else json.dumps(data).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        if data is not None:
            headers.append((b"content-type", b"application/json"))
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def end(self) -> None:
        """End the response (an empty stream if nothing was written)."""
        if not self.started:
            await self.write(b"")
        if not self.finished:
            self.finished = True
            await self._send({"type": "http.response.body", "body": b""})


Producer = Callable[[Channel], Awaitable[None]]


class EventStream(Response):
    """An ASGI response that runs ``producer`` until it returns or the client goes away;
    ``stats`` counts it while it is open, and the events it writes."""

    def __init__(self, producer: Producer, stats: RelayStats) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self._producer = producer
        self._stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stats.subscribers += 1
        try:
            await self._run(receive, send)
        finally:
            self._stats.subscribers -= 1

    async def _run(self, receive: Receive, send: Send) -> None:
        channel = Channel(send, self._stats)
        gone = False
        async with anyio.create_task_group() as tasks:

            async def until_gone() -> None:
                nonlocal gone
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone = True
                tasks.cancel_scope.cancel()

            tasks.start_soon(until_gone)
            try:
                await self._producer(channel)
            except OSError:  # the client went away while a chunk was sent
                gone = True
            tasks.cancel_scope.cancel()
        if not gone:
            with contextlib.suppress(OSError):
                await channel.end()
