"""Read an answer's body within a cap on its *decoded* size, in bounded memory.

httpx decodes a compressed body one network chunk at a time, whole: a 1 MiB chunk of gzip can
become a gigabyte before any cap is checked. Here the raw bytes are read from the response's
stream and decoded in pieces of at most `PIECE` bytes, so that a body over the cap is refused
after at most the cap and one piece were decoded, whatever its ``Content-Encoding``.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx

from ._exceptions import ProtocolError

__all__ = ["ACCEPT_ENCODING", "PIECE", "OneChunk", "read_capped", "read_capped_for_httpx"]

#: What the client asks for: the encodings decoded here in bounded pieces.
ACCEPT_ENCODING = "gzip, deflate"
#: The largest piece decoded at once.
PIECE = 64 * 1024
#: Chunks read at most after closing an abandoned body (a closed connection yields none).
_DRAIN_CHUNKS = 4
_MAX_ENCODINGS = 4


class OneChunk(httpx.AsyncByteStream):
    """A body of known bytes, iterated by a plain iterator rather than an async generator
    (as `httpx.ByteStream` is): a request cancelled while it is sent, or an answer left
    unread, leaves no suspended generator for trio to warn about when it is collected."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Once(self._data)

    async def aclose(self) -> None:
        """Nothing to release."""


class _Once:
    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data or None

    def __aiter__(self) -> _Once:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


class _Inflate:
    """One gzip or deflate layer, decoded in pieces of at most `PIECE` bytes."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 16 if self._gzip else zlib.MAX_WBITS)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._started and data:
            self._started = True
            if not self._gzip and data[0] & 0x0F != 8:  # no zlib header: raw deflate
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            piece = self._decoder.decompress(data, PIECE)
            while True:
                if piece:
                    yield piece
                if not self._decoder.unconsumed_tail and len(piece) < PIECE:
                    return
                piece = self._decoder.decompress(self._decoder.unconsumed_tail, PIECE)
        except zlib.error as exc:
            raise ProtocolError(f"the compressed answer is corrupt ({exc})") from None

    def end(self) -> Iterator[bytes]:
        if self._started and not self._decoder.eof:
            raise ProtocolError("the compressed answer is truncated")
        rest = self._decoder.flush()
        if rest:  # pragma: no cover - nothing is left after the end of the stream
            yield rest


def _layers(response: httpx.Response) -> list[_Inflate]:
    """The decoders of ``Content-Encoding``, in the order they must be undone."""
    names = [
        name.strip().lower()
        for header in response.headers.get_list("content-encoding")
        for name in header.split(",")
    ]
    names = [name for name in names if name and name != "identity"]
    if len(names) > _MAX_ENCODINGS:
        raise ProtocolError(f"an answer compressed {len(names)} times over")
    for name in names:
        if name not in ("gzip", "x-gzip", "deflate"):
            raise ProtocolError(f"an answer in an encoding that was not asked for: {name[:40]!r}")
    return [_Inflate(name) for name in reversed(names)]


def _decode(layers: list[_Inflate], data: bytes, depth: int = 0) -> Iterator[bytes]:
    if depth == len(layers):
        if data:
            yield data
        return
    for piece in layers[depth].feed(data):
        yield from _decode(layers, piece, depth + 1)


def _finish(layers: list[_Inflate], depth: int = 0) -> Iterator[bytes]:
    if depth == len(layers):
        return
    for piece in layers[depth].end():
        yield from _decode(layers, piece, depth + 1)
    yield from _finish(layers, depth + 1)


async def read_capped(response: httpx.Response, cap: int, shown: str) -> bytes:
    """The decoded body of ``response``, at most ``cap`` bytes, else `ProtocolError`.

    The raw stream is read directly and decoded in pieces. Past the cap the connection is
    closed: the rest of the body is never read, and at most one piece of `PIECE` bytes
    beyond the cap is ever decoded.
    """
    declared = response.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > cap):
        raise ProtocolError(f"answer of {declared[:40]} bytes exceeds the cap of {cap} bytes")
    try:
        layers = _layers(response)
    except ProtocolError:
        await response.aclose()
        raise
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("vdgexport needs an async transport")  # pragma: no cover
    chunks = stream.__aiter__()
    try:
        body = await _read(chunks, layers, cap)
    except ProtocolError:
        await _abandon(response, chunks)
        raise
    if body is None:
        await _abandon(response, chunks)
        raise ProtocolError(f"answer from {shown} exceeds the cap of {cap} bytes")
    return bytes(body)


async def _read(chunks: AsyncIterator[bytes], layers: list[_Inflate], cap: int) -> bytearray | None:
    """The decoded body, or ``None`` as soon as it (or the raw body) grows past the cap."""
    raw_cap = cap if not layers else cap + cap // 8 + PIECE  # compression may add a little
    body = bytearray()
    raw = 0
    async for chunk in chunks:
        raw += len(chunk)
        for piece in _decode(layers, chunk):
            body += piece
            if len(body) > cap:
                return None
        if raw > raw_cap:
            return None
    for piece in _finish(layers):
        body += piece
        if len(body) > cap:
            return None
    return body


async def read_capped_for_httpx(response: httpx.Response, cap: int, shown: str) -> bytes:
    """`read_capped`, for a response that httpx reads again afterwards (an auth flow's).

    The connection's stream is closed and the response is left holding the decoded body,
    so that httpx's own ``aread()`` gives the same bytes instead of `httpx.StreamConsumed`.
    """
    body = await read_capped(response, cap, shown)
    stream, response.stream = response.stream, OneChunk(body)
    if "content-encoding" in response.headers:
        del response.headers["content-encoding"]  # what it holds now is decoded
    if isinstance(stream, httpx.AsyncByteStream):
        await stream.aclose()
    return body


async def _abandon(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close the connection mid-body, and let httpx's chain of async generators end.

    Leaving the generators suspended would have trio warn when they are collected
    (httpx issue 3686); after ``aclose`` the next read ends them without reading more.
    """
    await response.aclose()
    with contextlib.suppress(Exception):  # StopAsyncIteration, or the closed stream's error
        for _ in range(_DRAIN_CHUNKS):
            await chunks.__anext__()
