"""One-shot calls: requests on the wire, retries, typed errors, limits, secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

import anyio
import httpx
import pytest

import vdgexport
from vdgexport._retry import MAX_RETRY_AFTER, RetryableStatus, backoff, is_transient
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import serve
from .conftest import make_client

SPAN = vdgexport.DeviceSpan(
    "s", "d", datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
)

OK_EMPTY = b'<result errorcode="0"><exports count="0"/></result>'


def recording(
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
) -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request) if handler else httpx.Response(200, content=OK_EMPTY)

    return seen, httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("export_id", "encoded"),
    [
        (42, "42"),
        ("a&b", "a%26b"),
        ("with space", "with%20space"),
        ("<x>", "%3Cx%3E"),
        ("é#%", "%C3%A9%23%25"),
    ],
)
async def test_id_is_fully_url_encoded(export_id: object, encoded: str) -> None:
    seen, transport = recording()
    async with vdgexport.Client("http://vdg.test", transport=transport) as client:
        with pytest.raises(vdgexport.ExportNotFoundError):
            await client.get_export(export_id)  # type: ignore[arg-type]
    assert seen[0].url.raw_path == (
        f"/command?command=getExportVideoStatus&exportid={encoded}".encode()
    )
    assert seen[0].headers["cache-control"] == "no-cache"


async def test_base_url_path_prefix_and_basic_auth() -> None:
    seen, transport = recording()
    async with vdgexport.Client(
        "http://vdg.test/proxy/sense/", transport=transport, auth=("user", "pw")
    ) as client:
        assert len(await client.list_exports()) == 0
    assert seen[0].url.path == "/proxy/sense/command"
    assert seen[0].headers["authorization"] == httpx.BasicAuth("user", "pw")._auth_header


async def test_ids_with_special_characters_round_trip(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    ids = ["a&b c", "é<>", "50%#1"]
    for export_id in ids:
        sim.add_export(export_id=export_id)
    async with make_client(sim, clock) as client:
        for export_id in ids:
            assert (await client.get_export(export_id)).export_id == export_id
        assert [e.export_id for e in await client.list_exports()] == ids


async def test_transient_failures_are_retried(sim: SenseSimulator, clock: ManualClock) -> None:
    sim.add_export()
    sim.inject(Fault.STATUS, status=503, times=1)
    sim.inject(Fault.RESET, times=1)
    async with make_client(sim, clock) as client:
        assert len(await client.list_exports()) == 1
    assert sim.request_count == 3


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.STATUS, vdgexport.HTTPStatusError),
        (Fault.HTML, vdgexport.HTTPStatusError),
        (Fault.TRUNCATED, vdgexport.ProtocolError),
        (Fault.MALFORMED, vdgexport.ProtocolError),
        (Fault.RESET, vdgexport.TransportError),
    ],
)
async def test_persistent_failure_gives_typed_error_after_three_attempts(
    sim: SenseSimulator, clock: ManualClock, fault: Fault, error: type[Exception]
) -> None:
    sim.inject(fault, times=10)
    async with make_client(sim, clock) as client:
        with pytest.raises(error) as info:
            await client.list_exports()
    assert sim.request_count == 3
    if fault is Fault.RESET:
        assert isinstance(info.value.__cause__, ConnectionResetError)
    if fault is Fault.STATUS:
        assert isinstance(info.value, vdgexport.HTTPStatusError)
        assert info.value.status_code == 503


async def test_refused_connection_is_a_transport_error_with_cause() -> None:
    with socket_closed_port() as port:
        async with vdgexport.Client(f"http://127.0.0.1:{port}", poll_interval=0.001) as client:
            with pytest.raises(vdgexport.TransportError) as info:
                await client.list_exports()
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def socket_closed_port() -> _ClosedPort:
    return _ClosedPort()


class _ClosedPort:
    """A loopback port that was just free: connecting to it is refused."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("status", [401, 403])
async def test_authentication_errors_are_not_retried(status: int) -> None:
    seen, transport = recording(lambda r: httpx.Response(status))
    async with vdgexport.Client("http://vdg.test", transport=transport) as client:
        with pytest.raises(vdgexport.AuthenticationError) as info:
            await client.list_exports()
    assert info.value.status_code == status
    assert len(seen) == 1


async def test_other_api_errors_are_not_retried_but_general_error_is() -> None:
    answers = iter([b'<result errorcode="-18"/>', b'<result errorcode="-2"/>'])
    seen, transport = recording(lambda r: httpx.Response(200, content=next(answers)))
    async with vdgexport.Client(
        "http://vdg.test", transport=transport, poll_interval=0.001
    ) as client:
        with pytest.raises(vdgexport.ApiError) as info:
            await client.list_exports()
    assert info.value.code == -2
    assert len(seen) == 2


async def test_hung_server_times_out(sim: SenseSimulator, clock: ManualClock) -> None:
    sim.inject(Fault.HANG, times=3)
    async with make_client(sim, clock, timeout=0.05) as client:
        with pytest.raises(vdgexport.TransportError, match="no answer within"):
            await client.list_exports()
    sim.release_hung()


async def test_body_over_the_cap_is_refused_without_reading_the_rest() -> None:
    stream = EndlessBody()
    transport = httpx.MockTransport(lambda r: httpx.Response(200, stream=stream))
    async with vdgexport.Client(
        "http://vdg.test", transport=transport, poll_interval=0.001, max_response_bytes=1_000_000
    ) as client:
        with pytest.raises(vdgexport.ProtocolError, match="exceeds the cap"):
            await client.list_exports()
    assert stream.closed == 3  # three attempts, each closed at the cap
    assert stream.chunks_read < 3 * 20  # each stopped after about 16 chunks of 64 KiB


