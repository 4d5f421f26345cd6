"""The SensePluginManager simulator: an ASGI 3 app with exports that follow a clock."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

import anyio
import anyio.from_thread
import anyio.lowlevel

from ._asgi import TEXT_TYPE, XML_TYPE, Receive, Response, Scope, Send, read_body, serve_lifespan
from ._exports import SimExport, make_uid
from ._faults import DEFAULT_RANDOM_FAULTS, Fault, FaultPlan, FaultSpec, fault_response

__all__ = ["SenseSimulator", "SimRequest"]

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_CLOCK_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
_ERRORS = {
    -1: "Not implemented",
    -10: "Not enough parameters",
    -57: "Invalid exportid",
}


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request the simulator received, recorded even when a fault answered it.

    Attributes:
        method: the HTTP method, e.g. ``"GET"``.
        path: the URL path as received, base prefix included (e.g. ``"/vdg/command"``).
        query: the query parameters, URL-decoded, names lower-cased (first one wins).
        body: the request body.
        time: the simulator clock when the request arrived.
        fault: the fault served to it, or ``None`` for a normal answer.
    """

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    time: float
    fault: Fault | None = None


@dataclass(slots=True)
class _Hung:
    event: anyio.Event
    token: anyio.lowlevel.EventLoopToken
    thread: int = field(default_factory=threading.get_ident)


def _parse_query(raw: bytes) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        query.setdefault(name.lower(), value)
    return query


def _xml(body: bytes) -> Response:
    return Response(200, XML_TYPE, _DECLARATION + body)


def _error(code: int) -> Response:
    description = _ERRORS.get(code, "General error")
    body = f'<result errorcode="{code}"><description>{description}</description></result>'
    return _xml(body.encode())


_LIST_HEAD = _DECLARATION + b'<result errorcode="0"><exports count="%d">'
_LIST_TAIL = b"</exports></result>"
_NOT_FOUND = Response(404, TEXT_TYPE, b"404 Not Found\n")


