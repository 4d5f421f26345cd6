"""Real servers on loopback for the reliability tests: nginx as a reverse proxy, uvicorn on a
fixed port (so that it can stop and come back where the proxy expects it), and raw sockets
that misbehave (accept and never answer, stream an endless body).

nginx comes from the system packages (``.ci/run`` installs it when it can); without it the
tests that need it skip with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ._raw import Listener

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_send_timeout 2s;
            proxy_read_timeout {read_timeout}s;
            proxy_next_upstream off;
        }}
    }}
}}
"""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(
    port: int, *, deadline: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll-connect until ``127.0.0.1:port`` accepts a connection (no fixed sleep)."""
    end = time.monotonic() + deadline
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            # Not a wait for an event: the next connect attempt is the poll itself.
            threading.Event().wait(0.01)


@contextmanager
def nginx_proxy(upstream: str, tmp: Path, *, read_timeout: float = 2.0) -> Iterator[str]:
    """Run nginx in front of ``upstream`` (``http://127.0.0.1:PORT``); yield the proxy URL.

    Skips the test when nginx is not installed or cannot start here.
    """
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx; .ci/run does it as root)")
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        _CONF.format(tmp=tmp, port=port, upstream=upstream, read_timeout=f"{read_timeout:g}")
    )
    log = tmp / "error.log"
    proc = subprocess.Popen(
        [NGINX, "-e", str(log), "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            wait_listening(port, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            text = log.read_text() if log.exists() else ""
            pytest.skip(f"nginx could not start here ({exc}): {text[-300:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


class RawServer(Listener):
    """A loopback TCP listener run by a thread, with a handler per connection.

    Attributes:
        accepted: connections accepted so far.
        sent: bytes sent, per connection (for streaming handlers).
    """

    def __init__(self, handler: str, *, body_size: int = 0, declare_length: bool = False):
        super().__init__(backlog=16)
        self.handler = handler
        self.body_size = body_size
        self.declare_length = declare_length
        self.sent: list[int] = []
        self.finished: list[bool] = []

    def _serve(self, conn: socket.socket) -> None:
        (self._silent if self.handler == "silent" else self._stream)(conn)

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data and not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            data += chunk

    def _silent(self, conn: socket.socket) -> None:
        """Accept, read the request, never answer: keep reading until the peer goes."""
        conn.settimeout(0.05)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _stream(self, conn: socket.socket) -> None:
        """Answer 200 with a body of ``body_size`` bytes, as long as the peer reads it."""
        conn.settimeout(0.05)
        self._read_request(conn)
        conn.settimeout(5.0)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n"
        if self.declare_length:
            head += b"Content-Length: %d\r\n" % self.body_size
        chunk = b"<result>" + b"x" * (65536 - 8)
        sent, finished = 0, False
        try:
            conn.sendall(head + b"\r\n")
            while sent < self.body_size:
                piece = chunk[: self.body_size - sent]
                conn.sendall(piece)
                sent += len(piece)
            finished = True
        except OSError:
            pass
        finally:
            self.sent.append(sent)
            self.finished.append(finished)
            conn.close()
