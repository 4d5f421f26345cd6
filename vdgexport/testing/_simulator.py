"""The SensePluginManager simulator: an ASGI 3 app with exports that follow a clock."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

from ._answers import DECLARATION, NOT_FOUND, UNAUTHORIZED, error, ok, xml
from ._asgi import XML_TYPE, Receive, Response, Scope, Send, read_body, serve_lifespan
from ._export_video import NewExport, read_export_video
from ._exports import SimExport, durations_for, make_uid
from ._fault_control import FaultControl
from ._faults import FaultPlan
from ._requests import Hung, SimRequest, parse_query
from ._sessions import Sessions

__all__ = ["SenseSimulator", "SimRequest"]

_CLOCK_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


_LIST_HEAD = DECLARATION + b'<result errorcode="0"><exports count="%d">'
_LIST_TAIL = b"</exports></result>"


class SenseSimulator(FaultControl):
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
        credentials: the ``(username, password)`` that ``AuthenticateUser`` at
            ``/webservice`` needs; when set, every ``/command`` needs the ``sessionkey``
            cookie of a live session, or gets HTTP 401 (see :meth:`expire_sessions`).
        export_rate: seconds of recording an ``exportVideo`` export writes per second of
            simulator time: a device with a 5-minute span takes 30 s at the default 10.
        export_pending: seconds an ``exportVideo`` export waits in ``PENDING`` first.
        remove_any_state: the vendor documents removal (through ``exportVideo``) for pending
            exports only, so by default removing an export that is neither ``SYNCING`` nor
            ``PENDING`` answers error -18 with a description, and removing one already
            ``REMOVED`` answers -57. ``True`` removes an export in any state: a guess at a
            more lenient server, not documented behaviour.
        session_error: with :attr:`credentials`, a command without a live session gets
            HTTP 401 (``None``, the default), or HTTP 200 with this negative errorcode: the
            vendor says every answer is XML, so an expired session may look like that.
        session_cookie: the login answer gives the key in a ``Set-Cookie: sessionkey=...``
            header instead of a ``<sessionkey>`` element.
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
        self.credentials = credentials
        self.export_rate = 10.0
        self.export_pending = 0.0
        self.remove_any_state = False
        self.session_error: int | None = None
        self.session_cookie = False
        self._sessions = Sessions()
        self.requests: list[SimRequest] = []
        self._exports: dict[str, SimExport] = {}
        self._next_id = 1
        self._devices_made = 0
        self._faults = FaultPlan()
        self._hung: list[Hung] = []
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
        durations = durations_for(devices, duration)
        if bandwidth_kbps < 0 or pending < 0:
            raise ValueError("bandwidth_kbps and pending must not be negative")
        if export_id is None:
            export_id = self._new_id()
        elif export_id in self._exports:
            raise ValueError(f"export id {export_id!r} is already in use")
        uids = [self._new_device() for _ in durations]
        self._store(export_id, path, bandwidth_kbps, pending, durations, uids)
        return export_id

    def _new_id(self) -> str:
        while str(self._next_id) in self._exports:
            self._next_id += 1
        self._next_id += 1
        return str(self._next_id - 1)

    def _store(
        self,
        export_id: str,
        path: str | None,
        bandwidth_kbps: float,
        pending: float,
        durations: Sequence[float],
        uids: Sequence[tuple[str, str]],
        spans: Sequence[tuple[str, str]] | None = None,
    ) -> None:
        self._exports[export_id] = SimExport(
            export_id,
            path=path if path is not None else f"D:\\Exports\\export_{export_id}",
            bandwidth_kbps=bandwidth_kbps,
            pending=pending,
            durations=durations,
            uids=uids,
            now=self._clock(),
            spans=spans,
        )
        self._generation += 1

    def _create(self, new: NewExport) -> str:
        """Make the export an ``exportVideo`` POST asked for; return its id."""
        export_id = self._new_id()
        rate = self.export_rate
        self._store(
            export_id,
            new.path,
            8000.0 if new.bandwidth_kbps is None else new.bandwidth_kbps,
            self.export_pending,
            [span.seconds / rate if rate > 0 else 0.0 for span in new.devices],
            [(span.server_id, span.device_id) for span in new.devices],
            [(span.start, span.end) for span in new.devices],
        )
        return export_id

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

    def expire_sessions(self) -> None:
        """Expire every login session: each client's next command gets HTTP 401."""
        self._sessions.expire()

    @property
    def session_keys(self) -> frozenset[str]:
        """The keys of the live sessions (tests check that none reaches a log)."""
        return self._sessions.keys

    @property
    def login_count(self) -> int:
        """How many logins at ``/webservice`` succeeded."""
        return self._sessions.logins

    def export_ids(self) -> list[str]:
        """The ids of the current exports, in the order they were added."""
        return list(self._exports)

    def status_of(self, export_id: str) -> str:
        """The ground truth: ``"PENDING"``, ``"SYNCING"``, ``"COMPLETED"`` or ``"REMOVED"``.

        Raises:
            KeyError: no such export.
        """
        return self._export(export_id).status(self._clock())

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
        query = parse_query(scope.get("query_string", b""))
        spec = self._faults.draw() if name == "command" else None
        method: str = scope.get("method", "GET")
        fault = spec.fault if spec is not None else None
        request = SimRequest(method, path, query, body, self._clock(), fault)
        self.requests.append(request)
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])

        def answer() -> Response:
            return self._route(name, request, headers)

        if spec is not None:
            await self._serve_fault(spec, answer, send)
            return
        await answer().send(send)

    def _route(
        self, name: str, request: SimRequest, headers: list[tuple[bytes, bytes]]
    ) -> Response:
        if name == "command":
            if not self._sessions.allows(headers, self.credentials):
                return UNAUTHORIZED if self.session_error is None else error(self.session_error)
            return self._command(request)
        if name == "info":
            return self._info()
        if name == "webservice":
            return self._sessions.login(request.body, self.credentials, self.session_cookie)
        return NOT_FOUND

    def _command(self, request: SimRequest) -> Response:
        command = request.query.get("command")
        if not command:
            return error(-10)
        command = command.lower()
        if command == "getexportvideostatus":
            return self._export_status(request.query.get("exportid"))
        if command == "exportvideo":
            return self._export_video(request.body)
        return error(-1)

    def _export_video(self, body: bytes) -> Response:
        """Create an export (``<devices>``), or remove one (``<exportid>`` + ``<remove>``)."""
        asked = read_export_video(body)
        if isinstance(asked, int):
            return error(asked)
        if isinstance(asked, NewExport):
            return ok(f"<exportid>{escape(self._create(asked))}</exportid>")
        export = self._exports.get(asked.export_id)
        if export is None or (export.removed and not self.remove_any_state):
            return error(-57)
        status = export.status(self._clock())
        if status not in ("SYNCING", "PENDING") and not self.remove_any_state:
            return error(-18, f"export {asked.export_id} is {status}: only pending exports")
        if not export.removed:
            self.remove_export(asked.export_id)
        return ok()

    def _export_status(self, export_id: str | None) -> Response:
        now = self._clock()
        if export_id is None:
            return self._export_list(now)
        export = self._exports.get(export_id)
        if export is None:
            return error(-57)
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
            return NOT_FOUND
        if self._wall_clock:
            utc = datetime.now(timezone.utc)
        else:
            utc = _CLOCK_EPOCH + timedelta(seconds=self._clock())
        stamp = utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
        body = f"<apiinfo><utc>{stamp}</utc><version>{self.version}</version></apiinfo>"
        return xml(body.encode())

    def __repr__(self) -> str:
        return f"<SenseSimulator exports={len(self._exports)} requests={len(self.requests)}>"
