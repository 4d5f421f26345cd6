"""Helpers of the fleet tests: publisher processes, and the invariant of a subscriber's account."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

import anyio

import vdgexport
from vdgexport.fleet import FleetEvent

ROOT = Path(__file__).resolve().parent.parent


class PublisherProcess:
    """``vdgexport publish`` in a process of its own, its stderr lines collected.

    Each publisher logs in with its own ``user`` (HTTP Basic), so that the server's
    request log tells which one polled.
    """

    def __init__(
        self,
        vdg_url: str,
        redis_url: str,
        *,
        user: str,
        lease: float = 1.0,
        interval: float = 0.05,
        extra: Iterable[str] = (),
    ) -> None:
        command = [sys.executable, "-m", "vdgexport", "publish", "--url", vdg_url]
        command += ["--redis", redis_url, "--name", "site", "--lease", str(lease)]
        command += ["--interval", str(interval), "--user", user, "--login", "basic", *extra]
        env = {**os.environ, "VDG_PASSWORD": "pw", "PYTHONPATH": str(ROOT)}
        self.user = user
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, prefix: str, *, after: int = 0) -> int | None:
        """The index of the first stderr line from ``after`` on that begins with ``prefix``
        (after the ``vdgexport: `` prefix), or ``None``."""
        for index in range(after, len(self.lines)):
            if self.lines[index].removeprefix("vdgexport: ").startswith(prefix):
                return index
        return None

    async def says(self, prefix: str, *, after: int = 0, within: float = 15) -> int:
        """Wait until it has said a line beginning with ``prefix``; return its index."""
        with anyio.fail_after(within):
            while (found := self.said(prefix, after=after)) is None:
                assert self.process.poll() is None, f"publisher exited: {self.lines}"
                await anyio.sleep(0.01)
        return found

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()


def check_account(items: list[FleetEvent]) -> None:
    """Per export, the events are an ordered account with no repeat and no gap.

    Each change names the value before it (``previous_status``, ``previous_progress``):
    it must be the value the subscriber last saw, so a repeated event or a lost one shows.
    A resync starts the account afresh; nothing comes after a terminal event.
    """
    status: dict[str, vdgexport.ExportStatus | None] = {}
    progress: dict[tuple[str, str, str], float | None] = {}
    ended: set[str] = set()
    for item in items:
        event = item.event
        if item.resync:
            status.clear(), progress.clear(), ended.clear()
        assert event.export_id not in ended, f"an event after the end: {event}"
        if isinstance(event, vdgexport.ExportStatusChanged):
            assert event.previous_status == status.get(event.export_id), event
            status[event.export_id] = event.status
        elif isinstance(event, vdgexport.DeviceProgress):
            key = (event.export_id, event.server_id, event.device_id)
            assert event.previous_progress == progress.get(key), event
            progress[key] = event.progress
        elif isinstance(event, (vdgexport.ExportCompleted, vdgexport.ExportRemoved)):
            ended.add(event.export_id)
    assert len({i.token for i in items}) == len(items), "a token repeated"
