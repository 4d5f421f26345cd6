"""A raw HTTP server on 127.0.0.1 that answers with whatever bytes a test chooses.

uvicorn (tests/_servers.py) only sends what ASGI allows; this one sends any status line,
headers and body, as a hostile or broken server would. It runs in threads, so tests on
asyncio and trio use it alike.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

Respond = Callable[[bytes], bytes | Iterable[bytes]]
_L = TypeVar("_L", bound="Listener")


def response(
    body: bytes = b"",
    *,
    status: str = "200 OK",
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    content_type: bytes | None = b"text/xml",
    length: bool = True,
) -> bytes:
    """An HTTP/1.1 answer as bytes (``Connection: close``); headers are sent as given."""
    lines = [b"HTTP/1.1 " + status.encode("latin-1"), b"Connection: close"]
    if content_type is not None:
        lines.append(b"Content-Type: " + content_type)
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    for name, value in headers:
        name = name.encode("latin-1") if isinstance(name, str) else name
        value = value.encode("utf-8") if isinstance(value, str) else value
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Listener:
    """A thread accepting connections on 127.0.0.1 (a free port), each one served by
    `_serve` in a thread of its own; leaving ``with`` closes them and joins every thread.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        port: the port.
        accepted: connections accepted so far.
    """

    def __init__(self, backlog: int = 64) -> None:
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(backlog)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self: _L) -> _L:
        self._start(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            conns, threads = list(self._conns), list(self._threads)
        for conn in conns:
            conn.close()
        for thread in threads:
            thread.join(timeout=10)
        self._sock.close()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError  # pragma: no cover

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                self._conns = [c for c in self._conns if c.fileno() != -1]
                self._conns.append(conn)
            self._start(self._serve, conn)


class RawHTTP(Listener):
    """Serve ``respond(request_bytes)`` to every request, one connection each.

    Attributes:
        respond: what answers a request (its head and body); may be replaced at any time.
        requests: every request received, head and body.
        url: ``http://127.0.0.1:PORT``.
    """

    def __init__(self, respond: Respond) -> None:
        super().__init__()
        self.respond = respond
        self.requests: list[bytes] = []

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5.0)
            try:
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                answer = self.respond(request)
                for part in [answer] if isinstance(answer, bytes) else answer:
                    if self._stop.is_set():
                        return
                    conn.sendall(part)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):  # until the client closes its side
                    pass
            except OSError:
                return


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
