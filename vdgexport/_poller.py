"""The poller: one task per client, one request per tick, whatever the number of watches."""

from __future__ import annotations

import logging
import random
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from ._diff import Tracker
from ._events import TERMINAL_TYPES, ExportVanished, VanishReason, WatchEvent
from ._exceptions import ClientClosedError, ExportNotFoundError, VdgError
from ._models import Export, ExportList
from ._retry import backoff, is_transient

if TYPE_CHECKING:
    from ._watch import Watch

__all__ = ["Poller"]

logger = logging.getLogger("vdgexport")

#: What one extra request costs, counted in exports parsed: the whole list is fetched when
#: it is expected to cost less than one request per watched id.
REQUEST_COST = 50
#: Per-id requests in flight at once, when a tick needs several.
PER_ID_CONCURRENCY = 8
#: In per-id mode, the whole list is fetched again after this many ticks, to learn whether
#: it became short enough to be the cheaper request.
LIST_REFRESH_TICKS = 60
#: The pace stretches by a random factor in this range after each tick without change.
STRETCH = (1.25, 1.75)

FetchOne = Callable[[str], Awaitable[Export]]
FetchList = Callable[[], Awaitable[ExportList]]
Ref = weakref.ref["Watch"]


@dataclass(slots=True)
class _Entry:
    tracker: Tracker
    subs: dict[Ref, None] = field(default_factory=dict)
    fresh: dict[Ref, None] = field(default_factory=dict)
    #: When this id's own requests began to fail (real time), for ``outage_timeout``.
    failing_since: float | None = None


