"""Any answer gives a model or a `VdgError`, over a real socket: a raw server on 127.0.0.1
sends hostile headers and bodies (hypothesis draws them); a failure that belongs to one id
ends that id alone."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vdgexport
from vdgexport import ExportCompleted
from vdgexport._retry import parse_retry_after
from vdgexport.testing import ManualClock, SenseSimulator

from ._raw import RawHTTP, response
from ._servers import serve

LIST = (
    b'<?xml version="1.0" encoding="UTF-8"?><result errorcode="0"><exports count="1"><export>'
    b"<exportid>1</exportid><path>D:/e</path><status>SYNCING</status><devices><device>"
    b"<serverid>s</serverid><deviceid>d</deviceid><progress>50</progress>"
    b"<status>SYNCING</status></device></devices></export></exports></result>"
)
ODD_RETRY_AFTER = [
    "\u00b2",  # str.isdigit() says yes, float() says no
    "Wed, 21 Oct 99999999999 07:28:00 GMT",  # OverflowError in parsedate_to_datetime
    "9" * 5000,
    "\u0661\u0662",  # Arabic-Indic digits
    "Wed, 32 Foo 2015 99:99:99 GMT",
    "-1",
    "nan",
]


@pytest.fixture(scope="module")
def raw() -> Iterator[RawHTTP]:
    with RawHTTP(lambda request: response(LIST)) as server:
        yield server


def fast(url: str, **options: Any) -> vdgexport.Client:
    settings_: dict[str, Any] = {
        "poll_interval": 0.001,
        "max_poll_interval": 0.002,
        "timeout": 2.0,
        "outage_timeout": 0.05,
        "clock": ManualClock(),
    }
    settings_.update(options)
    return vdgexport.Client(url, **settings_)


@pytest.mark.parametrize("value", ODD_RETRY_AFTER, ids=range(len(ODD_RETRY_AFTER)))
async def test_an_odd_retry_after_is_ignored_never_raised(raw: RawHTTP, value: str) -> None:
    raw.respond = lambda request: response(
        b"busy", status="503 Service Unavailable", headers=[("Retry-After", value)]
    )
    with mock.patch("vdgexport._retry.MAX_RETRY_AFTER", 0.01):  # "9" * 5000 is 30 s
        async with fast(raw.url) as client:
            with anyio.fail_after(5), pytest.raises(vdgexport.HTTPStatusError) as one:
                await client.list_exports()
            with anyio.fail_after(5), pytest.raises(vdgexport.HTTPStatusError) as watched:
                async with client.watch(1) as events:
                    await events.__anext__()
    assert one.value.status_code == watched.value.status_code == 503
    hint = parse_retry_after(value)
    assert hint is None or 0 <= hint <= 30


async def test_an_info_version_of_5000_digits_is_a_vdg_error(raw: RawHTTP) -> None:
    version = b"2." + b"9" * 5000
    info = b"<apiinfo><version>" + version + b"</version></apiinfo>"
    raw.respond = lambda request: response(info)
    async with fast(raw.url) as client:
        with pytest.raises(vdgexport.VdgError, match="unreadable VDG Sense version"):
            await client.server_info()


async def test_an_id_that_cannot_be_sent_fails_alone(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """A lone surrogate cannot be URL-encoded: `ValueError` for that id, where it is given;
    the watch already running is not ended by it."""
    eid = sim.add_export(duration=10)
    with serve(sim) as url:
        async with fast(url, clock=clock, outage_timeout=None) as client:
            async with client.watch(eid) as events:
                first = await events.__anext__()
                for call in (client.watch, client.get_export, client.wait_for_completion):
                    with pytest.raises(ValueError, match="cannot be sent"):
                        await _call(call, "a\udc80b")
                clock.advance(10)
                with anyio.fail_after(5):
                    rest = [event async for event in events]
    assert first.export_id == eid
    assert isinstance(rest[-1], ExportCompleted)


async def test_an_id_with_surrounding_white_space_names_that_export(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    """An id read from a file or a form (" 5\n") is the export "5", as the server's own
    answers strip theirs; one that is only white space is refused where it is given."""
    eid = sim.add_export(duration=10)
    with serve(sim) as url:
        async with fast(url, clock=clock, outage_timeout=None) as client:
            assert (await client.get_export(f" {eid}\n")).export_id == eid
            async with client.watch(f"\t{eid} ") as events:
                assert events.export_id == eid
                first = await events.__anext__()
                assert client.stats().watched_ids == 1
                for call in (client.watch, client.get_export, client.remove_export):
                    with pytest.raises(ValueError, match="must not be empty"):
                        await _call(call, " \t\n")
                clock.advance(10)
                with anyio.fail_after(5):
                    rest = [event async for event in events]
    assert first.export_id == eid
    assert isinstance(rest[-1], ExportCompleted)
    assert rest[-1].export_id == eid


async def _call(call: Any, export_id: str) -> None:
    result = call(export_id)
    if hasattr(result, "__await__"):
        await result


# -- hypothesis over the wire --------------------------------------------------------------

_TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=12)
_HEADER_TEXT = st.one_of(
    _TOKEN,
    st.sampled_from(ODD_RETRY_AFTER),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
_BODIES = st.one_of(
    st.just(LIST),
    st.binary(max_size=300),
    st.sampled_from(
        [
            b'<result errorcode="-' + b"9" * 5000 + b'"/>',
            b'<result errorcode="-99"/>',
            b'<result errorcode="0"><sessionkey>k</sessionkey></result>',
            b"<apiinfo><version>2.8.0</version><utc>9999-99-99</utc></apiinfo>",
            b"<html><body>502</body></html>",
            LIST.replace(b"50", b"1e999"),
            LIST.replace(b"UTF-8", b"shift_jis"),
            LIST[: len(LIST) // 2],
        ]
    ),
)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """A raw HTTP answer: a status, some of the headers that matter, a body, maybe
    compressed (correctly or not)."""
    body = draw(_BODIES)
    status = draw(st.sampled_from(["200 OK", "503 Busy", "429 Slow", "404 Nope", "401 No"]))
    headers: list[tuple[str, bytes | str]] = []
    encoding = draw(st.sampled_from([None, "gzip", "deflate", "br", "gzip, gzip", "x-odd"]))
    if encoding is not None:
        headers.append(("Content-Encoding", encoding))
        if draw(st.booleans()):
            if encoding == "gzip":
                body = gzip.compress(body)
            elif encoding == "deflate":
                body = zlib.compress(body)
            elif encoding == "gzip, gzip":
                body = gzip.compress(gzip.compress(body))
    names = st.lists(st.sampled_from(["Retry-After", "Content-Type", "Set-Cookie"]), max_size=3)
    headers.extend((name, draw(_HEADER_TEXT)) for name in draw(names))
    if draw(st.booleans()):
        headers.append(("Set-Cookie", "sessionkey=" + draw(_TOKEN)))
    length = draw(st.sampled_from(["right", "none", "short", "long", "odd"]))
    if length == "short":
        headers.append(("Content-Length", str(max(0, len(body) - 3))))
    elif length == "long":
        headers.append(("Content-Length", str(len(body) + 50)))
    elif length == "odd":
        headers.append(("Content-Length", draw(st.sampled_from(["-1", "\u00b2", "9" * 30, "x"]))))
    return response(body, status=status, headers=headers, length=length == "right")


async def _exercise(url: str, session: bool) -> None:
    auth = vdgexport.SessionAuth("u", "p") if session else None
    async with fast(url, auth=auth, max_response_bytes=64 * 1024) as client:
        for call in (client.list_exports, lambda: client.get_export(1), client.server_info):
            try:
                with anyio.fail_after(10):
                    await call()
            except vdgexport.VdgError:
                pass
        try:
            with anyio.fail_after(10):
                async with client.watch(1) as events:
                    with anyio.move_on_after(0.02):
                        async for _ in events:
                            pass
        except vdgexport.VdgError:
            pass


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=answers(), session=st.booleans())
def test_any_answer_gives_a_model_or_a_vdg_error(
    raw: RawHTTP, backend: str, answer: bytes, session: bool
) -> None:
    raw.respond = lambda request: answer
    with mock.patch("vdgexport._retry.MAX_RETRY_AFTER", 0.01):  # the wait is not the point
        anyio.run(_exercise, raw.url, session, backend=backend)