class SenseSimulator:
    """A faithful, stateful SensePluginManager, served as an ASGI 3 app.

    Exports advance with ``clock`` (``time.monotonic`` unless given; it must never go
    back): pass a :class:`~vdgexport.testing.ManualClock` so tests never sleep. Routes go
    by the last path segment, so a base path prefix works (``http://host/vdg/command``)::

        sim = SenseSimulator(clock=(clock := ManualClock()))
        export_id = sim.add_export(devices=2, duration=60)
        transport = httpx.ASGITransport(app=sim)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            clock.advance(30)
            r = await http.get("/command", params={"command": "getExportVideoStatus"})

    Attributes:
        requests: every request received, in order (faulted ones included).
        version: what ``/info`` reports; ``None`` answers 404 there (Sense before 2.6.1).
        credentials: the ``(username, password)`` a login would need (not enforced yet).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] | None = None,
        version: str | None = "2.8.0",
        credentials: tuple[str, str] | None = None,
    ) -> None:
        """Make an empty simulator: no exports, no faults."""
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._wall_clock = clock is None
        self.version = version
        # TODO(login): enforce credentials through /webservice AuthenticateUser and the
        # sessionkey cookie; requests are not authenticated yet.
        self.credentials = credentials
        self.requests: list[SimRequest] = []
        self._exports: dict[str, SimExport] = {}
        self._next_id = 1
        self._devices_made = 0
        self._faults = FaultPlan()
        self._hung: list[_Hung] = []
        self._generation = 0  # moves on whenever exports are added, removed or paused
        self._list_cache: tuple[int, float, Response] | None = None

    # -- exports ---------------------------------------------------------------------------

    def add_export(
        self,
        *,
        devices: int = 1,
        duration: float | Sequence[float] = 60.0,
        path: str | None = None,
        bandwidth_kbps: float = 8000.0,
        pending: float = 0.0,
        export_id: str | None = None,
    ) -> str:
        """Add an export and return its id.

        Ids are numbered from a counter (``"1"``, ``"2"``, ...) unless ``export_id`` is given
        (any text, e.g. ``"a&b c"``). Each of the ``devices`` devices goes from 0 to 100
        linearly over its ``duration`` seconds of simulator time (a sequence gives one
        duration per device and sets the number of devices), after ``pending`` seconds in
        ``PENDING``. Device UIDs are deterministic and never reused, not even after
        :meth:`restart`, so a reused id names an export with other devices.

        Example::

            >>> sim = SenseSimulator(clock=ManualClock())
            >>> sim.add_export(duration=[10, 20], pending=5)
            '1'

        Raises:
            ValueError: bad counts, durations, bandwidth, pending time, or an id in use.
        """
        durations = self._durations(devices, duration)
        if bandwidth_kbps < 0 or pending < 0:
            raise ValueError("bandwidth_kbps and pending must not be negative")
        if export_id is None:
            while str(self._next_id) in self._exports:
                self._next_id += 1
            export_id = str(self._next_id)
            self._next_id += 1
        elif export_id in self._exports:
            raise ValueError(f"export id {export_id!r} is already in use")
        uids = [self._new_device() for _ in durations]
        self._exports[export_id] = SimExport(
            export_id,
            path=path if path is not None else f"D:\\Exports\\export_{export_id}",
            bandwidth_kbps=bandwidth_kbps,
            pending=pending,
            durations=durations,
            uids=uids,
            now=self._clock(),
        )
        self._generation += 1
        return export_id

    @staticmethod
    def _durations(devices: int, duration: float | Sequence[float]) -> tuple[float, ...]:
        if isinstance(duration, (int, float)):
            if devices < 1:
                raise ValueError(f"devices must be at least 1, not {devices!r}")
            durations = (float(duration),) * devices
        else:
            durations = tuple(float(d) for d in duration)
            if not durations or devices not in (1, len(durations)):
                raise ValueError("give one duration per device")
        if any(not math.isfinite(d) or d < 0 for d in durations):
            raise ValueError(f"durations must be finite and not negative: {durations!r}")
        return durations

    def _new_device(self) -> tuple[str, str]:
        self._devices_made += 1
        server = 1 + (self._devices_made - 1) // 16
        return make_uid("server", server), make_uid("device", self._devices_made)

    def _export(self, export_id: str) -> SimExport:
        try:
            return self._exports[export_id]
        except KeyError:
            raise KeyError(f"no export {export_id!r} in the simulator") from None

    def remove_export(self, export_id: str) -> None:
        """Remove an export: its status becomes ``REMOVED`` (it stays listed), progress stops.

        Raises:
            KeyError: no such export.
        """
        self._export(export_id).remove(self._clock())
        self._generation += 1

    def pause(self, export_id: str) -> None:
        """Stop an export's progress where it is (a stall), until :meth:`resume`."""
        self._export(export_id).pause(self._clock())
        self._generation += 1

    def resume(self, export_id: str) -> None:
        """Let a paused export's progress move again."""
        self._export(export_id).resume(self._clock())
        self._generation += 1

    def restart(self) -> None:
        """Simulate a PluginManager restart: every export is forgotten, ids start again at 1.

        Queued faults, hung requests and :attr:`requests` are kept.
        """
        self._exports.clear()
        self._generation += 1
        self._next_id = 1

    def export_ids(self) -> list[str]:
        """The ids of the current exports, in the order they were added."""
        return list(self._exports)

    def status_of(self, export_id: str) -> str:
        """The ground truth: ``"PENDING"``, ``"SYNCING"``, ``"COMPLETED"`` or ``"REMOVED"``.

        Raises:
            KeyError: no such export.
        """
        return self._export(export_id).status(self._clock())

    # -- faults ----------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        seconds: float = 0.0,
    ) -> None:
        """Serve ``fault`` to the next ``times`` requests to ``/command`` (first in, first out).

        ``status`` and ``retry_after`` shape a :attr:`Fault.STATUS` answer, ``seconds`` the
        delay of :attr:`Fault.LATENCY`. Example::

            sim.inject(Fault.STATUS, status=503, retry_after=2, times=2)
        """
        spec = FaultSpec(fault, status=status, retry_after=retry_after, seconds=seconds)
        self._faults.inject(spec, times)

    def inject_random(
        self, rate: float, *, seed: int = 0, faults: Sequence[Fault] = DEFAULT_RANDOM_FAULTS
    ) -> None:
        """From now on fail each ``/command`` request with probability ``rate``.

        The fault is a random one of ``faults``; the draws come from ``random.Random(seed)``,
        so a run is reproducible. Queued :meth:`inject` faults go first. ``rate=0`` turns it off.
        """
        self._faults.set_random(rate, seed, faults)

    def release_hung(self) -> None:
        """Let every request held by :attr:`Fault.HANG` answer now (callable from any thread)."""
        hung, self._hung = self._hung, []
        for held in hung:
            if held.thread == threading.get_ident():
                held.event.set()
            else:
                anyio.from_thread.run_sync(held.event.set, token=held.token)

    @property
    def hung_count(self) -> int:
        """How many requests :attr:`Fault.HANG` holds right now."""
        return len(self._hung)

    @property
    def request_count(self) -> int:
        """How many requests the simulator has received."""
        return len(self.requests)

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI 3 connection (``http`` and ``lifespan``)."""
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path: str = scope.get("path", "/")
        name = path.rstrip("/").rsplit("/", 1)[-1].lower()
        query = _parse_query(scope.get("query_string", b""))
        spec = self._faults.draw() if name == "command" else None
        method: str = scope.get("method", "GET")
        fault = spec.fault if spec is not None else None
        self.requests.append(SimRequest(method, path, query, body, self._clock(), fault))
        if spec is not None:
            await self._serve_fault(spec, name, query, send)
            return
        await self._route(name, query).send(send)

    async def _serve_fault(
        self, spec: FaultSpec, name: str, query: dict[str, str], send: Send
    ) -> None:
        if spec.fault is Fault.LATENCY:
            await anyio.sleep(spec.seconds)
        elif spec.fault is Fault.HANG:
            await self._hang()
        elif spec.fault is Fault.RESET:
            await self._route(name, query).send_then_reset(send)
            return
        elif spec.fault is Fault.TRUNCATED:
            await self._route(name, query).send_truncated(send)
            return
        else:
            await fault_response(spec).send(send)
            return
        await self._route(name, query).send(send)

    async def _hang(self) -> None:
        held = _Hung(anyio.Event(), anyio.lowlevel.current_token())
        self._hung.append(held)
        try:
            await held.event.wait()
        finally:
            if held in self._hung:
                self._hung.remove(held)

    def _route(self, name: str, query: dict[str, str]) -> Response:
        if name == "command":
            return self._command(query)
        if name == "info":
            return self._info()
        if name == "webservice":
            # TODO(login): answer AuthenticateUser / AuthenticateUserDigest with a session key.
            return _error(-1)
        return _NOT_FOUND

    def _command(self, query: dict[str, str]) -> Response:
        command = query.get("command")
        if not command:
            return _error(-10)
        command = command.lower()
        if command == "getexportvideostatus":
            return self._export_status(query.get("exportid"))
        # TODO(exportVideo): create (POST body) and remove exports; answers -1 for now.
        return _error(-1)

    def _export_status(self, export_id: str | None) -> Response:
        now = self._clock()
        if export_id is None:
            return self._export_list(now)
        export = self._exports.get(export_id)
        if export is None:
            return _error(-57)
        part = export.cache if now < export.valid_until else export.refresh(now)
        return Response(200, XML_TYPE, b"".join([_LIST_HEAD % 1, part, _LIST_TAIL]))

    def _export_list(self, now: float) -> Response:
        """The whole list: each export's cached bytes, and the joined body while none moves."""
        cached = self._list_cache
        if cached is not None and cached[0] == self._generation and now < cached[1]:
            return cached[2]
        exports = self._exports.values()
        parts = [e.cache if now < e.valid_until else e.refresh(now) for e in exports]
        body = b"".join([_LIST_HEAD % len(parts), *parts, _LIST_TAIL])
        response = Response(200, XML_TYPE, body)
        until = min((e.valid_until for e in exports), default=math.inf)
        self._list_cache = (self._generation, until, response)
        return response

    def _info(self) -> Response:
        if self.version is None:
            return _NOT_FOUND
        if self._wall_clock:
            utc = datetime.now(timezone.utc)
        else:
            utc = _CLOCK_EPOCH + timedelta(seconds=self._clock())
        stamp = utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
        body = f"<apiinfo><utc>{stamp}</utc><version>{self.version}</version></apiinfo>"
        return _xml(body.encode())

    def __repr__(self) -> str:
        return f"<SenseSimulator exports={len(self._exports)} requests={len(self.requests)}>"
