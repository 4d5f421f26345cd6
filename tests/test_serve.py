"""``vdgexport serve`` as a real process on loopback: its URL first, the demo, Ctrl-C."""

from __future__ import annotations

import signal

import httpx
import pytest

from vdgexport.cli import main
from vdgexport.cli.serve import is_loopback
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._relay import relay_process
from ._servers import serve


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
    ("args", "says"),
    [
        (["--redis", "redis://127.0.0.1:1", "--name", "s", "--url", "http://x"], "not both"),
        (["--redis", "redis://127.0.0.1:1", "--name", "s", "--demo"], "not both"),
        (["--redis", "redis://127.0.0.1:1"], "--name"),
        (["--url", "http://127.0.0.1:1", "--name", "s"], "--name goes with --redis"),
        (["--redis", "http://127.0.0.1:1", "--name", "s"], "not a Redis URL"),
        (["--redis", "redis://127.0.0.1:1", "--name", "a{b}"], "fleet name"),
    ],
)
def test_serve_redis_takes_a_name_and_no_url(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2
    assert says in capsys.readouterr().err


def test_serve_url_health_follows_the_vdg_server_and_metrics_count_its_requests() -> None:
    sim = SenseSimulator(clock=ManualClock())
    sim.add_export(duration=60)
    args = ("--interval", "0.05", "--timeout", "2")
    with serve(sim) as vdg, relay_process("--url", vdg, *args) as (process, url):
        healthy = httpx.get(f"{url}healthz", timeout=10)
        metrics = httpx.get(f"{url}metrics", timeout=10)
        sim.inject(Fault.STATUS, status=503, times=1000)  # the VDG server fails from now on
        failed = httpx.get(f"{url}api/exports", timeout=10)
        down = httpx.get(f"{url}healthz", timeout=10)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok"}
    assert metrics.headers["content-type"].startswith("text/plain")
    requests = next(
        line for line in metrics.text.splitlines() if line.startswith("vdgexport_requests_total")
    )
    assert float(requests.split()[1]) >= 1
    assert "vdgexport_request_failures_total 0.0" in metrics.text
    assert "vdgexport_sse_subscribers 0.0" in metrics.text
    assert "vdgexport_events_sent_total 0.0" in metrics.text
    assert failed.status_code == 502
    assert down.status_code == 503
    assert down.json() == {"status": "unhealthy", "reason": "requests to the VDG server fail"}
    assert process.returncode == 0


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
