"""Whole-list parsing that rebuilds only what changed, and never trusts what it skips."""

from __future__ import annotations

import gc

import anyio
import anyio.lowlevel
import pytest

from vdgexport import ApiError, ProtocolError
from vdgexport._incremental import ListParser
from vdgexport._parse import parse_export_list


def export(eid: int, progress: float = 10.0, status: str = "SYNCING") -> bytes:
    return (
        f"<export><exportid>{eid}</exportid><path>D:\\e{eid}</path><status>{status}</status>"
        f"<bandwidth>8000</bandwidth><devices><device><serverid>s</serverid>"
        f"<deviceid>d{eid}</deviceid><starttime>2024-01-19 10:00:00.000</starttime>"
        f"<endtime>2024-01-19 10:05:00.000</endtime><progress>{progress}</progress>"
        f"<status>{status}</status></device></devices></export>"
    ).encode()


def listing(*exports: bytes, head: bytes = b'<?xml version="1.0" encoding="UTF-8"?>\n') -> bytes:
    return (
        head
        + b'<result errorcode="0"><exports count="%d">' % len(exports)
        + b"\n".join(exports)
        + b"</exports></result>\n"
    )


def test_unchanged_answer_returns_the_same_list_object() -> None:
    parser = ListParser()
    body = listing(export(1), export(2))
    first = parser.parse(body)
    assert parser.parse(body) is first
    assert first == parse_export_list(body)


def test_only_changed_exports_get_new_models() -> None:
    parser = ListParser()
    before = parser.parse(listing(export(1), export(2), export(3)))
    after = parser.parse(listing(export(1), export(2, progress=55.5), export(3)))
    assert after[0] is before[0]
    assert after[2] is before[2]
    assert after[1] is not before[1]
    assert after[1].devices[0].progress == 55.5
    assert after == parse_export_list(listing(export(1), export(2, progress=55.5), export(3)))


def test_new_removed_and_reordered_exports() -> None:
    parser = ListParser()
    parser.parse(listing(export(1), export(2)))
    body = listing(export(3), export(1))
    result = parser.parse(body)
    assert [e.export_id for e in result] == ["3", "1"]
    assert result == parse_export_list(body)
    assert result.count == 2


@pytest.mark.parametrize(
    "body",
    [
        listing(export(1)).replace(b"<exportid>", b"<!-- c --><exportid>"),
        listing(export(1)).replace(b"<export>", b"<EXPORT>").replace(b"</export>", b"</EXPORT>"),
        listing(export(1)).replace(b"<export>", b'<export kind="x">'),
        listing(export(1), head=b'<?xml version="1.0" encoding="ISO-8859-1"?>'),
        listing(export(1)).replace(b"D:\\e1", b"<![CDATA[D:\\e1]]>"),
        listing(),
    ],
    ids=["comment", "upper-case", "attribute", "latin-1", "cdata", "empty"],
)
def test_anything_unusual_is_parsed_whole_with_the_same_result(body: bytes) -> None:
    assert ListParser().parse(body) == parse_export_list(body)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (listing(export(1), export(2))[:-40], "malformed"),
        (listing(export(1)).replace(b"</path>", b"</paht>"), "malformed"),
        (listing(export(1)).replace(b"</exports>", b"</export></exports>"), "malformed"),
        (listing(export(1)).replace(b"<status>", b"<status>&bad;", 1), "malformed"),
        (b'<!DOCTYPE r [<!ENTITY a "b">]>' + listing(export(1)), "unsafe"),
    ],
    ids=["truncated", "mismatched", "between", "entity", "dtd"],
)
def test_broken_answers_are_refused_after_a_good_one(body: bytes, match: str) -> None:
    parser = ListParser()
    parser.parse(listing(export(1), export(2)))
    with pytest.raises(ProtocolError, match=match):
        parser.parse(body)


def test_error_envelope_is_an_api_error() -> None:
    parser = ListParser()
    parser.parse(listing(export(1)))
    with pytest.raises(ApiError):
        parser.parse(b'<result errorcode="-18"><description>x</description></result>')
    head = b'<result errorcode="-2"><exports count="1">'
    with pytest.raises(ApiError):
        parser.parse(head + export(1) + b"</exports></result>")


@pytest.mark.parametrize(
    "body",
    [
        listing(export(1), export(2)).replace(b"</export>\n<export>", b"</export>\x0c<export>"),
        listing(export(1)).replace(b"</exports>", b"</exports\x0b>"),
        listing(export(1), head=b'<?xml version="1.0" encoding="us-ascii"?>').replace(
            b"D:\\e1", "D:\\é".encode()
        ),
    ],
    ids=["form-feed", "vertical-tab", "ascii-declared"],
)
def test_not_xml_white_space_or_encoding_is_refused_like_the_full_parse(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_export_list(body)
    with pytest.raises(ProtocolError):
        ListParser().parse(body)


def test_namespace_prefixes_of_the_envelope_are_understood() -> None:
    body = listing(export(1)).replace(b"<result ", b'<result xmlns:v="urn:v" ')
    body = body.replace(b"<path>", b"<v:path>").replace(b"</path>", b"</v:path>")
    assert ListParser().parse(body) == parse_export_list(body)


async def test_a_large_answer_lets_other_tasks_run_while_it_is_parsed() -> None:
    """Parsed in steps of about 1 MiB with a checkpoint between them, cold or whole."""
    many = listing(*(export(n) for n in range(6000)))  # about 3.5 MiB
    unusual = many.replace(b"<exportid>", b"<!-- c --><exportid>")  # parsed whole
    for body in (many, unusual):
        turns = [0]

        async def other_task(turns: list[int], done: anyio.Event) -> None:
            while not done.is_set():
                turns[0] += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tasks:
            done = anyio.Event()
            tasks.start_soon(other_task, turns, done)
            await anyio.lowlevel.checkpoint()
            before = turns[0]
            result = await ListParser().parse_async(body)
            during = turns[0] - before
            done.set()
        assert result == parse_export_list(body)
        assert during >= 4, f"the other task ran {during} times during the parse"


async def test_an_async_parse_cancelled_midway_leaves_the_parser_as_it_was() -> None:
    parser = ListParser()
    first = parser.parse(listing(export(1)))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await parser.parse_async(listing(*(export(n) for n in range(4000))))
    assert parser.parse(listing(export(1))) is first
    assert gc.isenabled()
