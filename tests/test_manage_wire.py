"""Sessions and managing exports over real loopback HTTP (uvicorn serving the simulator):
the login is read once and only once, refusals are final, keys reach no log, and the vendor's
removal rules hold."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport import ExportCompleted, SessionAuth
from vdgexport.testing import Fault, ManualClock, SenseSimulator

from ._servers import serve
from .test_manage import CREDENTIALS, span


def session_client(url: str, clock: ManualClock, **options: Any) -> vdgexport.Client:
    settings: dict[str, Any] = {
        "auth": SessionAuth(*CREDENTIALS),
        "poll_interval": 0.001,
        "max_poll_interval": 0.004,
        "timeout": 5.0,
        "clock": clock,
    }
    settings.update(options)
    return vdgexport.Client(url, **settings)


@pytest.fixture
def login_sim(sim: SenseSimulator) -> SenseSimulator:
    sim.credentials = CREDENTIALS
    return sim


@pytest.fixture
def url(login_sim: SenseSimulator) -> Iterator[str]:
    with serve(login_sim) as base:
        yield base


async def drain(watch: vdgexport.Watch) -> None:
    async with watch as events:
        async for _ in events:
            pass


def paths(sim: SenseSimulator) -> list[str]:
    return [r.path for r in sim.requests]


async def test_one_login_and_no_hidden_retry_over_http(
    login_sim: SenseSimulator, url: str, clock: ManualClock
) -> None:
    """The login answer is read within its cap and then given back to httpx: one login,
    one command, no retry hiding a `StreamConsumed`."""
    eid = login_sim.add_export(duration=10)
    async with session_client(url, clock) as client:
        assert [e.export_id for e in await client.list_exports()] == [eid]
        assert (await client.get_export(eid)).export_id == eid
    assert paths(login_sim) == ["/webservice", "/command", "/command"]
    assert login_sim.login_count == 1


async def test_create_export_logs_in_over_http(
    login_sim: SenseSimulator, url: str, clock: ManualClock
) -> None:
    """`create_export` is never retried: it works only if the first login works."""
    async with session_client(url, clock) as client:
        export_id = await client.create_export([span()])
        assert (await client.get_export(export_id)).export_id == export_id
    assert paths(login_sim) == ["/webservice", "/command", "/command"]


async def test_an_expired_session_logs_in_again_once(
    login_sim: SenseSimulator, url: str, clock: ManualClock
) -> None:
    login_sim.add_export(duration=10)
    async with session_client(url, clock) as client:
        await client.list_exports()
        login_sim.expire_sessions()
        assert len(await client.list_exports()) == 1
    assert paths(login_sim) == ["/webservice", "/command", "/command", "/webservice", "/command"]


async def test_a_refusal_right_after_a_login_ends_watches_at_once(
    login_sim: SenseSimulator, clock: ManualClock
) -> None:
    """A server that refuses every session: `AuthenticationError` at once, one login, and a
    watch ends with it although `outage_timeout` is forever."""
    eid = login_sim.add_export(duration=10)

    async def refuse_sessions(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/command":
            login_sim.expire_sessions()  # every key is forgotten as soon as it is used
        await login_sim(scope, receive, send)

    with serve(refuse_sessions) as url:
        async with session_client(url, clock, outage_timeout=None) as client:
            with pytest.raises(vdgexport.AuthenticationError, match="401"):
                await client.list_exports()
            assert login_sim.login_count == 1
            with anyio.fail_after(5), pytest.raises(vdgexport.AuthenticationError):
                await drain(client.watch(eid))
    # The watch's first request used the old session: one new login, then the refusal ends it.
    assert paths(login_sim) == ["/webservice", "/command", "/command", "/webservice", "/command"]


async def test_an_undocumented_errorcode_gets_one_new_login_and_one_repeat(
    login_sim: SenseSimulator, url: str, clock: ManualClock
) -> None:
    """VDG Sense says every answer is XML: an expired session may be HTTP 200 with a
    negative errorcode that is not documented. One new login and one repeat heal it."""
    login_sim.session_error = -77
    eid = login_sim.add_export(duration=10)
    async with session_client(url, clock) as client:
        await client.list_exports()
        login_sim.expire_sessions()
        assert (await client.get_export(eid)).export_id == eid
        assert login_sim.login_count == 2
        assert paths(login_sim)[-3:] == ["/command", "/webservice", "/command"]

        async def refuse_sessions(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/command":
                login_sim.expire_sessions()
            await login_sim(scope, receive, send)

        with serve(refuse_sessions) as other:
            async with session_client(other, clock) as again:
                with pytest.raises(vdgexport.ApiError) as caught:
                    await again.list_exports()
    assert caught.value.code == -77
    assert login_sim.login_count == 4  # two here: the first login and one new login
    assert paths(login_sim)[-4:] == ["/webservice", "/command", "/webservice", "/command"]


async def test_a_documented_errorcode_is_not_a_reason_to_log_in_again(
    login_sim: SenseSimulator, url: str, clock: ManualClock
) -> None:
    async with session_client(url, clock) as client:
        with pytest.raises(vdgexport.ExportNotFoundError):
            await client.get_export("404")
    assert login_sim.login_count == 1
    assert paths(login_sim) == ["/webservice", "/command"]


async def test_a_session_key_in_a_cookie_reaches_no_log_record(
    login_sim: SenseSimulator, url: str, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """httpcore logs response headers at DEBUG, the ``Set-Cookie`` with the key included."""
    for name in ("vdgexport", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    login_sim.session_cookie = True
    eid = login_sim.add_export(duration=10)
    async with session_client(url, clock) as client:
        await client.list_exports()
        login_sim.expire_sessions()
        async with client.watch(eid) as events:
            clock.advance(10)
            with anyio.fail_after(5):
                assert isinstance([e async for e in events][-1], ExportCompleted)
        keys = login_sim.session_keys
    assert len(keys) == 1
    assert login_sim.login_count == 2
    assert any("set-cookie" in r.getMessage().lower() for r in caplog.records)  # it was logged
    for record in caplog.records:
        for key in keys:
            assert key not in record.getMessage()
    assert "sessionkey=<redacted>" in caplog.text.replace("SessionKey", "sessionkey")


async def test_a_removal_whose_answer_was_lost_is_a_success(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """The first removal is done but its answer is lost (a reset); the repeat gets -57."""
    eid = sim.add_export(duration=100)
    with serve(sim) as url:
        async with vdgexport.Client(url, poll_interval=0.001, clock=clock) as client:
            sim.inject(Fault.RESET, times=1)
            await client.remove_export(eid)
            assert sim.status_of(eid) == "REMOVED"
            removals = [r for r in sim.requests if b"<remove>" in r.body]
            assert len(removals) == 2  # the lost one and its repeat
            with pytest.raises(vdgexport.ExportNotFoundError):
                await client.remove_export(eid)  # a new call: -57 is an answer


async def test_a_non_vdg_server_404_hints_at_the_command_path(clock: ManualClock) -> None:
    async def not_vdg(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such page"})

    with serve(not_vdg) as url:
        async with vdgexport.Client(url + "/wrong", clock=clock) as client:
            with pytest.raises(vdgexport.HTTPStatusError) as caught:
                await client.list_exports()
    assert caught.value.status_code == 404
    assert f"requests go to {url}/wrong/command; is this a VDG Sense server?" in str(caught.value)
