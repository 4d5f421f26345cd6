"""Managing exports: create, remove, log in, check the server (against the simulator)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import httpx
import pytest

import vdgexport
from vdgexport import DeviceSpan, ExportRemoved, ServerInfo, SessionAuth
from vdgexport.testing import ManualClock, SenseSimulator

from .conftest import Tap, make_client
from .test_client import EndlessBody

CEST = timezone(timedelta(hours=2))
START = datetime(2024, 7, 1, 12, 0, 0, 123456, tzinfo=CEST)  # 10:00:00.123 UTC
SERVER, CAMERA = "{5E5E-0001}", "{CA4E-0002}"
PASSWORD = "s3cret pw&<x>"
CREDENTIALS = ("operator", PASSWORD)


def span(minutes: float = 5, device: str = CAMERA, start: datetime = START) -> DeviceSpan:
    return DeviceSpan(SERVER, device, start, start + timedelta(minutes=minutes))


class Recorder:
    """ASGI middleware that records each request's path and headers, and the answer's body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        chunks: list[bytes] = []

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        self.seen.append((scope["path"], headers, b"".join(chunks)))

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.seen]


# -- create_export --------------------------------------------------------------------------


async def test_create_export_sends_the_exact_body_in_utc(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    later = START + timedelta(hours=1)
    export_id = await client.create_export(
        [span(), span(2.5, "{CA4E-0003}", later)],
        path="D:\\Exports\\a&b <c>",
        bandwidth_kbps=4000.5,
    )
    request = sim.requests[-1]
    assert (request.method, request.path, request.query) == (
        "POST",
        "/command",
        {"command": "exportVideo"},
    )
    assert request.body == (
        b"<export><devices>"
        b"<device><serverid>{5E5E-0001}</serverid><deviceid>{CA4E-0002}</deviceid>"
        b"<starttime>2024-07-01 10:00:00.123</starttime>"
        b"<endtime>2024-07-01 10:05:00.123</endtime></device>"
        b"<device><serverid>{5E5E-0001}</serverid><deviceid>{CA4E-0003}</deviceid>"
        b"<starttime>2024-07-01 11:00:00.123</starttime>"
        b"<endtime>2024-07-01 11:02:30.123</endtime></device>"
        b"</devices><path>D:\\Exports\\a&amp;b &lt;c&gt;</path><bandwidth>4000.5</bandwidth>"
        b"</export>"
    )
    export = await client.get_export(export_id)
    assert export.path == "D:\\Exports\\a&b <c>"
    assert export.bandwidth_kbps == 4000.5
    assert [(d.server_id, d.device_id) for d in export.devices] == [
        (SERVER, CAMERA),
        (SERVER, "{CA4E-0003}"),
    ]
    utc_start = datetime(2024, 7, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)
    assert export.devices[0].start_time == utc_start
    assert export.devices[1].end_time == utc_start + timedelta(hours=1, minutes=2.5)


async def test_create_export_leaves_path_and_bandwidth_to_the_server(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    assert await client.create_export([span()]) == "1"
    assert await client.create_export(iter([span()])) == "2"
    body = sim.requests[-1].body
    assert body.endswith(b"</device></devices></export>")
    assert b"<path>" not in body
    assert b"<bandwidth>" not in body


async def test_created_export_runs_and_completes(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.export_pending = 2
    export_id = await client.create_export([span(minutes=1), span(minutes=2, device="{B}")])
    assert sim.status_of(export_id) == "PENDING"
    clock.advance(2 + 120 / sim.export_rate)
    final = await client.wait_for_completion(export_id, timeout=5)
    assert final.progress == 100.0


def test_naive_or_backwards_spans_are_refused() -> None:
    naive = datetime(2024, 7, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        DeviceSpan(SERVER, CAMERA, naive, START)
    with pytest.raises(ValueError, match="timezone-aware"):
        DeviceSpan(SERVER, CAMERA, START, naive + timedelta(days=1))
    with pytest.raises(ValueError, match="after start"):
        DeviceSpan(SERVER, CAMERA, START, START)
    with pytest.raises(TypeError, match="datetime"):
        DeviceSpan(SERVER, CAMERA, "2024-07-01", START)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spans", "options", "error"),
    [
        ([], {}, ValueError),
        ([span()], {"bandwidth_kbps": -1}, ValueError),
        ([span()], {"bandwidth_kbps": float("nan")}, ValueError),
        ([span()], {"path": "bad\x00path"}, ValueError),
        (["not a span"], {}, TypeError),
    ],
)
async def test_bad_requests_are_refused_before_sending(
    client: vdgexport.Client,
    sim: SenseSimulator,
    spans: list[Any],
    options: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await client.create_export(spans, **options)
    assert sim.requests == []


@pytest.mark.parametrize(
    "answer",
    [
        b'<result errorcode="0"><exportid>17</exportid></result>',
        b'<?xml version="1.0"?>\n<result errorcode="0" exportid="17"/>',
        b'<RESULT ErrorCode="1"><Export><ExportID> 17 </ExportID></Export></RESULT>',
        b'<result errorcode="0"><export exportId="17"><path>x</path></export></result>',
        b'<result errorcode="0"><exportid/><new><exportid>17</exportid></new></result>',
        b"<exportvideo><status>ok</status><exportid>17</exportid></exportvideo>",
        b'<result xmlns="urn:vdg" errorcode="0"><exportid>17</exportid></result>',
    ],
)
async def test_the_new_id_is_found_in_any_shape(
    sim: SenseSimulator, clock: ManualClock, answer: bytes
) -> None:
    tap = Tap(sim)
    tap.serve(answer)
    async with make_client(tap, clock) as client:
        assert await client.create_export([span()]) == "17"


async def test_an_answer_without_id_is_a_protocol_error_that_shows_it(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    async with make_client(tap, clock) as client:
        tap.serve(b'<result errorcode="0"><status>queued</status></result>')
        with pytest.raises(vdgexport.ProtocolError, match=r"no export id.*queued"):
            await client.create_export([span()])
        long = b'<result errorcode="0"><note>' + b"x" * 10_000 + b"</note></result>"
        tap.serve(long)
        with pytest.raises(vdgexport.ProtocolError) as caught:
            await client.create_export([span()])
        assert f"({len(long)} bytes)" in str(caught.value)
        assert len(str(caught.value)) < 500
        tap.serve(b'<!DOCTYPE r [<!ENTITY a "b">]><result errorcode="0">&a;</result>')
        with pytest.raises(vdgexport.ProtocolError) as caught:
            await client.create_export([span()])
        assert caught.value.unsafe
        tap.serve(b'<result errorcode="-2"><description>No device</description></result>')
        with pytest.raises(vdgexport.ApiError, match="No device") as error:
            await client.create_export([span()])
        assert error.value.code == -2


async def test_create_is_never_retried(sim: SenseSimulator, clock: ManualClock) -> None:
    tap = Tap(sim)
    async with make_client(tap, clock) as client:
        tap.serve(b"busy", status=503)
        with pytest.raises(vdgexport.HTTPStatusError):
            await client.create_export([span()])
    assert tap.count == 1
    assert sim.export_ids() == []


async def test_the_simulator_checks_what_it_is_asked(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim)) as http:
        url = "http://sim/command?command=exportVideo"

        async def code(body: bytes) -> str:
            answer = await http.post(url, content=body)
            return answer.text.split('errorcode="')[1].split('"')[0]

        device = "<device><serverid>s</serverid><deviceid>d</deviceid>{}</device>"
        times = "<starttime>{}</starttime><endtime>2024-01-01 00:05:00</endtime>"
        assert await code(b"not xml") == "-10"
        assert await code(b"<export><devices/></export>") == "-10"
        body = (
            "<export><devices>" + device.format(times.format("yesterday")) + "</devices></export>"
        )
        assert await code(body.encode()) == "-4"
        body = "<export><devices>" + device.format("") + "</devices></export>"
        assert await code(body.encode()) == "-10"
        assert await code(b"<export><exportid>9</exportid><remove>true</remove></export>") == "-57"


# -- remove_export --------------------------------------------------------------------------


async def test_remove_export_ends_a_watch_with_removed(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    export_id = await client.create_export([span()])
    async with client.watch(export_id) as events:
        with anyio.fail_after(5):
            await events.__anext__()
            await client.remove_export(int(export_id))
            rest = [event async for event in events]
    assert isinstance(rest[-1], ExportRemoved)
    removal = b"<export><exportid>1</exportid><remove>true</remove></export>"
    assert [r.query for r in sim.requests if r.body == removal] == [{"command": "exportVideo"}]
    with pytest.raises(vdgexport.ExportNotFoundError):
        await client.remove_export(export_id)  # a second call: gone, as far as removal goes
    assert sim.status_of(export_id) == "REMOVED"


async def test_the_simulator_removes_pending_exports_only_unless_told_otherwise(
    client: vdgexport.Client, sim: SenseSimulator, clock: ManualClock
) -> None:
    done = sim.add_export(duration=10)
    clock.advance(11)
    with pytest.raises(vdgexport.ApiError, match="COMPLETED: only pending") as caught:
        await client.remove_export(done)
    assert caught.value.code == -18
    assert sim.status_of(done) == "COMPLETED"
    sim.remove_any_state = True  # a guess at a more lenient server
    await client.remove_export(done)
    assert sim.status_of(done) == "REMOVED"


async def test_removing_an_unknown_export_is_not_found(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    with pytest.raises(vdgexport.ExportNotFoundError):
        await client.remove_export("a&b <c>")
    assert sim.requests[-1].body == (
        b"<export><exportid>a&amp;b &lt;c&gt;</exportid><remove>true</remove></export>"
    )


# -- SessionAuth ----------------------------------------------------------------------------


def login_client(app: Any, clock: ManualClock, base: str = "http://sim.test") -> vdgexport.Client:
    return vdgexport.Client(
        base,
        auth=SessionAuth(*CREDENTIALS),
        transport=httpx.ASGITransport(app=app),
        poll_interval=0.001,
        max_poll_interval=0.004,
        clock=clock,
    )


async def test_login_then_relogin_after_the_session_expires(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.credentials = CREDENTIALS
    recorder = Recorder(sim)
    export_id = sim.add_export()
    async with login_client(recorder, clock, "http://sim.test/vdg") as client:
        await client.list_exports()
        await client.get_export(export_id)
        assert sim.login_count == 1
        sim.expire_sessions()
        await client.get_export(export_id)
        assert sim.login_count == 2
    assert recorder.paths() == [
        "/vdg/webservice",
        "/vdg/command",
        "/vdg/command",
        "/vdg/command",  # refused: HTTP 401
        "/vdg/webservice",
        "/vdg/command",
    ]
    login = next(r for r in sim.requests if r.path.endswith("webservice"))
    assert login.body == (
        b"<AuthenticateUser><username>operator</username>"
        b"<password>s3cret pw&amp;&lt;x&gt;</password></AuthenticateUser>"
    )
    key = recorder.seen[-2][2].split(b"<sessionkey>")[1].split(b"<")[0].decode()
    assert recorder.seen[-1][1]["cookie"] == f"sessionkey={key}"


async def test_a_watch_rides_through_a_session_expiry(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.credentials = CREDENTIALS
    export_id = sim.add_export(duration=10)
    async with login_client(sim, clock) as client, client.watch(export_id) as events:
        with anyio.fail_after(5):
            await events.__anext__()
            await events.__anext__()
            sim.expire_sessions()
            clock.advance(10)
            rest = [event async for event in events]
    assert isinstance(rest[-1], vdgexport.ExportCompleted)
    assert sim.login_count == 2


async def test_concurrent_requests_share_one_login(sim: SenseSimulator, clock: ManualClock) -> None:
    sim.credentials = CREDENTIALS
    async with login_client(sim, clock) as client:
        for expected in (1, 2):
            async with anyio.create_task_group() as tasks:
                for _ in range(5):
                    tasks.start_soon(client.list_exports)
            assert sim.login_count == expected
            sim.expire_sessions()


async def test_wrong_password_is_an_authentication_error(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.credentials = ("operator", "other")
    async with login_client(sim, clock) as client:
        with pytest.raises(vdgexport.AuthenticationError, match="refused") as caught:
            await client.list_exports()
    assert caught.value.status_code == 401
    assert [r.path for r in sim.requests] == ["/webservice"]  # not retried


async def test_commands_without_a_session_are_refused(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    sim.credentials = CREDENTIALS
    async with make_client(sim, clock) as client:
        with pytest.raises(vdgexport.AuthenticationError):
            await client.list_exports()


def fake_server(login: httpx.Response, *, refuse_commands: bool = False) -> httpx.MockTransport:
    logins: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/webservice"):
            logins.append(request)
            return login
        if refuse_commands or "sessionkey=K-1" not in request.headers.get("cookie", ""):
            return httpx.Response(401)
        return httpx.Response(200, content=b'<result errorcode="0"><exports count="0"/></result>')

    transport = httpx.MockTransport(handler)
    transport.logins = logins  # type: ignore[attr-defined]
    return transport


@pytest.mark.parametrize(
    "login",
    [
        httpx.Response(200, content=b'<result errorcode="0"><sessionkey>K-1</sessionkey></result>'),
        httpx.Response(
            200, content=b"<Result><Session><SessionKey> K-1 </SessionKey></Session></Result>"
        ),
        httpx.Response(
            200,
            content=b"<authenticateuserresponse><sessionkey>K-1</sessionkey>"
            b"</authenticateuserresponse>",
        ),
        httpx.Response(200, headers={"set-cookie": "sessionkey=K-1; Path=/"}),
        httpx.Response(
            200,
            content=b'<result errorcode="0"/>',
            headers={"set-cookie": "SessionKey=K-1; HttpOnly"},
        ),
    ],
)
async def test_the_session_key_is_found_in_any_shape(login: httpx.Response) -> None:
    transport = fake_server(login)
    async with vdgexport.Client(
        "http://fake", auth=SessionAuth(*CREDENTIALS), transport=transport
    ) as client:
        assert len(await client.list_exports()) == 0
        assert len(await client.list_exports()) == 0
    assert len(transport.logins) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("login", "match"),
    [
        (httpx.Response(403), "refused"),
        (
            httpx.Response(
                200, content=b'<result errorcode="-18"><description>bad user</description></result>'
            ),
            "refused.*bad user",
        ),
        (
            httpx.Response(200, content=b'<result errorcode="0"><welcome/></result>'),
            "no session key",
        ),
    ],
)
async def test_a_failed_login_is_an_authentication_error(login: httpx.Response, match: str) -> None:
    transport = fake_server(login)
    async with vdgexport.Client(
        "http://fake", auth=SessionAuth(*CREDENTIALS), transport=transport
    ) as client:
        with pytest.raises(vdgexport.AuthenticationError, match=match) as caught:
            await client.list_exports()
    assert PASSWORD not in str(caught.value)
    assert len(transport.logins) == 1  # type: ignore[attr-defined]


async def test_a_refusal_right_after_a_login_goes_back_as_an_authentication_error() -> None:
    ok = httpx.Response(200, content=b"<result><sessionkey>K-1</sessionkey></result>")
    transport = fake_server(ok, refuse_commands=True)
    async with vdgexport.Client(
        "http://fake", auth=SessionAuth(*CREDENTIALS), transport=transport
    ) as client:
        with pytest.raises(vdgexport.AuthenticationError, match="401"):
            await client.list_exports()
    assert len(transport.logins) == 1  # type: ignore[attr-defined]  # no second login


async def test_a_busy_login_is_retried_like_any_transient_failure() -> None:
    answers = [
        httpx.Response(503),
        httpx.Response(200, content=b"<r><sessionkey>K-1</sessionkey></r>"),
    ]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/webservice":
            return answers.pop(0)
        return httpx.Response(200, content=b'<result errorcode="0"><exports count="0"/></result>')

    async with vdgexport.Client(
        "http://fake",
        auth=SessionAuth(*CREDENTIALS),
        transport=httpx.MockTransport(handler),
        poll_interval=0.001,
    ) as client:
        await client.list_exports()
    assert calls == ["/webservice", "/webservice", "/command"]


async def test_secrets_never_reach_logs_reprs_or_errors(
    sim: SenseSimulator, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.credentials = CREDENTIALS
    recorder = Recorder(sim)
    auth = SessionAuth(*CREDENTIALS)
    async with make_client(recorder, clock, auth=auth) as client:
        await client.list_exports()
        sim.expire_sessions()
        await client.list_exports()
        texts = [repr(auth), repr(client), str(auth.username)]
        sim.credentials = ("operator", "changed")
        sim.expire_sessions()
        with pytest.raises(vdgexport.AuthenticationError) as caught:
            await client.list_exports()
        texts += [str(caught.value), repr(caught.value)]
    keys = [
        body.split(b"<sessionkey>")[1].split(b"<")[0].decode()
        for _, _, body in recorder.seen
        if b"<sessionkey>" in body
    ]
    assert len(keys) == 2
    assert "logged in" in caplog.text
    assert repr(auth) == "SessionAuth(username='operator')"
    for secret in [PASSWORD, "s3cret", *keys]:
        assert secret not in caplog.text
        for text in texts:
            assert secret not in text


def test_session_auth_needs_an_async_client() -> None:
    with httpx.Client(auth=SessionAuth(*CREDENTIALS)) as http, pytest.raises(TypeError):
        http.get("http://fake/command")


# -- server_info ----------------------------------------------------------------------------


async def test_server_info(sim: SenseSimulator, clock: ManualClock) -> None:
    clock.advance(90.5)
    sim.credentials = CREDENTIALS  # /info needs no login
    recorder = Recorder(sim)
    async with make_client(recorder, clock, auth=SessionAuth(*CREDENTIALS)) as client:
        info = await client.server_info()
    assert info == ServerInfo("2.8.0", datetime(2026, 1, 1, 0, 1, 30, 500000, timezone.utc))
    assert recorder.paths() == ["/info"]
    assert "cookie" not in recorder.seen[0][1]


async def test_server_info_sends_no_basic_credentials(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    recorder = Recorder(sim)
    async with make_client(recorder, clock, auth=("user", "pw")) as client:
        await client.server_info()
    assert "authorization" not in recorder.seen[0][1]


@pytest.mark.parametrize("version", ["2.7.3", "2.7.3.1", "2.10.0", "3.0", "V2.8.1 (build 77)"])
async def test_new_enough_versions_pass(
    client: vdgexport.Client, sim: SenseSimulator, version: str
) -> None:
    sim.version = version
    assert (await client.server_info()).version == version


@pytest.mark.parametrize("version", ["2.7.2", "2.7", "2.6.1", "1.99.99", "unknown"])
async def test_old_versions_are_refused_by_name(
    client: vdgexport.Client, sim: SenseSimulator, version: str
) -> None:
    sim.version = version
    with pytest.raises(vdgexport.VdgError, match=rf"{version}.*2\.7\.3"):
        await client.server_info()


async def test_no_info_means_a_server_before_2_6_1(
    client: vdgexport.Client, sim: SenseSimulator
) -> None:
    sim.version = None
    with pytest.raises(vdgexport.VdgError, match=r"404.*2\.6\.1.*2\.7\.3") as caught:
        await client.server_info()
    assert type(caught.value) is vdgexport.VdgError
    assert isinstance(caught.value.__cause__, vdgexport.HTTPStatusError)


async def test_an_info_without_version_is_a_protocol_error(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    tap = Tap(sim)
    tap.serve(b"<apiinfo><utc>never</utc></apiinfo>")
    async with make_client(tap, clock) as client:
        with pytest.raises(vdgexport.ProtocolError, match="no <version>"):
            await client.server_info()
    tap.serve(b"<apiinfo><UTC>nonsense</UTC><Version>2.8.0</Version></apiinfo>")
    async with make_client(tap, clock) as client:
        assert await client.server_info() == ServerInfo("2.8.0", None)


async def test_a_login_answer_that_is_not_xml_is_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "S3CRET-SESSION-KEY"
    transport = fake_server(httpx.Response(200, json={"sessionkey": key}))
    async with vdgexport.Client(
        "http://fake", auth=SessionAuth(*CREDENTIALS), transport=transport, poll_interval=0.001
    ) as client:
        with pytest.raises(vdgexport.ProtocolError) as caught:
            await client.list_exports()
    assert key not in str(caught.value)
    assert key not in caplog.text


async def test_a_huge_login_answer_is_refused_at_the_cap_without_reading_it() -> None:
    bodies: list[EndlessBody] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(EndlessBody())  # a fresh endless answer per login
        return httpx.Response(200, stream=bodies[-1])

    transport = httpx.MockTransport(handler)
    async with vdgexport.Client(
        "http://fake", auth=SessionAuth(*CREDENTIALS), transport=transport, poll_interval=0.001
    ) as client:
        with pytest.raises(vdgexport.ProtocolError, match="exceeds the cap"):
            await client.list_exports()
    assert all(b.closed and b.chunks_read <= 2 for b in bodies)  # 64 KiB: two chunks at most
