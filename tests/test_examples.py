"""The recipes in examples/ run as written, over real loopback HTTP, against the simulator.

The simulator's clock moves on by a few seconds at each request, so the exports progress
as fast as the examples poll them: nothing waits on the wall clock.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

import vdgexport
from vdgexport import ExportCompleted, ExportStatusChanged, event_from_dict
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Stepping:
    """ASGI middleware: every ``/command`` request moves the simulator's clock on by
    ``step`` seconds, and the ``remove_at``-th one removes export ``remove``."""

    def __init__(
        self, sim: SenseSimulator, clock: ManualClock, step: float, remove: str = "", at: int = 0
    ) -> None:
        self.sim, self.clock, self.step = sim, clock, step
        self.remove, self.at = remove, at
        self.commands = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/command"):
            self.commands += 1
            self.clock.advance(self.step)
            if self.commands == self.at:
                self.sim.remove_export(self.remove)
        await self.sim(scope, receive, send)


def run(script: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/script`` as a user would, with warnings as errors."""
    env = {**os.environ, "VDG_URL": url, "VDG_POLL_INTERVAL": "0.01"}
    return subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_sync_script_watches_one_export_and_waits_for_another(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    watched = sim.add_export(devices=2, duration=[10, 20], path="D:/exports/a")
    waited = sim.add_export(duration=30, path="D:/exports/b")
    with serve(Stepping(sim, clock, step=2)) as url:
        result = run("sync_script.py", url, watched, waited)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "server 2.8.0",
        "export 1: SYNCING 15%",  # 2 s into 10 s and 20 s
        "export 2: SYNCING 7%",  # 2 s into 30 s
    ]
    assert lines[3].startswith("1: device ")
    assert f"{watched}: completed, D:/exports/a" in lines
    assert lines[-1] == f"{waited}: completed, D:/exports/b"


def test_the_sync_script_says_when_an_export_did_not_complete(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    watched = sim.add_export(duration=4)
    with serve(Stepping(sim, clock, step=2)) as url:
        result = run("sync_script.py", url, watched, "77")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines()[-1] == "77: did not complete (ExportVanished)"


def test_the_trio_service_reacts_to_each_outcome(sim: SenseSimulator, clock: ManualClock) -> None:
    done = sim.add_export(duration=10, path="D:/exports/done")
    removed = sim.add_export(duration=10_000, devices=3)
    app = Stepping(sim, clock, step=2, remove=removed, at=4)
    with serve(app) as url:
        result = run("trio_service.py", url, done, removed, "99")
    assert result.returncode == 1, result.stderr  # not every export completed
    lines = result.stdout.splitlines()
    assert lines[0] == "watching 3 exports"
    assert sorted(lines[1:4]) == [
        f"{done}: completed, D:/exports/done is ready",
        f"{removed}: removed at 0%",
        "99: vanished (not_found)",
    ]
    assert lines[4:] == ["1 completed, 1 removed, 1 vanished, 0 failed"]


def test_the_trio_service_watches_every_listed_export(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    for n in range(5):
        sim.add_export(duration=5 * (n + 1))
    with serve(Stepping(sim, clock, step=5)) as url:
        result = run("trio_service.py", url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "watching 5 exports"
    assert lines[-1] == "5 completed, 0 removed, 0 vanished, 0 failed"


# -- the FastAPI service ---------------------------------------------------------------------


def load(name: str) -> ModuleType:
    """Import ``examples/name.py`` afresh (its app has its own state each time)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: pydantic resolves names there
    spec.loader.exec_module(module)
    return module


@dataclass
class Service:
    url: str
    sim_url: str


@pytest.fixture
def service(
    sim: SenseSimulator, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    """The FastAPI example served by uvicorn (lifespan on) in front of the simulator."""
    pytest.importorskip("fastapi")
    module = load("fastapi_service")
    with serve(Stepping(sim, clock, step=2)) as sim_url:
        monkeypatch.setenv("VDG_URL", sim_url)
        monkeypatch.setenv("VDG_POLL_INTERVAL", "0.01")
        with serve(module.app, lifespan="on", timeout_graceful_shutdown=0.2) as url:
            yield Service(url, sim_url)


def events_of(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of ``response``: (event name, JSON data)."""
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def test_the_service_streams_an_export_s_events_to_its_end(
    service: Service, sim: SenseSimulator
) -> None:
    url = service.url
    eid = sim.add_export(devices=2, duration=[6, 10])
    with httpx.stream("GET", f"{url}/exports/{eid}/events", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        received = list(events_of(response))
    names = [name for name, _ in received]
    events = [event_from_dict(data) for _, data in received]
    assert names == [type(e).__name__ for e in events]
    assert isinstance(events[0], ExportStatusChanged)
    assert isinstance(events[-1], ExportCompleted)
    assert events[-1].export.progress == 100.0


def test_the_service_creates_an_export_and_follows_it(
    service: Service, sim: SenseSimulator
) -> None:
    url = service.url
    with vdgexport.SyncClient(service.sim_url) as client:  # a device the server knows
        device = client.get_export(sim.add_export()).devices[0]
    uid = {"server_id": device.server_id, "device_id": device.device_id}
    span = {**uid, "start": "2024-01-19T10:00:00Z", "end": "2024-01-19T10:01:00Z"}
    answer = httpx.post(f"{url}/exports", json={"spans": [span], "path": "D:/x"}, timeout=10)
    assert answer.status_code == 201, answer.text
    eid = answer.json()["export_id"]
    with httpx.stream("GET", f"{url}/exports/{eid}/events", timeout=10) as response:
        last = event_from_dict(list(events_of(response))[-1][1])
    assert isinstance(last, ExportCompleted)
    assert last.export.path == "D:/x"
    naive = {**span, "start": "2024-01-19T10:00:00"}
    refused = httpx.post(f"{url}/exports", json={"spans": [naive]}, timeout=10)
    assert refused.status_code == 422
    assert "timezone-aware" in refused.text


def test_the_service_shuts_down_cleanly_with_a_stream_open(
    sim: SenseSimulator, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    module = load("fastapi_service")
    eid = sim.add_export(duration=10_000)  # it will not end on its own
    with ExitStack() as stack:
        sim_url = stack.enter_context(serve(Stepping(sim, clock, step=1)))
        monkeypatch.setenv("VDG_URL", sim_url)
        monkeypatch.setenv("VDG_POLL_INTERVAL", "0.01")
        service = serve(module.app, lifespan="on", timeout_graceful_shutdown=0.2)
        url = service.__enter__()
        try:
            with httpx.stream("GET", f"{url}/exports/{eid}/events", timeout=10) as response:
                stream = events_of(response)
                name, _ = next(stream)
                assert name == "ExportStatusChanged"
                client: vdgexport.Client = module.app.state.vdg
                assert "watching=1" in repr(client)
                service.__exit__(None, None, None)  # the stream is still open
                service = None
                with pytest.raises(httpx.HTTPError):
                    list(stream)  # uvicorn cut the stream off
        finally:
            if service is not None:
                service.__exit__(None, None, None)
    assert "closed" in repr(client)
