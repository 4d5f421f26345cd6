"""The command line as a real process: pipes that close early, the simulator server."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from vdgexport.testing import SenseSimulator

from ._servers import serve


def environment() -> dict[str, str]:
    hidden = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "VDG_URL", "COLUMNS")
    return {k: v for k, v in os.environ.items() if k not in hidden}


def vdgexport(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vdgexport", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait for the process; its exit code and what it wrote on stderr."""
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode, err.decode()


@pytest.fixture
def url() -> Iterator[str]:
    t0 = time.monotonic()
    sim = SenseSimulator(clock=lambda: (time.monotonic() - t0) * 20)
    for _ in range(3):
        sim.add_export(devices=3, duration=600)
    with serve(sim) as base:
        yield base


# -- a reader that goes away (``| head``) -----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "backend"),
    [
        (["demo", "--json", "--speed", "50"], "asyncio"),
        (["demo", "--speed", "50"], "trio"),
        (["watch", "1", "2", "3", "--json", "--interval", "0.02"], "trio"),
        (["watch", "1", "2", "3", "--interval", "0.02"], "asyncio"),
    ],
)
def test_a_reader_that_leaves_after_the_first_line_ends_it_quietly(
    argv: list[str], backend: str, url: str
) -> None:
    proc = vdgexport(*argv, "--backend", backend, *(["--url", url] if argv[0] == "watch" else []))
    assert proc.stdout is not None
    assert proc.stdout.readline()  # what `head -1` reads, then it goes away
    proc.stdout.close()
    code, err = finish(proc)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    "argv", [["status"], ["status", "1"], ["status", "--json"], ["watch", "1", "--json"]]
)
def test_a_reader_gone_before_the_first_line_ends_it_quietly(argv: list[str], url: str) -> None:
    proc = vdgexport(*argv, "--url", url)
    assert proc.stdout is not None
    proc.stdout.close()  # every write fails: the pipe has no reader
    code, err = finish(proc)
    assert (code, err) == (0, "")


def test_other_errors_still_show_as_errors() -> None:
    proc = vdgexport("status", "--url", "http://127.0.0.1:9", "--timeout", "0.5")
    code, err = finish(proc)
    assert code == 1
    assert err.startswith("vdgexport: error: TransportError")


# -- vdgexport simulate -----------------------------------------------------------------------


def test_simulate_serves_over_loopback_and_restarts_on_request() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vdgexport", "simulate", "--port", "0", "--exports", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=20)
        assert first.startswith("vdgexport simulator at http://127.0.0.1:")
        url = first.split()[3]
        status = {"command": "getExportVideoStatus"}
        with httpx.Client(base_url=url, timeout=5) as http:
            assert b'<exports count="3">' in http.get("/command", params=status).content
            assert http.post("/_sim/remove", params={"exportid": "2"}).status_code == 200
            assert "2 REMOVED" in http.get("/_sim").text
            assert http.post("/_sim/restart").status_code == 200
            gone = http.get("/command", params={**status, "exportid": "1"})
            assert b'errorcode="-57"' in gone.content
            listing = http.get("/_sim").text.splitlines()
            answered = [line for line in listing if line.startswith("requests answered:")]
            assert answered == ["requests answered: 2 (the last 2 below)"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
