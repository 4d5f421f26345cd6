"""Tests for the ``vdgexport`` command line: every command, in-process or over loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

import vdgexport
from vdgexport.cli import main
from vdgexport.cli.simulate import SimControl
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import Recorder, basic, serve

FAST = ["--interval", "0.02"]
TERMINAL_TYPES = {"ExportCompleted", "ExportRemoved", "ExportVanished"}


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No inherited setting may make rich think captured output is a terminal."""
    for name in (
        "FORCE_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
        "VDG_URL",
        "VDG_PASSWORD",
        "COLUMNS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim() -> SenseSimulator:
    return SenseSimulator(clock=ManualClock())


@pytest.fixture
def url(sim: SenseSimulator) -> Iterator[str]:
    with serve(sim) as base:
        yield base


def fast_sim(speed: float = 100.0) -> SenseSimulator:
    """A simulator whose clock runs ``speed`` times faster than real time."""
    t0 = time.monotonic()
    return SenseSimulator(clock=lambda: (time.monotonic() - t0) * speed)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- demo -----------------------------------------------------------------------------------


def test_demo_plain_output_has_no_escapes_and_ends_with_the_summary(
    capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    assert main(["demo", "--speed", "100", "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = out.splitlines()
    summary = lines[lines.index("Summary:") :]
    assert summary[1].split() == ["export", "path", "devices", "progress", "outcome"]
    outcomes = [line.split(None, 4)[-1] for line in summary[2:]]
    assert outcomes == [
        "completed",
        "completed",
        "completed",
        "removed",
        "completed",
        "vanished (not found)",
    ]
    assert "demo: removing export 4" in lines
    assert "demo: restarting the PluginManager (export ids are reset)" in lines
    # The outage: each export still moving says so once, and once that the server is back.
    lost = [line.split(":")[0] for line in lines if ": server unreachable for " in line]
    back = [line.split(":")[0] for line in lines if ": server reachable again after " in line]
    assert lost
    assert sorted(lost) == sorted(back) == sorted(set(lost))
    assert "export 1" not in lost  # it had completed
    start, end = (
        lines.index("demo: the server stops answering for a while"),
        lines.index("demo: the server answers again"),
    )
    assert all(
        start < i < end for i, line in enumerate(lines) if ": server unreachable for " in line
    )


def test_demo_json_is_events_with_every_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--speed", "100", "--json"]) == 0
    events = json_lines(capsys.readouterr().out)
    lost = [e for e in events if e["type"] == "ConnectionLost"]
    restored = [e for e in events if e["type"] == "ConnectionRestored"]
    assert lost
    assert sorted(e["export_id"] for e in lost) == sorted(e["export_id"] for e in restored)
    assert set(lost[0]) == {"type", "export_id", "observed_at", "error", "failing_for"}
    assert lost[0]["error"].startswith("TransportError: ConnectError")
    failing_for = {e["export_id"]: e["failing_for"] for e in lost}
    assert all(e["down_for"] >= failing_for[e["export_id"]] > 0 for e in restored)
    terminal = {e["export_id"]: e["type"] for e in events if e["type"] in TERMINAL_TYPES}
    assert terminal == {
        "1": "ExportCompleted",
        "2": "ExportCompleted",
        "3": "ExportCompleted",
        "4": "ExportRemoved",
        "5": "ExportCompleted",
        "6": "ExportVanished",
    }


def test_demo_on_a_terminal_draws_live_bars(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert main(["demo", "--speed", "400"]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" in out  # colours and cursor movement
    assert "━" in out
    assert "vanished (not found)" in out.rsplit("Summary", 1)[1]


# -- status ---------------------------------------------------------------------------------


def test_status_json_lists_every_export(
    sim: SenseSimulator, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_export(devices=2, duration=60, path="D:\\a")
    sim.add_export(duration=10)
    sim.remove_export("2")
    assert main(["status", "--url", url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # one JSON document
    assert doc["count"] == 2
    first, second = doc["exports"]
    assert (first["export_id"], first["path"], first["status"]) == ("1", "D:\\a", "SYNCING")
    assert len(first["devices"]) == 2
    assert first["devices"][0]["start_time"] == "2024-01-19T10:00:00+00:00"
    assert second["status"] == "REMOVED"


def test_status_of_one_export_as_json_and_as_text(
    sim: SenseSimulator, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    export_id = sim.add_export(duration=[10, 20], path="D:\\one")
    assert main(["status", export_id, "--url", url, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["export_id"] == export_id
    assert [d["status"] for d in doc["devices"]] == ["SYNCING", "SYNCING"]
    assert main(["status", export_id, "--url", url]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "D:\\one" in out
    assert out.count("syncing") == 3  # the export and its two devices


def test_status_table_as_plain_text(
    sim: SenseSimulator, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_export(path="D:\\first")
    assert main(["status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert out.splitlines()[0] == "1 export:"
    assert out.splitlines()[2].split() == [
        "1",
        "syncing",
        "0.0%",
        "1",
        "8.0",
        "Mbit/s",
        "D:\\first",
    ]


def test_status_of_an_unknown_export_is_an_error(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "99", "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err == (
        f"vdgexport: error: no export has id 99 on {url} "
        "(export ids are reset when the PluginManager restarts)\n"
    )


def test_vdg_url_stands_in_for_url(
    sim: SenseSimulator,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_export()
    monkeypatch.setenv("VDG_URL", url)
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 1


# -- watch ----------------------------------------------------------------------------------


def test_watch_json_until_completed(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    sim = fast_sim(100)
    sim.add_export(devices=2, duration=40)
    with serve(sim) as url:
        code = main(["watch", "1", "--url", url, "--json", "--backend", backend, *FAST])
    assert code == 0
    events = json_lines(capsys.readouterr().out)
    assert events[0]["type"] == "ExportStatusChanged"
    assert events[0]["previous_status"] is None
    assert events[-1]["type"] == "ExportCompleted"
    assert all(e["type"] not in TERMINAL_TYPES for e in events[:-1])
    progress = [e for e in events if e["type"] == "DeviceProgress"]
    assert len(progress) > 4
    assert {e["status"] for e in progress} <= {"SYNCING", "COMPLETED"}
    for event in events:
        assert datetime.fromisoformat(event["observed_at"]).tzinfo is not None
    late = progress[-1]
    assert set(late) == {
        "type",
        "export_id",
        "observed_at",
        "server_id",
        "device_id",
        "progress",
        "previous_progress",
        "status",
        "bandwidth_kbps",
        "rate",
        "eta",
    }
    assert [vdgexport.event_to_dict(vdgexport.event_from_dict(e)) for e in events] == events
    final = events[-1]["export"]
    assert final["status"] == "COMPLETED"
    assert final["progress"] == 100.0
    assert [d["progress"] for d in final["devices"]] == [100.0, 100.0]


def test_watch_removed_exits_3(
    sim: SenseSimulator, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_export(duration=0)  # completed at once
    sim.add_export()
    sim.remove_export("2")
    assert main(["watch", "1", "2", "--url", url, "--json", *FAST]) == 3
    events = json_lines(capsys.readouterr().out)
    ends = {e["export_id"]: e["type"] for e in events if e["type"] in TERMINAL_TYPES}
    assert ends == {"1": "ExportCompleted", "2": "ExportRemoved"}
    assert events[-1]["type"] in TERMINAL_TYPES


def test_watch_unknown_id_vanishes_and_exits_4(
    sim: SenseSimulator, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_export()
    sim.remove_export("1")
    assert main(["watch", "1", "77", "--url", url, "--json", *FAST]) == 4
    events = json_lines(capsys.readouterr().out)
    vanished = [e for e in events if e["type"] == "ExportVanished"]
    assert vanished == [
        {
            "type": "ExportVanished",
            "export_id": "77",
            "reason": "not_found",
            "last_seen": None,
            "observed_at": vanished[0]["observed_at"],
        }
    ]


def test_watch_through_a_restart_vanishes(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    sim = fast_sim(1)
    sim.add_export(devices=3, duration=600)
    recorder = Recorder(sim, restart_after=4)  # preflight, then 2 polls, then restart
    with serve(recorder) as url:
        code = main(["watch", "1", "--url", url, "--backend", backend, *FAST])
    assert code == 4
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].startswith("export 1: syncing (D:\\Exports\\export_1, 3 devices, ")
    assert (
        "export 1: vanished (not found): the server no longer knows id 1 "
        "(export ids are reset when the PluginManager restarts)"
    ) in lines
    summary = lines[lines.index("Summary:") :]
    assert summary[-1].split()[-3:] == ["vanished", "(not", "found)"]


def test_watch_of_an_id_no_export_has_says_so_in_plain_words(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "99", "--url", url, *FAST]) == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "export 99: vanished (not found): no export has id 99 "
        "(export ids are reset when the PluginManager restarts)"
    )
    assert lines[-1].split() == ["99", "-", "0", "0.0%", "vanished", "(not", "found)"]


def test_plain_watch_says_each_ending_once_in_lower_case(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = fast_sim(200)
    sim.add_export(devices=2, duration=20)
    with serve(sim) as url:
        assert main(["watch", "1", "--url", url, "--backend", backend, *FAST]) == 0
    out = capsys.readouterr().out
    assert "COMPLETED" not in out
    assert "SYNCING" not in out
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("export 1:")][-1] == "export 1: completed"
    assert sum(line.startswith("export 1: completed") for line in lines) == 1
    assert lines[-1].split()[-1] == "completed"  # the summary


def test_verbose_shows_requests_and_retries_on_stderr_never_the_password(
    sim: SenseSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cret-Pa55"
    monkeypatch.setenv("VDG_PASSWORD", secret)
    sim.add_export(duration=0)
    sim.inject(Fault.STATUS, status=503)
    with serve(sim) as url:
        argv = ["status", "1", "--url", url, "--user", "op", "--login", "basic", *FAST]
        assert main([*argv, "-v"]) == 0
        err = capsys.readouterr().err
        request = f"GET {url}/command?command=getExportVideoStatus&exportid=1"
        assert f"{request} -> 503" in err
        assert f"{request} -> 200" in err
        assert "retrying" in err
        assert secret not in err
        assert main(argv) == 0  # and without -v, nothing
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["status", "watch"])
def test_help_lists_the_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    assert "--ca-cert PATH" in out
    assert "--insecure" in out
    if command == "watch":
        assert "4  one vanished (4 wins over 3 when both happen)" in out
        assert "3  one was removed" in out


def test_a_private_ca_is_trusted_with_ca_cert_and_refused_without(
    sim: SenseSimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = trustme.CA(organization_name="VMS private CA")
    ca_file, cert = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(cert))
    sim.add_export(duration=0)
    with serve(sim, ssl_certfile=str(cert)) as url:
        assert url.startswith("https://")
        assert main(["status", "--url", url, "--json"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("vdgexport: error: TransportError")
        assert "certificate" in err.lower()
        assert main(["status", "--url", url, "--json", "--ca-cert", str(ca_file)]) == 0
        assert json.loads(capsys.readouterr().out)["count"] == 1
        assert main(["watch", "1", "--url", url, "--insecure", *FAST]) == 0
        assert capsys.readouterr().out.splitlines()[-1].split()[-1] == "completed"
    missing = str(tmp_path / "missing.pem")
    assert main(["status", "--url", url, "--ca-cert", missing]) == 2
    assert "cannot load the CA bundle" in capsys.readouterr().err


def test_watch_refused_connection_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["watch", "1", "--url", url, *FAST]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("vdgexport: error: TransportError")
    assert main(["status", "--url", url, "--json", *FAST]) == 1
    assert capsys.readouterr().err.startswith("vdgexport: error: TransportError")


def test_user_password_comes_from_the_environment(
    sim: SenseSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_export(duration=0)
    secret = "s3cret-Pa55"
    monkeypatch.setenv("VDG_PASSWORD", secret)
    monkeypatch.setattr("getpass.getpass", pytest.fail)  # never asked
    recorder = Recorder(sim)
    with serve(recorder) as url:
        assert main(["watch", "1", "--url", url, "--user", "op", "--login", "basic", *FAST]) == 0
        assert main(["status", "--url", url, "--user", "op", "--login", "basic", "--json"]) == 0
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    assert recorder.authorizations
    assert set(recorder.authorizations) == {basic("op", secret)}


def test_user_password_is_asked_for_when_not_in_the_environment(
    sim: SenseSimulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts: list[str] = []

    def getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("getpass.getpass", getpass)
    recorder = Recorder(sim)
    with serve(recorder) as url:
        assert main(["status", "--url", url, "--user", "op", "--login", "basic", "--json"]) == 0
    assert prompts == ["Password for op: "]
    assert recorder.authorizations == [basic("op", "typed")]
    assert "typed" not in capsys.readouterr().out


def test_user_logs_in_with_a_session_by_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = SenseSimulator(clock=ManualClock(), credentials=("op", "s3cret-Pa55"))
    sim.add_export(duration=0)
    monkeypatch.setenv("VDG_PASSWORD", "s3cret-Pa55")
    with serve(sim) as url:
        assert main(["status", "--url", url, "--user", "op", "--json"]) == 0
        assert main(["watch", "1", "--url", url, "--user", "op", *FAST]) == 0
        monkeypatch.setenv("VDG_PASSWORD", "wrong")
        assert main(["status", "--url", url, "--user", "op"]) == 1
    captured = capsys.readouterr()
    assert "AuthenticationError" in captured.err
    assert "s3cret-Pa55" not in captured.out + captured.err
    assert sim.login_count >= 2


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["watch"],
        ["watch", "1"],  # no --url and no VDG_URL
        ["status", "--url", "http://x", "--password", "p"],
        ["demo", "--speed", "0"],
        ["watch", "1", "--url", "http://x", "--interval", "nan"],
        ["simulate", "--port", "-1"],
        ["--json", "status", "--url", "http://x"],  # options come after the subcommand
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error" in captured.err


def test_help_names_the_control_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "VDG_PASSWORD" in capsys.readouterr().out
    assert main(["simulate", "--help"]) == 0
    assert "POST /_sim/restart" in capsys.readouterr().out


def test_without_the_cli_extra_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    assert main(["demo"]) == 1
    assert "pip install 'vdgexport[cli]'" in capsys.readouterr().err


def test_vdgexport_imports_without_the_cli_extra() -> None:
    # (httpx itself imports rich when it is installed, so block it rather than look for it.)
    code = (
        "import sys; sys.modules['rich'] = sys.modules['uvicorn'] = None; "
        "import vdgexport, vdgexport.cli; sys.exit(vdgexport.cli.main(['demo']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert done.stderr == (
        "vdgexport: the command line needs its extra packages: pip install 'vdgexport[cli]'\n"
    )


# -- simulate -------------------------------------------------------------------------------


async def test_control_endpoint() -> None:
    sim = SenseSimulator(clock=ManualClock())
    sim.add_export()
    transport = httpx.ASGITransport(app=SimControl(sim))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        assert (await http.post("/_sim/add", params={"devices": 2})).text == "2\n"
        assert (await http.post("/_sim/remove", params={"exportid": "1"})).status_code == 200
        assert (await http.post("/_sim/remove", params={"exportid": "9"})).status_code == 404
        assert (await http.get("/_sim/restart")).status_code == 405
        assert (await http.post("/_sim/nope")).status_code == 404
        assert (await http.post("/_sim/add", params={"devices": "x"})).status_code == 400
        assert (await http.get("/_sim")).text.startswith("1 REMOVED\n2 SYNCING\n")
        assert (await http.post("/_sim/restart")).status_code == 200
        assert sim.export_ids() == []
        response = await http.get("/command", params={"command": "getExportVideoStatus"})
        assert b'<exports count="0">' in response.content
        sim.inject(Fault.STATUS, status=503)
        await http.get("/command", params={"command": "getExportVideoStatus", "exportid": "1"})
        listing = (await http.get("/_sim")).text.splitlines()
    # The control requests are not the simulator's: only the two to /command count.
    assert listing[:4] == [
        "",
        "requests answered: 2 (the last 2 below)",
        "        0.00s GET /command command=getExportVideoStatus",
        "        0.00s GET /command command=getExportVideoStatus exportid=1 [fault: status]",
    ]


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["status", "99"], 1), (["status", "99", "--json"], 1), (["watch", "99", *FAST], 4)],
)
def test_a_password_in_the_url_is_sent_as_auth_and_never_printed(
    argv: list[str],
    code: int,
    sim: SenseSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorder = Recorder(sim)
    with serve(recorder) as url:
        secret_url = url.replace("http://", "http://operator:UrlPw456@") + "/?key=Qk3y"
        assert main([*argv, "--url", secret_url]) == code
        monkeypatch.setenv("VDG_URL", secret_url)
        assert main(argv) == code
    captured = capsys.readouterr()
    assert "UrlPw456" not in captured.out + captured.err
    assert "Qk3y" not in captured.out + captured.err
    assert set(recorder.authorizations) == {basic("operator", "UrlPw456")}
    if argv[0] == "status":
        assert captured.err.count(f"no export has id 99 on {url} (") == 2