class EndlessBody(httpx.AsyncByteStream):
    """A body that never ends, like a connection streaming forever, until it is closed."""

    def __init__(self) -> None:
        self.chunks_read = 0
        self.closed = 0
        self._open = False

    def __aiter__(self) -> EndlessBody:
        self._open = True
        return self

    async def __anext__(self) -> bytes:
        if not self._open:
            raise StopAsyncIteration
        self.chunks_read += 1
        return b"<export><path>" + b"x" * 65536 + b"</path></export>"

    async def aclose(self) -> None:
        self._open = False
        self.closed += 1


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    _, transport = recording(
        lambda r: httpx.Response(200, content=b"x" * 2000, headers={"content-length": "2000"})
    )
    async with vdgexport.Client(
        "http://vdg.test", transport=transport, poll_interval=0.001, max_response_bytes=1000
    ) as client:
        with pytest.raises(vdgexport.ProtocolError, match="2000 bytes exceeds"):
            await client.list_exports()


async def test_a_closed_client_raises_client_closed_error_over_http(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """Every call on a closed client, and a watch that `aclose` ended, is `ClientClosedError`:
    a `VdgError` (one `except` for the library) that is still a `RuntimeError`."""
    eid = sim.add_export(duration=100)
    with serve(sim) as url:
        client = vdgexport.Client(url, poll_interval=0.001, max_poll_interval=0.004, clock=clock)
        assert len(await client.list_exports()) == 1  # one-shot calls work without `async with`
        await client.aclose()
        await client.aclose()
        calls = {
            "list_exports": client.list_exports,
            "get_export": lambda: client.get_export(eid),
            "server_info": client.server_info,
            "remove_export": lambda: client.remove_export(eid),
            "create_export": lambda: client.create_export([SPAN]),
            "wait_for_completion": lambda: client.wait_for_completion(eid),
        }
        for name, call in calls.items():
            with pytest.raises(vdgexport.ClientClosedError, match="closed"):
                await call()
            assert sim.request_count == 1, name
        with pytest.raises(vdgexport.ClientClosedError, match="closed"):
            client.watch(1)
        async with vdgexport.Client(url, poll_interval=0.001, clock=clock) as client:
            async with client.watch(eid) as events:
                await events.__anext__()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.aclose)
                    with anyio.fail_after(5), pytest.raises(vdgexport.ClientClosedError) as info:
                        async for _ in events:
                            pass
    assert isinstance(info.value, vdgexport.VdgError)
    assert isinstance(info.value, RuntimeError)


async def test_watch_needs_async_with(sim: SenseSimulator, clock: ManualClock) -> None:
    client = make_client(sim, clock)
    try:
        with pytest.raises(RuntimeError, match="async with"):
            await client.watch(1).__anext__()
    finally:
        await client.aclose()


async def test_secrets_never_in_repr_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vdgexport")
    transport = httpx.MockTransport(lambda r: httpx.Response(503))
    client = vdgexport.Client(
        "http://admin:hunter2@vdg.test/x",
        auth=("user", "s3cret"),
        transport=transport,
        poll_interval=0.001,
    )
    async with client:
        with pytest.raises(vdgexport.HTTPStatusError) as info:
            await client.list_exports()
        texts = [repr(client), str(info.value), repr(info.value), caplog.text]
    for text in texts:
        assert "hunter2" not in text
        assert "s3cret" not in text
    assert "vdg.test/x/command" in str(info.value)


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    hint = RetryableStatus("503", status_code=503, retry_after=7.0)
    assert backoff(1, 0.001, 0.002, hint) == 7.0
    huge = RetryableStatus("503", status_code=503, retry_after=3600.0)
    assert backoff(1, 0.001, 0.002, huge) == MAX_RETRY_AFTER
    for failures in range(1, 10):
        assert 0.0 <= backoff(failures, 1.0, 10.0) <= min(10.0, 2.0 ** (failures - 1))


async def test_retry_after_is_read_from_the_answer(sim: SenseSimulator, clock: ManualClock) -> None:
    sim.inject(Fault.STATUS, status=429, retry_after=0, times=1)
    async with make_client(sim, clock) as client:
        with anyio.fail_after(5):
            assert len(await client.list_exports()) == 0
    assert sim.request_count == 2


def test_transient_classification() -> None:
    assert is_transient(vdgexport.TransportError("x"))
    assert is_transient(vdgexport.ProtocolError("truncated"))
    assert not is_transient(vdgexport.ProtocolError("dtd", unsafe=True))
    assert not is_transient(vdgexport.AuthenticationError("no", status_code=401))
    assert not is_transient(vdgexport.HTTPStatusError("404", status_code=404))
    assert is_transient(vdgexport.ApiError(-18))
    assert not is_transient(vdgexport.ApiError(-2))


async def test_credentials_in_the_url_become_basic_auth_and_leave_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen, transport = recording()
    async with vdgexport.Client("http://admin:hunter2@vdg.test", transport=transport) as client:
        await client.list_exports()
    assert seen[0].headers["authorization"] == httpx.BasicAuth("admin", "hunter2")._auth_header
    assert "hunter2" not in str(seen[0].url)
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (
            "http://admin:hunter2@vdg.test:8080/sense/?sessionkey=k3y#top",
            "http://vdg.test:8080/sense",
        ),
        ("https://vdg.test", "https://vdg.test"),
        ("http://[::1]:9/", "http://[::1]:9"),
    ],
)
def test_base_url_is_the_server_without_credentials_or_query(given: str, shown: str) -> None:
    client = vdgexport.Client(given)
    assert client.base_url == shown
    assert shown in repr(client)
