"""Tests for vdgexport.testing: the SensePluginManager simulator."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import httpx
import pytest

from vdgexport.testing import Fault, ManualClock, SenseSimulator, SimRequest

from ._servers import serve

STATUS = {"command": "getExportVideoStatus"}


@pytest.fixture
async def client(sim: SenseSimulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        yield http


async def get_status(client: httpx.AsyncClient, **params: str) -> ET.Element:
    response = await client.get("/command", params={**STATUS, **params})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    return ET.fromstring(response.content)


def only_export(root: ET.Element) -> ET.Element:
    assert root.get("errorcode") == "0"
    exports = root.find("exports")
    assert exports is not None
    assert exports.get("count") == "1"
    (export,) = exports.findall("export")
    return export


def device_view(export: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(d.findtext("progress"), d.findtext("status")) for d in export.iter("device")]


# -- progress over time ---------------------------------------------------------------------


async def test_progress_follows_the_clock(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    export_id = sim.add_export(duration=60)
    assert export_id == "1"
    export = only_export(await get_status(client, exportid="1"))
    assert export.findtext("exportid") == "1"
    assert export.findtext("path") == "D:\\Exports\\export_1"
    assert export.findtext("status") == "SYNCING"
    assert export.findtext("bandwidth") == "8000"
    assert device_view(export) == [("0", "SYNCING")]

    clock.advance(27.3)
    export = only_export(await get_status(client, exportid="1"))
    assert device_view(export) == [("45.5", "SYNCING")]

    clock.advance(2.7)
    assert device_view(only_export(await get_status(client))) == [("50", "SYNCING")]
    assert sim.status_of("1") == "SYNCING"

    clock.advance(30)
    export = only_export(await get_status(client))
    assert export.findtext("status") == "COMPLETED"
    assert export.findtext("bandwidth") == "0"
    assert device_view(export) == [("100", "COMPLETED")]
    assert sim.status_of("1") == "COMPLETED"


async def test_devices_and_timestamps(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    sim.add_export(duration=[10, 20], bandwidth_kbps=1234.5)
    clock.advance(10)
    export = only_export(await get_status(client, exportid="1"))
    assert export.findtext("status") == "SYNCING"
    assert export.findtext("bandwidth") == "1234.5"
    assert device_view(export) == [("100", "COMPLETED"), ("50", "SYNCING")]
    devices = list(export.iter("device"))
    assert devices[0].findtext("starttime") == "2024-01-19 10:00:00.000"
    assert devices[0].findtext("endtime") == "2024-01-19 10:05:00.000"
    assert devices[1].findtext("starttime") == "2024-01-19 10:01:00.000"
    server_ids = {d.findtext("serverid") for d in devices}
    device_ids = [d.findtext("deviceid") for d in devices]
    assert len(set(device_ids)) == 2
    for uid in [*server_ids, *device_ids]:
        assert uid is not None
        assert uid.startswith("{")
        assert uid.endswith("}")


async def test_pending_then_syncing(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    sim.add_export(devices=2, duration=10, pending=5)
    export = only_export(await get_status(client))
    assert export.findtext("status") == "PENDING"
    assert export.findtext("bandwidth") == "0"
    assert device_view(export) == [("0", "PENDING")] * 2
    clock.advance(5)
    assert sim.status_of("1") == "SYNCING"
    clock.advance(1)
    export = only_export(await get_status(client))
    assert export.findtext("status") == "SYNCING"
    assert device_view(export) == [("10", "SYNCING")] * 2


async def test_remove_freezes_and_stays_listed(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    sim.add_export(duration=[10, 100])
    clock.advance(20)
    sim.remove_export("1")
    clock.advance(100)
    export = only_export(await get_status(client))
    assert export.findtext("status") == "REMOVED"
    assert export.findtext("bandwidth") == "0"
    assert device_view(export) == [("100", "COMPLETED"), ("20", "REMOVED")]
    assert sim.status_of("1") == "REMOVED"
    assert sim.export_ids() == ["1"]


async def test_pause_and_resume(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    sim.add_export(duration=100)
    clock.advance(10)
    sim.pause("1")
    clock.advance(50)
    assert device_view(only_export(await get_status(client))) == [("10", "SYNCING")]
    sim.resume("1")
    clock.advance(5)
    assert device_view(only_export(await get_status(client))) == [("15", "SYNCING")]


async def test_restart_forgets_exports_and_reuses_ids(
    sim: SenseSimulator, client: httpx.AsyncClient
) -> None:
    sim.add_export()
    sim.add_export()
    before = only_export(await get_status(client, exportid="1"))
    sim.restart()
    assert sim.export_ids() == []
    root = await get_status(client, exportid="2")
    assert root.get("errorcode") == "-57"
    assert root.findtext("description") == "Invalid exportid"
    root = await get_status(client)
    assert root.find("exports") is not None
    assert root.find("exports").get("count") == "0"  # type: ignore[union-attr]
    assert sim.add_export() == "1"
    after = only_export(await get_status(client, exportid="1"))
    assert after.findtext("exportid") == "1"
    assert [d.findtext("deviceid") for d in before.iter("device")] != [
        d.findtext("deviceid") for d in after.iter("device")
    ]


async def test_whole_list_and_repeatable_bytes(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    for _ in range(3):
        sim.add_export(duration=30)
    first = await client.get("/command", params=STATUS)
    second = await client.get("/command", params=STATUS)
    assert first.content == second.content
    assert first.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(first.content)
    assert root.find("exports").get("count") == "3"  # type: ignore[union-attr]
    assert [e.findtext("exportid") for e in root.iter("export")] == ["1", "2", "3"]
    clock.advance(3)
    third = await client.get("/command", params=STATUS)
    assert third.content != second.content
    assert third.content.count(b"<progress>10</progress>") == 3


async def test_list_follows_changes_within_one_tick(
    sim: SenseSimulator, client: httpx.AsyncClient
) -> None:
    sim.add_export(duration=0)
    assert len((await get_status(client)).findall("exports/export")) == 1
    sim.add_export()
    assert len((await get_status(client)).findall("exports/export")) == 2
    sim.remove_export("2")
    statuses = [e.findtext("status") for e in (await get_status(client)).iter("export")]
    assert statuses == ["COMPLETED", "REMOVED"]
    sim.restart()
    assert (await get_status(client)).findall("exports/export") == []


def test_add_export_ids_and_validation(sim: SenseSimulator) -> None:
    assert sim.add_export(export_id="1") == "1"
    assert sim.add_export() == "2"
    with pytest.raises(ValueError, match="in use"):
        sim.add_export(export_id="2")
    with pytest.raises(ValueError, match="at least 1"):
        sim.add_export(devices=0)
    with pytest.raises(ValueError, match="one duration per device"):
        sim.add_export(devices=3, duration=[1, 2])
    with pytest.raises(KeyError):
        sim.status_of("nope")
    with pytest.raises(ValueError, match="back in time"):
        ManualClock().advance(-1)


async def test_many_exports(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    for index in range(2000):
        sim.add_export(duration=10 + index % 7)
    clock.advance(1)
    root = await get_status(client)
    assert len(root.findall("exports/export")) == 2000
    clock.advance(100)
    root = await get_status(client)
    assert {e.findtext("status") for e in root.iter("export")} == {"COMPLETED"}


# -- requests -------------------------------------------------------------------------------


async def test_names_are_case_insensitive(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.add_export()
    response = await client.get("/command?COMMAND=GetExportVideoStatus&ExportID=1")
    assert only_export(ET.fromstring(response.content)).findtext("exportid") == "1"
    assert sim.requests[-1].query == {"command": "GetExportVideoStatus", "exportid": "1"}


@pytest.mark.parametrize("export_id", ["a&b c", "é", "<x> & 'y'", "100%"])
async def test_url_encoded_ids(
    sim: SenseSimulator, client: httpx.AsyncClient, export_id: str
) -> None:
    sim.add_export(export_id=export_id, path=f"D:\\Exports\\{export_id}")
    export = only_export(await get_status(client, exportid=export_id))
    assert export.findtext("exportid") == export_id
    assert export.findtext("path") == f"D:\\Exports\\{export_id}"
    whole = await get_status(client)
    assert [e.findtext("exportid") for e in whole.iter("export")] == [export_id]


async def test_error_codes(client: httpx.AsyncClient) -> None:
    root = await get_status(client, exportid="42")
    assert root.get("errorcode") == "-57"
    response = await client.get("/command", params={"command": "noSuchThing"})
    assert ET.fromstring(response.content).get("errorcode") == "-1"
    response = await client.get("/command")
    assert ET.fromstring(response.content).get("errorcode") == "-10"
    response = await client.post("/command?command=exportVideo", content=b"<export/>")
    assert ET.fromstring(response.content).get("errorcode") == "-10"
    response = await client.post("/webservice", content=b"<AuthenticateUser/>")
    assert ET.fromstring(response.content).get("errorcode") == "-10"
    response = await client.post("/webservice", content=b"<AuthenticateUserDigest/>")
    assert ET.fromstring(response.content).get("errorcode") == "-1"


async def test_path_prefix_and_404(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.add_export()
    response = await client.get("/vdg/api/command", params={**STATUS, "exportid": "1"})
    assert only_export(ET.fromstring(response.content)).findtext("exportid") == "1"
    assert (await client.get("/vdg/info")).status_code == 200
    for path in ["/", "/nothing", "/command/extra"]:
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/plain")


async def test_requests_are_recorded(
    sim: SenseSimulator, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    clock.advance(7)
    await client.post("/prefix/command?command=x&Exportid=a%26b", content=b"<body/>")
    assert sim.request_count == 1
    assert sim.requests == [
        SimRequest("POST", "/prefix/command", {"command": "x", "exportid": "a&b"}, b"<body/>", 7.0)
    ]


async def test_info(clock: ManualClock) -> None:
    clock.advance(90.5)
    for sim, version in [(SenseSimulator(clock=clock), "2.8.0"), (SenseSimulator(), "2.7.3")]:
        sim.version = version
        transport = httpx.ASGITransport(app=sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            response = await http.get("/info")
        root = ET.fromstring(response.content)
        assert root.tag == "apiinfo"
        assert root.findtext("version") == version
        utc = root.findtext("utc")
        assert utc is not None
        assert len(utc) == len("2026-01-01 00:01:30.500")
    assert utc != "2026-01-01 00:01:30.500"  # the wall clock one
    sim = SenseSimulator(clock=clock)
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        assert ET.fromstring((await http.get("/info")).content).findtext("utc") == (
            "2026-01-01 00:01:30.500"
        )
        sim.version = None
        assert (await http.get("/info")).status_code == 404
    assert SenseSimulator(clock=clock, version=None).version is None


# -- faults ---------------------------------------------------------------------------------


async def test_status_fault_fifo(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.add_export()
    sim.inject(Fault.STATUS, times=2, retry_after=1.5)
    sim.inject(Fault.STATUS, status=429)
    first = await client.get("/command", params=STATUS)
    assert first.status_code == 503
    assert first.headers["retry-after"] == "2"
    assert first.headers["content-type"].startswith("text/plain")
    assert (await client.get("/info")).status_code == 200  # faults are for /command only
    assert (await client.get("/command", params=STATUS)).status_code == 503
    third = await client.get("/command", params=STATUS)
    assert third.status_code == 429
    assert "retry-after" not in third.headers
    only_export(await get_status(client))
    assert [r.fault for r in sim.requests] == [Fault.STATUS, None, Fault.STATUS, Fault.STATUS, None]


async def test_html_fault(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.inject(Fault.HTML)
    response = await client.get("/command", params=STATUS)
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert b"<title>502 Bad Gateway</title>" in response.content
    assert b"nginx" in response.content


async def test_truncated_and_malformed_faults(
    sim: SenseSimulator, client: httpx.AsyncClient
) -> None:
    sim.add_export()
    full = (await client.get("/command", params=STATUS)).content
    sim.inject(Fault.TRUNCATED)
    sim.inject(Fault.MALFORMED)
    truncated = await client.get("/command", params=STATUS)
    assert truncated.status_code == 200
    assert truncated.content == full[: len(full) // 2]
    assert truncated.headers["content-length"] == str(len(truncated.content))
    malformed = await client.get("/command", params=STATUS)
    assert malformed.status_code == 200
    assert malformed.headers["content-type"] == "text/xml; charset=utf-8"
    for body in (truncated.content, malformed.content):
        with pytest.raises(ET.ParseError):
            ET.fromstring(body)


async def test_reset_fault(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.add_export()
    sim.inject(Fault.RESET)
    with pytest.raises(ConnectionResetError):
        await client.get("/command", params=STATUS)
    assert sim.requests[-1].fault is Fault.RESET
    only_export(await get_status(client))


async def test_latency_fault(sim: SenseSimulator, client: httpx.AsyncClient) -> None:
    sim.inject(Fault.LATENCY, seconds=60)
    with anyio.move_on_after(0.05) as scope:
        await client.get("/command", params=STATUS)
    assert scope.cancelled_caught
    sim.inject(Fault.LATENCY, seconds=0.001)
    root = await get_status(client)
    assert root.get("errorcode") == "0"
    assert [r.fault for r in sim.requests] == [Fault.LATENCY, Fault.LATENCY]


async def test_hang_times_out_then_cleans_up(
    sim: SenseSimulator, client: httpx.AsyncClient
) -> None:
    sim.inject(Fault.HANG)
    with anyio.move_on_after(0.05) as scope:
        await client.get("/command", params=STATUS)
    assert scope.cancelled_caught
    assert sim.hung_count == 0
    assert (await get_status(client)).get("errorcode") == "0"


@pytest.mark.parametrize("from_thread", [False, True])
async def test_hang_until_released(
    sim: SenseSimulator, client: httpx.AsyncClient, from_thread: bool
) -> None:
    sim.add_export()
    sim.inject(Fault.HANG, times=2)
    answers: list[httpx.Response] = []

    async def fetch() -> None:
        answers.append(await client.get("/command", params=STATUS))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(fetch)
            group.start_soon(fetch)
            await anyio.wait_all_tasks_blocked()
            assert answers == []
            assert sim.hung_count == 2
            if from_thread:
                await anyio.to_thread.run_sync(sim.release_hung)
            else:
                sim.release_hung()
    assert [a.status_code for a in answers] == [200, 200]
    assert only_export(ET.fromstring(answers[0].content)).findtext("exportid") == "1"


async def test_inject_random_is_deterministic() -> None:
    async def run(seed: int) -> list[Fault | None]:
        sim = SenseSimulator(clock=ManualClock())
        sim.inject_random(0.5, seed=seed, faults=[Fault.STATUS, Fault.HTML, Fault.MALFORMED])
        transport = httpx.ASGITransport(app=sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            for _ in range(40):
                await http.get("/command", params=STATUS)
            sim.inject_random(0)
            assert (await http.get("/command", params=STATUS)).status_code == 200
        return [r.fault for r in sim.requests[:-1]]

    first = await run(1)
    assert first == await run(1)
    assert first != await run(2)
    assert None in first
    assert {Fault.STATUS, Fault.HTML, Fault.MALFORMED} <= set(first)


def test_fault_argument_validation(sim: SenseSimulator) -> None:
    with pytest.raises(ValueError, match="times"):
        sim.inject(Fault.STATUS, times=0)
    with pytest.raises(ValueError, match="status"):
        sim.inject(Fault.STATUS, status=42)
    with pytest.raises(ValueError, match="rate"):
        sim.inject_random(1.5)
    with pytest.raises(ValueError, match="at least one"):
        sim.inject_random(0.5, faults=[])


# -- over real HTTP -------------------------------------------------------------------------


def test_served_by_uvicorn() -> None:
    sim = SenseSimulator(clock=ManualClock())
    sim.add_export(export_id="a&b c")
    with serve(sim) as url:
        with httpx.Client(base_url=f"{url}/prefix", timeout=5) as http:
            response = http.get("/command", params={**STATUS, "exportid": "a&b c"})
            assert response.headers["content-type"] == "text/xml; charset=utf-8"
            assert only_export(ET.fromstring(response.content)).findtext("exportid") == "a&b c"
            sim.inject(Fault.STATUS, retry_after=3)
            response = http.get("/command", params=STATUS)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "3"
            assert http.get("/info").status_code == 200
            sim.inject(Fault.RESET)
            with pytest.raises(httpx.RemoteProtocolError):
                http.get("/command", params=STATUS)
            assert http.get("/command", params=STATUS).status_code == 200
