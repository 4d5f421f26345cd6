"""Hostile input over the wire: every attack body is served by uvicorn and must be refused
with `ProtocolError`, quickly, reading no file and opening no connection; odd ids travel
and match exactly."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import vdgexport
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve
from .conftest import HOSTILE_XML, hostile_documents

MARKER = "SECRET-MARKER-7d1e0b"
HEAD = b'<result errorcode="0"><exports count="1"><export><exportid>1</exportid><path>'
TAIL = b"</path></export></exports></result>"


class Body:
    """An ASGI app that answers every request with one body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.requests += 1
        headers = [(b"content-type", b"text/xml"), (b"content-length", b"%d" % len(self.body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@pytest.fixture(scope="module")
def wire() -> Iterator[tuple[Body, str]]:
    """One uvicorn server for the module, answering with whatever body a test sets."""
    app = Body(b"")
    with serve(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def listener() -> Iterator[socket.socket]:
    """A loopback listener that the attacks point at; nothing may ever connect to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "secret.txt"
    path.write_text(MARKER)
    return path


def malformed() -> dict[str, bytes]:
    """Broken bodies beside the attack documents of tests/data: refused, not as attacks."""
    return {
        "invalid utf-8": HEAD + b"\xff\xfe\xc3\x28" + TAIL,
        "utf-8 surrogate": HEAD + b"\xed\xa0\x80" + TAIL,
        "utf-16": ("\ufeff" + (HEAD + TAIL).decode()).encode("utf-16-le"),
        "utf-7 declared": b'<?xml version="1.0" encoding="UTF-7"?>' + HEAD + TAIL,
        "undeclared entity": HEAD + b"&ee;" + TAIL,
        "deep nesting, unclosed": b'<result errorcode="0">' + b"<a>" * 100_000 + b"</result>",
    }


def attacks(secret: Path, port: int) -> dict[str, bytes]:
    """The attack documents of tests/data, pointed at this test's file and listener."""
    return {**hostile_documents(secret, f"http://127.0.0.1:{port}"), **malformed()}


def test_the_hostile_corpus_is_in_the_repository() -> None:
    names = set(hostile_documents())
    assert len(names) >= 15
    assert HOSTILE_XML.is_relative_to(Path(__file__).parent)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("vdgexport", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def assert_never_connected(listener: socket.socket) -> None:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return
    conn.close()
    pytest.fail("the parser opened a connection to the attacker's URL")


async def no_events(watch: vdgexport.Watch) -> None:
    async with watch as events:
        async for event in events:
            pytest.fail(f"an event from a hostile body: {event!r}")


async def refused(
    body: bytes, clock: ManualClock, wire: tuple[Body, str]
) -> vdgexport.ProtocolError:
    """Serve ``body``; a one-shot call and a watch must both end in `ProtocolError`."""
    app, url = wire
    app.body = body
    async with vdgexport.Client(
        url, poll_interval=0.001, max_poll_interval=0.004, outage_timeout=0.05, clock=clock
    ) as client:
        with anyio.fail_after(5), pytest.raises(vdgexport.ProtocolError) as one:
            await client.list_exports()
        with anyio.fail_after(5), pytest.raises(vdgexport.ProtocolError) as watched:
            await no_events(client.watch("1"))
    return one.value if one.value.unsafe else watched.value


@pytest.mark.parametrize("name", list(attacks(Path("/x"), 1)), ids=lambda n: n.replace(" ", "-"))
async def test_attacks_are_refused_reading_nothing(
    name: str,
    clock: ManualClock,
    secret_file: Path,
    listener: socket.socket,
    wire: tuple[Body, str],
    logs: pytest.LogCaptureFixture,
) -> None:
    body = attacks(secret_file, listener.getsockname()[1])[name]
    error = await refused(body, clock, wire)
    if b"<!DOCTYPE" in body:
        assert error.unsafe, "a DTD is an attack, not an outage"
    for text in [str(error), repr(error), logs.text, *(r.getMessage() for r in logs.records)]:
        assert MARKER not in text
    assert_never_connected(listener)


async def test_xinclude_in_a_good_answer_is_an_unknown_element_never_followed(
    clock: ManualClock,
    secret_file: Path,
    listener: socket.socket,
    wire: tuple[Body, str],
) -> None:
    app, url = wire
    port = listener.getsockname()[1]
    include = (
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret_file}"'
        f' parse="text"/><xi:include xmlns:xi="http://www.w3.org/2001/XInclude"'
        f' href="http://127.0.0.1:{port}/x" parse="text"/>'
    )
    app.body = HEAD + b"D:/e" + include.encode() + TAIL
    async with vdgexport.Client(url, clock=clock) as client:
        with anyio.fail_after(5):
            [export] = await client.list_exports()
    assert export.path == "D:/e"
    assert_never_connected(listener)


async def test_deep_nesting_inside_result_is_bounded(
    clock: ManualClock, wire: tuple[Body, str]
) -> None:
    """100,000 nested unknown elements are well-formed XML: ignored quickly, no crash."""
    app, url = wire
    app.body = b'<result errorcode="0">' + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</result>"
    async with vdgexport.Client(url, clock=clock) as client:
        with anyio.fail_after(5):
            assert len(await client.list_exports()) == 0


ODD_IDS = ["a&b", "#1", "100%", "%20", "<x>", "a b", "é", "日本", "a&b #1 %2F <x> é"]


async def test_odd_ids_are_sent_and_matched_exactly(
    sim: SenseSimulator, clock: ManualClock
) -> None:
    for export_id in ODD_IDS:
        sim.add_export(export_id=export_id, duration=10)
    with serve(sim) as url:
        async with vdgexport.Client(
            url, poll_interval=0.001, max_poll_interval=0.004, clock=clock
        ) as client:
            for export_id in ODD_IDS:
                assert (await client.get_export(export_id)).export_id == export_id
            seen = [r.query["exportid"] for r in sim.requests]
            assert seen == ODD_IDS
            async with anyio.create_task_group() as tg:
                ends: dict[str, Any] = {}

                async def watch(export_id: str, *, task_status: Any) -> None:
                    async with client.watch(export_id) as events:
                        task_status.started()
                        ends[export_id] = [e async for e in events][-1]

                for export_id in ODD_IDS:
                    await tg.start(watch, export_id)
                clock.advance(10)
            one = await client.wait_for_completion(ODD_IDS[-1], timeout=5)
    assert {k: type(v).__name__ for k, v in ends.items()} == dict.fromkeys(
        ODD_IDS, "ExportCompleted"
    )
    assert all(v.export.export_id == k for k, v in ends.items())
    assert one.export_id == ODD_IDS[-1]
    assert sim.requests[-1].query["exportid"] == ODD_IDS[-1]
