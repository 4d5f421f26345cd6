"""A real redis-server on a free loopback port, with no persistence, for the fleet tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if shutil.which("/usr/bin/redis-server") else None
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; `restart` brings it back on the same port: empty, or
    with ``dump`` (an RDB file) as the last ``SAVE`` left it, as Debian's default persistence
    does after a crash.

    Attributes:
        url: ``redis://127.0.0.1:PORT/0`` (with ``password``, it must be given: it is not in it).
    """

    def __init__(self, dump: Path | None = None, *, password: str | None = None) -> None:
        self.dump, self.password = dump, password
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[str] | None = None
        self._drain = threading.Thread()

    def start(self) -> None:
        assert REDIS_SERVER is not None
        process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "notice",
                *(() if self.dump is None else ("--dir", str(self.dump.parent))),
                *(() if self.dump is None else ("--dbfilename", self.dump.name)),
                *(() if self.password is None else ("--requirepass", self.password)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        for line in process.stdout:  # blocks until redis says it is ready (or exits)
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        self._drain = threading.Thread(target=process.stdout.read, daemon=True)  # its log
        self._drain.start()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)
            self._drain.join(timeout=10)
            if process.stdout is not None:
                process.stdout.close()

    def restart(self) -> None:
        """Kill and start again: without ``dump`` every key is gone, with it Redis holds what
        the last ``SAVE`` wrote."""
        self.stop()
        self.start()


@contextmanager
def redis_server(dump: Path | None = None, *, password: str | None = None) -> Iterator[RedisServer]:
    """A started `RedisServer`, skipping the test where the binary is absent."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(dump, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
