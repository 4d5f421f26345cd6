"""Regressions of the whole-list fast path (findings F1, F2, F3 of the attack review)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from xml.etree.ElementTree import ParseError, fromstring

import anyio
import anyio.lowlevel
import httpx
import pytest

import vdgexport
from vdgexport import ProtocolError
from vdgexport._incremental import ListParser, parse_export_async


def plain(i: int) -> str:
    return (
        f"<exportid>{i}</exportid><path>p{i}</path><status>SYNCING</status>"
        "<bandwidth>1</bandwidth><devices><device><serverid>s</serverid>"
        "<deviceid>d</deviceid><starttime>2024-01-01 00:00:00</starttime>"
        "<endtime>2024-01-01 00:01:00</endtime><progress>5</progress>"
        "<status>SYNCING</status></device></devices>"
    )


def listing(exports: str, count: int = 2) -> bytes:
    return f'<result errorcode="0"><exports count="{count}">{exports}</exports></result>'.encode()


@pytest.mark.parametrize("tag", ['<export a="1">', "<export >", "<export\n>"])
def test_a_plain_export_then_one_with_an_attribute_is_read(tag: str) -> None:
    body = listing(f"<export>{plain(1)}</export>{tag}{plain(2)}</export>")
    assert len(fromstring(body)[0]) == 2  # well-formed: ElementTree reads two exports
    assert [e.export_id for e in ListParser().parse(body)] == ["1", "2"]


def test_a_cached_export_does_not_make_a_malformed_list_acceptable() -> None:
    # The second part's bytes are valid only inside the <export x=""> the first poll opened.
    first = listing(
        f'<export>{plain(1)}</export><export x=""><export y="">B</export>'
        f"<export>{plain(3)}</export></export>"
    )
    second = listing(f"<export>{plain(4)}</export><export>{plain(3)}</export></export>")
    fromstring(first)
    with pytest.raises(ParseError):
        fromstring(second)
    parser = ListParser()
    parser.parse(first)
    with pytest.raises(ProtocolError):
        parser.parse(second)
    with pytest.raises(ProtocolError):
        ListParser().parse(second)


_WHITE_SPACE = textwrap.dedent(
    """
    from vdgexport._incremental import ListParser
    dev = ("<device><serverid>s</serverid><deviceid>d</deviceid>"
           "<starttime>2024-01-01 00:00:00</starttime><endtime>2024-01-01 00:01:00</endtime>"
           "<progress>5</progress><status>SYNCING</status></device>")
    w = " " * 200_000
    for where in range(5):
        s = [w if where == k else "" for k in range(5)]
        exp = ("<export>" + s[0] + "\\n<exportid>1</exportid>\\n<path>p</path>" + s[1]
               + "\\n<status>SYNCING</status>\\n<bandwidth>1</bandwidth>\\n<devices>" + s[2]
               + dev + s[3] + "</devices>" + s[4] + "</export>")
        body = ('<result errorcode="0"><exports count="1">' + exp + "</exports></result>")
        exports = ListParser().parse(body.encode())
        assert [len(e.devices) for e in exports] == [1], where
    """
)


def test_long_white_space_runs_in_an_export_are_read_in_linear_time() -> None:
    # 200 kB runs of white space (each about a millisecond for expat): a pattern that
    # began with a repetition was tried at every position of the run (quadratic: minutes).
    subprocess.run([sys.executable, "-c", _WHITE_SPACE], check=True, timeout=10)


def _many_devices(size: int) -> bytes:
    device = (
        "<device><serverid>s</serverid><deviceid>{i}</deviceid>"
        "<starttime>2024-01-01 00:00:00</starttime><endtime>2024-01-01 00:01:00</endtime>"
        "<progress>5</progress><status>SYNCING</status></device>"
    )
    devices = device * 40 + "</devices>"
    exports = [
        f"<export>{plain(i).replace('</devices>', devices)}</export>" for i in range(size // 9000)
    ]
    return listing("".join(exports), len(exports))


def _steps(parser: ListParser, body: bytes) -> int:
    steps = parser._steps(body)
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration:
            return count
        count += 1


def test_a_list_of_large_exports_is_built_in_steps_of_bytes_not_of_exports() -> None:
    # 3 MiB of exports of 41 devices each: steps of 500 exports were 4.5 MiB each, so
    # parse_async held the loop for the whole list (F4); steps are about 256 KiB now.
    body = _many_devices(3 << 20)
    assert _steps(ListParser(), body) >= len(body) // (256 << 10)
    # Parsed whole (a comment): models are built about 4,000 per step, after 1 MiB slices.
    whole = body.replace(b"<exports ", b"<!-- c --><exports ", 1)
    devices = whole.count(b"<device>")
    assert _steps(ListParser(), whole) >= len(whole) // (1 << 20) + devices // 4000


async def test_a_per_id_answer_holding_the_whole_list_lets_the_loop_run() -> None:
    # A server that ignores exportid answers the whole list: read by defusedxml in one
    # call it held the loop for seconds (F18); over a mebibyte it is read in steps.
    body = _many_devices(3 << 20)
    wanted = str(body.count(b"<export>") // 2)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["exportid"] == wanted
        return httpx.Response(200, content=body, headers={"content-type": "text/xml"})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(tick)
        await anyio.lowlevel.checkpoint()
        async with vdgexport.Client("http://vdg.test", transport=httpx.MockTransport(handler)) as c:
            before = ticks
            export = await c.get_export(wanted)
            during = ticks - before
            assert await parse_export_async(body, wanted) == export
        tasks.cancel_scope.cancel()
    assert export.export_id == wanted
    assert len(export.devices) == 41
    assert during >= len(body) // (1 << 20)