class Poller:
    """Serves every watch of a client from one task and one request per tick.

    It is handed what it needs (fetch functions, a way to start its task, a clock) and
    imports nothing of the client. It runs only while some watch is open.
    """

    def __init__(
        self,
        *,
        fetch_one: FetchOne,
        fetch_list: FetchList,
        spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None],
        poll_interval: float,
        max_poll_interval: float,
        outage_timeout: float | None,
        stall_after: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._fetch_one, self._fetch_list, self._spawn = fetch_one, fetch_list, spawn
        self._min, self._max = poll_interval, max(poll_interval, max_poll_interval)
        self._outage_timeout, self._stall_after, self._clock = outage_timeout, stall_after, clock
        self._entries: dict[str, _Entry] = {}
        self._interval = poll_interval
        self._failures = 0
        self._outage_since: float | None = None
        self._list_size: int | None = None
        self._last_list: ExportList | None = None
        self._asked = False  # whether the last tick needed per-id requests beside the list
        self._ticks_since_list = 0
        self._busy = False  # delivering events: a collected watch is pruned afterwards
        self._dead: list[tuple[str, Ref]] = []
        self._wake = anyio.Event()
        self._stopped = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._running = False
        self._closed = False

    @property
    def watched(self) -> int:
        """How many export ids are being polled."""
        return len(self._entries)

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, watch: Watch) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if not self._running:
            self._stopped = anyio.Event()
            self._spawn(self._run)  # raises if the client cannot own a task
            self._running = True
        entry = self._entries.get(watch.export_id)
        if entry is None:
            now = self._clock()
            entry = self._entries[watch.export_id] = _Entry(
                Tracker(watch.export_id, self._stall_after, now, last_move=now)
            )
        entry.fresh[weakref.ref(watch, partial(self._collected, watch.export_id))] = None
        self._wake.set()

    def unsubscribe(self, watch: Watch) -> None:
        entry = self._entries.get(watch.export_id)
        if entry is not None:
            ref: Ref = weakref.ref(watch)
            entry.subs.pop(ref, None)
            entry.fresh.pop(ref, None)
            self._prune(watch.export_id, entry)

    def _collected(self, export_id: str, ref: Ref) -> None:
        """A watch was dropped without being closed (``break`` out of ``async for``).

        The garbage collector may call this in the middle of delivering events (any
        allocation can run it); the entry is then pruned once the delivery is done.
        """
        if self._busy:
            self._dead.append((export_id, ref))
            return
        entry = self._entries.get(export_id)
        if entry is not None:
            entry.subs.pop(ref, None)
            entry.fresh.pop(ref, None)
            self._prune(export_id, entry)

    def _prune(self, export_id: str, entry: _Entry) -> None:
        if not entry.subs and not entry.fresh and self._entries.get(export_id) is entry:
            del self._entries[export_id]
            if not self._entries:
                self._wake.set()

    async def aclose(self) -> None:
        """Stop polling, wait for the task to end, and end every open watch with an error."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
        if self._running:
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()
        self._fail_all(ClientClosedError("the client was closed while this export was watched"))

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                while self._entries and not self._closed:
                    self._wake = anyio.Event()
                    delay = await self._tick_safely()
                    if not self._entries:
                        break
                    with anyio.move_on_after(delay):
                        await self._wake.wait()
        finally:
            self._running = False
            self._scope = None
            self._stopped.set()

    async def _tick_safely(self) -> float:
        try:
            try:
                changed = await self._tick()
            except VdgError as exc:
                return self._failed(exc)
        except Exception as exc:  # a bug must not kill the client's task group
            logger.exception("watch poller failed")
            self._fail_all(exc)
            return self._min
        self._failures, self._outage_since = 0, None
        if changed:
            self._interval = self._min
        else:
            self._interval = min(self._max, self._interval * random.uniform(*STRETCH))
        return self._interval

    def _failed(self, exc: VdgError) -> float:
        if not is_transient(exc):
            logger.warning("watch failed permanently: %s", exc)
            self._fail_all(exc)
            return self._min
        now = anyio.current_time()
        if self._outage_since is None:
            self._outage_since = now
        self._failures += 1
        limit = self._outage_timeout
        if limit is not None and now - self._outage_since >= limit:
            logger.warning("outage longer than %g s: %s", limit, exc)
            self._fail_all(exc)
            self._failures, self._outage_since = 0, None
            return self._min
        logger.info("poll failed (%s); backing off", exc)
        return backoff(self._failures, self._min, self._max, exc)

    def _fail_all(self, exc: BaseException, ids: Iterable[str] | None = None) -> None:
        with self._delivering():
            for export_id in list(self._entries) if ids is None else ids:
                entry = self._entries.pop(export_id, None)
                if entry is None:
                    continue
                for ref in (*entry.subs, *entry.fresh):
                    watch = ref()
                    if watch is not None:
                        watch.fail(exc)

    @contextmanager
    def _delivering(self) -> Iterator[None]:
        if self._busy:  # already inside a delivery
            yield
            return
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            dead, self._dead = self._dead, []
            for export_id, ref in dead:
                self._collected(export_id, ref)

    async def _tick(self) -> bool:
        ids = list(self._entries)
        results: dict[str, Export | None] = {}
        if self._use_list(len(ids)):
            exports = await self._fetch_list()
            self._list_size, self._ticks_since_list = len(exports), 0
            unchanged = exports is self._last_list and not self._asked
            if unchanged and not any(e.fresh for e in self._entries.values()):
                return self._stall_checks()
            self._last_list = exports
            asked = []
            for export_id in ids:
                found = results[export_id] = exports.get(export_id)
                if found is None:
                    asked.append(export_id)  # confirmed per id before it is declared vanished
        else:
            self._ticks_since_list += 1
            asked = ids
        self._asked = bool(asked)
        failed = await self._each(asked, results)
        for export_id in failed:
            results.pop(export_id, None)  # not confirmed this tick: unknown, not vanished
        at, now = datetime.now(timezone.utc), self._clock()
        changed = False
        with self._delivering():
            for export_id, export in results.items():
                entry = self._entries.get(export_id)
                if entry is not None:
                    entry.failing_since = None
                    changed |= self._apply(export_id, entry, export, at, now)
        self._count_failures(failed)
        if failed and len(failed) == len(ids):
            raise next(iter(failed.values()))  # nothing answered at all: an outage tick
        return changed

    def _count_failures(self, failed: dict[str, VdgError]) -> None:
        """Per-id failures: an id that keeps failing alone ends after ``outage_timeout``."""
        now, limit = anyio.current_time(), self._outage_timeout
        for export_id, exc in failed.items():
            entry = self._entries.get(export_id)
            if entry is None:
                continue
            if entry.failing_since is None:
                entry.failing_since = now
            if limit is not None and now - entry.failing_since >= limit:
                logger.warning("export %r failing for over %g s: %s", export_id, limit, exc)
                self._fail_all(exc, [export_id])

    def _use_list(self, watched: int) -> bool:
        if watched < 2:
            return False
        size = self._list_size
        cheap = size is None or size <= REQUEST_COST * (watched - 1) + watched
        return cheap or self._ticks_since_list >= LIST_REFRESH_TICKS

    async def _each(self, ids: list[str], results: dict[str, Export | None]) -> dict[str, VdgError]:
        """Per-id requests, a few at a time (after a restart, every watched id is missing).

        Answers go into ``results`` (``None`` for -57). Ids whose request failed
        transiently are returned with their error, so that one failure does not cost the
        answers of the others; a permanent error ends the watches of that id alone.
        """
        failed: dict[str, VdgError] = {}
        refused: dict[str, VdgError] = {}
        limiter = anyio.CapacityLimiter(PER_ID_CONCURRENCY)

        async def one(export_id: str) -> None:
            async with limiter:
                try:
                    results[export_id] = await self._fetch_one(export_id)
                except ExportNotFoundError:
                    results[export_id] = None
                except VdgError as exc:
                    (failed if is_transient(exc) else refused)[export_id] = exc

        if len(ids) == 1:
            await one(ids[0])
        elif ids:
            async with anyio.create_task_group() as tasks:
                for export_id in ids:
                    tasks.start_soon(one, export_id)
        for export_id, exc in refused.items():
            logger.warning("watch of export %r failed: %s", export_id, exc)
            self._fail_all(exc, [export_id])
        return failed

    def _stall_checks(self) -> bool:
        if self._stall_after is None:
            return False
        at, now = datetime.now(timezone.utc), self._clock()
        with self._delivering():
            for export_id, entry in list(self._entries.items()):
                last = entry.tracker.last
                if last is not None:
                    events = entry.tracker.stall_events(False, last, at, now)
                    self._send(export_id, entry, entry.subs, events, last)
        return False

    def _apply(
        self, export_id: str, entry: _Entry, export: Export | None, at: datetime, now: float
    ) -> bool:
        tracker = entry.tracker
        last = tracker.last
        if export is None:
            vanished: list[WatchEvent] = [
                ExportVanished(export_id, at, VanishReason.NOT_FOUND, last)
            ]
            for refs in (entry.subs, entry.fresh):
                self._send(export_id, entry, refs, vanished, None)
            return True
        same = last is export or (last is not None and last == export)
        if same and not entry.fresh:
            if self._stall_after is not None:
                events = tracker.stall_events(False, export, at, now)
                self._send(export_id, entry, entry.subs, events, export)
            return False
        estimates = tracker.observe(export, now)
        if not same and last is not None:
            shared = tracker.events(last, export, at, now, estimates)
            stall = tracker.stall_events(bool(shared), export, at, now)  # bandwidth alone: no
            self._send(export_id, entry, entry.subs, stall + shared, export)
        fresh, entry.fresh = entry.fresh, {}
        for ref in fresh:
            watch = ref()
            if watch is not None:
                events = tracker.events(watch.baseline, export, at, now, estimates)
                entry.subs[ref] = None
                self._send(export_id, entry, {ref: None}, events, export)
        tracker.last = export
        return True

    def _send(
        self,
        export_id: str,
        entry: _Entry,
        refs: dict[Ref, None],
        events: list[WatchEvent],
        export: Export | None,
    ) -> None:
        if not events:
            return
        ended = isinstance(events[-1], TERMINAL_TYPES)
        for ref in list(refs):
            watch = ref()
            if watch is not None:
                watch.deliver(events, export)
            if ended:
                entry.subs.pop(ref, None)
                entry.fresh.pop(ref, None)
        if ended:
            self._prune(export_id, entry)
