"""Parsing defects of issue 10 as a user meets them: real bodies over loopback HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

import vdgexport
from vdgexport._incremental import ListParser
from vdgexport.testing import ManualClock

from ._servers import serve
from .test_hostile_wire import Body

EXPORT = (
    "<export><exportid>1</exportid><path>D:\\é 日本</path><status>SYNCING</status>"
    "<devices><device><serverid>s</serverid><deviceid>d</deviceid><progress>5</progress>"
    "<status>SYNCING</status></device></devices></export>"
)


def answer(inner: str = EXPORT, *, declaration: str = "", between: bytes = b"") -> bytes:
    return (
        declaration.encode()
        + b'<result errorcode="0"><exports count="1">'
        + inner.encode()
        + between
        + b"</exports></result>"
    )


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[Body, str]]:
    app = Body(b"")
    with serve(app) as url:
        yield app, url


def client(url: str, clock: ManualClock) -> vdgexport.Client:
    return vdgexport.Client(
        url, poll_interval=0.001, max_poll_interval=0.004, outage_timeout=0.2, clock=clock
    )


async def drain(watch: vdgexport.Watch) -> None:
    async with watch as events:
        async for _ in events:
            pass


# A run of white space before an unknown element: the old tail regex took 12.8 s at 100 kB
# and grew with the square of the run (about 2 minutes at 300 kB).
WHITE_RUN = answer(between=b" " * 300_000 + b"<later/>")


def test_a_long_white_space_run_is_scanned_in_linear_time() -> None:
    """16 MiB of white space (days for the old regex) parses; the guard only ends a hang."""
    data = answer(between=b"\n" * (16 * 1024 * 1024) + b"<later/>")
    done = threading.Event()
    found: list[int] = []

    def parse() -> None:
        found.append(len(ListParser().parse(data)))
        done.set()

    threading.Thread(target=parse, daemon=True).start()
    assert done.wait(timeout=60), "the scan is not linear"
    assert found == [1]


async def test_a_long_white_space_run_does_not_freeze_the_client(
    wire: tuple[Body, str], clock: ManualClock
) -> None:
    app, url = wire
    app.body = WHITE_RUN
    async with client(url, clock) as c:
        with anyio.fail_after(10):
            [export] = await c.list_exports()
            assert export.path == "D:\\é 日本"
            async with c.watch("1") as events:
                assert (await events.__anext__()).export_id == "1"


@pytest.mark.parametrize("spelling", ["utf8", "UTF8", "u8", "utf_8", "cp65001"])
async def test_utf8_spelled_without_hyphen_is_read_not_retried(
    spelling: str, wire: tuple[Body, str], clock: ManualClock
) -> None:
    app, url = wire
    app.body = answer(declaration=f'<?xml version="1.0" encoding="{spelling}"?>')
    async with client(url, clock) as c:
        with anyio.fail_after(10):
            assert (await c.get_export(1)).path == "D:\\é 日本"
            assert (await c.list_exports())[0].path == "D:\\é 日本"


@pytest.mark.parametrize("encoding", ["shift_jis", "utf-7", "euc-jp", "idna", "x-unknown"])
async def test_a_late_foreign_encoding_is_a_protocol_error_over_the_wire(
    encoding: str, wire: tuple[Body, str], clock: ManualClock
) -> None:
    """``encoding=`` after the first 200 bytes gave ValueError, LookupError or UnicodeError."""
    app, url = wire
    app.body = answer(
        "<export><exportid>1</exportid></export>",
        declaration=f'<?xml version="1.0"{" " * 300}encoding="{encoding}"?>',
    )
    async with client(url, clock) as c:
        with anyio.fail_after(10):
            with pytest.raises(vdgexport.ProtocolError):
                await c.list_exports()
            with pytest.raises(vdgexport.ProtocolError):
                await c.get_export(1)
            with pytest.raises(vdgexport.ProtocolError):
                await drain(c.watch("1"))
