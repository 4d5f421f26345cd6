"""HTTPS over real loopback: Client(verify=...) with a private CA made by trustme."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

import vdgexport
from vdgexport import ExportCompleted, TransportError
from vdgexport.testing import ManualClock, SenseSimulator

from ._servers import serve


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="VMS private CA")


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def server_cert(ca: trustme.CA, directory: Path, host: str) -> Path:
    """A key and certificate chain for ``host``, signed by ``ca``, in one PEM file."""
    path = directory / f"{host}.pem"
    ca.issue_cert(host).private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


@pytest.fixture
def sim(clock: ManualClock) -> SenseSimulator:
    return SenseSimulator(clock=clock)


@pytest.fixture
def https_url(ca: trustme.CA, sim: SenseSimulator, tmp_path: Path) -> Iterator[str]:
    """The simulator over HTTPS on 127.0.0.1, with a certificate of the private CA."""
    with serve(sim, ssl_certfile=server_cert(ca, tmp_path, "127.0.0.1")) as url:
        yield url


@asynccontextmanager
async def counting_proxy(url: str | None) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP relay in front of ``url`` that counts the connections made to it: how many
    times a client tried (TLS passes through it untouched). ``None``: an outage, every
    connection is closed at once."""
    connections: list[int] = []

    async def relay(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # either side hung up: the other goes too

    async def handle(downstream: anyio.abc.SocketStream) -> None:
        connections.append(1)
        async with downstream:
            if url is None:
                return
            async with await anyio.connect_tcp("127.0.0.1", int(url.rsplit(":", 1)[1])) as up:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(relay, downstream, up)
                    await relay(up, downstream)
                    tasks.cancel_scope.cancel()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, handle)
        yield f"https://127.0.0.1:{port}", connections
        tasks.cancel_scope.cancel()


async def drain(watch: vdgexport.Watch) -> None:
    async with watch as events:
        async for _ in events:
            pass


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.mark.parametrize("kind", ["str", "Path", "SSLContext"])
async def test_a_private_ca_is_trusted_as_a_path_or_a_context(
    kind: str, https_url: str, ca: trustme.CA, ca_file: Path, sim: SenseSimulator
) -> None:
    verify: Any = {"str": str(ca_file), "Path": ca_file, "SSLContext": trusting(ca)}[kind]
    eid = sim.add_export(devices=2)
    async with vdgexport.Client(https_url, verify=verify) as client:
        export = await client.get_export(eid)
        assert [e.export_id for e in await client.list_exports()] == [eid]
    assert len(export.devices) == 2


async def test_a_watch_over_https_sees_the_export_complete(
    https_url: str, ca_file: Path, sim: SenseSimulator, clock: ManualClock
) -> None:
    eid = sim.add_export(duration=10)
    async with vdgexport.Client(https_url, verify=ca_file, poll_interval=0.01) as client:
        seen = []
        with anyio.fail_after(10):
            async with client.watch(eid) as events:
                async for event in events:
                    seen.append(event)
                    clock.advance(5)
    assert isinstance(seen[-1], ExportCompleted)


async def test_verify_false_accepts_any_certificate(https_url: str, sim: SenseSimulator) -> None:
    eid = sim.add_export()
    async with vdgexport.Client(https_url, verify=False) as client:
        assert (await client.get_export(eid)).export_id == eid


@pytest.mark.parametrize("call", ["get_export", "list_exports", "server_info"])
async def test_an_unknown_ca_is_refused_at_once_never_retried(https_url: str, call: str) -> None:
    async with counting_proxy(https_url) as (url, connections):
        async with vdgexport.Client(url, poll_interval=0.01) as client:  # the system's CAs
            with anyio.fail_after(5), pytest.raises(TransportError) as caught:
                await getattr(client, call)(*(["1"] if call == "get_export" else []))
    assert caught.value.certificate_refused
    assert "certificate" in str(caught.value)
    assert "verify" in str(caught.value)
    assert len(connections) == 1


async def test_a_certificate_for_another_host_is_refused(
    ca: trustme.CA, ca_file: Path, sim: SenseSimulator, tmp_path: Path
) -> None:
    with serve(sim, ssl_certfile=server_cert(ca, tmp_path, "vdg.example")) as https_url:
        async with counting_proxy(https_url) as (url, connections):
            async with vdgexport.Client(url, verify=ca_file, poll_interval=0.01) as client:
                with pytest.raises(TransportError) as caught:
                    await client.list_exports()
    assert caught.value.certificate_refused
    assert len(connections) == 1


async def test_a_refused_certificate_ends_a_watch_instead_of_riding_through(
    https_url: str, sim: SenseSimulator
) -> None:
    eid = sim.add_export()
    async with counting_proxy(https_url) as (url, connections):
        # Riding through would go on forever (outage_timeout=None) and trip fail_after.
        async with vdgexport.Client(url, poll_interval=0.01, outage_timeout=None) as client:
            with anyio.fail_after(5), pytest.raises(TransportError) as caught:
                await drain(client.watch(eid))
    assert caught.value.certificate_refused
    assert len(connections) == 1


async def test_a_broken_handshake_is_still_transient(ca_file: Path) -> None:
    """A server that hangs up is not a refused certificate: it is retried as before."""
    async with counting_proxy(None) as (url, connections):
        async with vdgexport.Client(url, verify=ca_file, poll_interval=0.001) as client:
            with pytest.raises(TransportError) as caught:
                await client.list_exports()
    assert not caught.value.certificate_refused
    assert len(connections) == 3  # every attempt of a one-shot call


def test_a_ca_bundle_that_cannot_be_read_is_a_value_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=r"missing\.pem"):
        vdgexport.Client("https://vdg.example", verify=missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(ValueError, match=r"garbage\.pem"):
        vdgexport.Client("https://vdg.example", verify=str(garbage))
    with pytest.raises(TypeError, match="verify"):
        vdgexport.Client("https://vdg.example", verify=1)  # type: ignore[arg-type]


def test_sync_client_takes_the_same_verify(
    https_url: str, ca_file: Path, sim: SenseSimulator
) -> None:
    eid = sim.add_export()
    with vdgexport.SyncClient(https_url, verify=ca_file) as client:
        assert client.get_export(eid).export_id == eid
    with vdgexport.SyncClient(https_url) as client, pytest.raises(TransportError) as caught:
        client.get_export(eid)
    assert caught.value.certificate_refused
