"""``vdgexport serve`` as a real process on loopback: its URL first, the demo, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from vdgexport.cli import main
from vdgexport.cli.serve import is_loopback
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve


@contextmanager
def relay_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``vdgexport serve ARGS --port 0``; yield the process and the URL of its first line."""
    env = {k: v for k, v in os.environ.items() if k not in ("VDG_URL", "VDG_PASSWORD")}
    process = subprocess.Popen(
        [sys.executable, "-m", "vdgexport", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # blocks until uvicorn listens
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def sse_types(response: httpx.Response, n: int) -> list[str]:
    """The ``event:`` names of the first ``n`` events of a stream."""
    types: list[str] = []
    for line in response.iter_lines():
        if line.startswith("event: "):
            types.append(line[len("event: ") :])
            if len(types) == n:
                break
    return types


def test_serve_demo_prints_its_url_first_serves_the_dashboard_and_stops_on_ctrl_c() -> None:
    with relay_process("--demo") as (process, url):
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/")
        page = httpx.get(url, timeout=10)
        exports = httpx.get(url + "api/exports", timeout=10).json()["exports"]
        with httpx.stream("GET", url + "api/events", timeout=10) as response:
            types = sse_types(response, 20)
            process.send_signal(signal.SIGINT)  # Ctrl-C with a stream open
            _, stderr = process.communicate(timeout=10)
    assert "EventSource" in page.text
    assert len(exports) == 6
    assert {"ExportStatusChanged", "DeviceProgress"} <= set(types)  # every export's events
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert "warning" not in stderr  # loopback: no warning


def test_serve_relays_a_vdg_server_given_by_url() -> None:
    sim = SenseSimulator(clock=ManualClock())
    export_id = sim.add_export(devices=2, duration=60)
    with serve(sim) as vdg, relay_process("--url", vdg, "--interval", "0.05") as (process, url):
        one = httpx.get(f"{url}api/exports/{export_id}", timeout=10)
        missing = httpx.get(f"{url}api/exports/404", timeout=10)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert one.json()["devices"][1]["progress"] == 0.0
    assert missing.status_code == 404
    assert process.returncode == 0


def test_serve_without_url_or_demo_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    assert "--url" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("vdg.example", False),
    ],
)
def test_only_loopback_hosts_are_spared_the_no_login_warning(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_help_says_the_relay_has_no_login(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    assert "no login" in " ".join(capsys.readouterr().out.split())
