"""The poller: one task per client, one status request per tick, whatever the number of watches."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from ._diff import Tracker
from ._exceptions import ClientClosedError, ExportNotFoundError, VdgError
from ._listwatch import Listeners, ListWatch
from ._models import Export, ExportList
from ._pace import Pace
from ._retry import backoff, is_transient
from ._subscriptions import Entry, Ref, Subscriber, Subscriptions

__all__ = ["MAX_CONFIRMATIONS", "Poller"]

logger = logging.getLogger("vdgexport")

#: Ids missing from a list answer are confirmed per id, at most this many per tick (the
#: rest in the following ticks), so a restart is no burst: requests per poll_interval
#: stay at most 1 + MAX_CONFIRMATIONS.
MAX_CONFIRMATIONS = 8

FetchOne = Callable[[str], Awaitable[Export]]
FetchList = Callable[[], Awaitable[ExportList]]
_T = TypeVar("_T")


def describe(exc: BaseException) -> str:
    """An error as `ConnectionLost` carries it: its (public) type and message."""
    public = (c for c in type(exc).__mro__ if c.__module__ == VdgError.__module__)
    return f"{next(public, type(exc)).__name__}: {exc}"


class Poller(Subscriptions):
    """Serves every watch of a client from one task and one status request per tick.

    It is handed what it needs (fetch functions, a way to start its task, a clock) and
    imports nothing of the client or of the watch. It runs only while some watch is open.
    What it knows of each id and how events reach the watches: `Subscriptions`.
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
        lost_after: float | None = None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(stall_after=stall_after, clock=clock)
        self._fetch_one, self._fetch_list, self._spawn = fetch_one, fetch_list, spawn
        self._min, self._max = poll_interval, max(poll_interval, max_poll_interval)
        self._outage_timeout, self._lost_after = outage_timeout, lost_after
        self._pace = Pace(poll_interval, max_poll_interval)
        self._failures = 0
        #: A whole-server outage: (real time, clock time) it began, the last error.
        self._outage: tuple[float, float, str] | None = None
        self._ticks = 0
        self._last_list: ExportList | None = None
        #: The answer of the last tick while the ticks poll the list, else ``None``.
        self._current: ExportList | None = None
        self._listeners = Listeners(self._list_left)
        self._asked = False  # whether the last tick needed per-id requests beside the list
        self._stopped = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._running = False
        self._closed = False

    # -- subscriptions -------------------------------------------------------------------

    @property
    def list_watches(self) -> int:
        """How many list watches are subscribed."""
        return len(self._listeners)

    def _start(self) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if not self._running:
            self._stopped = anyio.Event()
            self._spawn(self._run)  # raises if the client cannot own a task
            self._running = True
        if not self._entries and not self._listeners and (self._outage or self._failures):
            self._forget_outage()  # nothing is polled: any outage has ended for the poller

    def subscribe_list(self, watch: ListWatch) -> None:
        """Serve ``watch`` every list answer: the last one at once if the list is polled."""
        self._start()
        self._listeners.add(watch)
        if self._current is not None:
            watch.offer(self._current)
        elif self._pace.join(anyio.current_time()):
            self._wake.set()

    def unsubscribe_list(self, watch: ListWatch) -> None:
        self._listeners.remove(watch)

    def _list_left(self) -> None:
        if not self._entries:
            self._wake.set()  # nothing is watched any more: the loop ends

    def subscribe(self, watch: Subscriber) -> None:
        """Serve ``watch``: from the last snapshot at once if its id is polled already."""
        self._start()
        export_id = watch.export_id
        ref = Ref(watch, self._on_collected)
        ref.export_id = export_id
        entry = self._entries.get(export_id)
        if entry is None or not entry.holds(ref):
            self._count += 1  # before a snapshot that may end it at once
        with self._delivering():
            if entry is None:
                entry = self._entries[export_id] = self._new_entry(export_id)
                entry.fresh = {ref: None}
                if self._pace.join(anyio.current_time()):
                    self._wake.set()
            elif entry.tracker.last is None:  # its first answer is still to come
                if entry.fresh is None:
                    entry.fresh = {}
                entry.fresh[ref] = None
            else:
                entry.subs[ref] = None
                self._snapshot(entry, ref, watch)
            if entry.lost is not None and entry.holds(ref):
                self._lost(entry, {ref: None})

    def _forget_outage(self) -> None:
        """A new watch after every id was left must not be told of an old outage, nor
        inherit its clock (``outage_timeout``) or its backoff."""
        self._failures, self._outage = 0, None
        self._pace.reset()
        self._wake.set()  # a loop still waiting for the old backoff looks again

    def _new_entry(self, export_id: str) -> Entry:
        now = self._clock()
        entry = Entry(Tracker(export_id, self._stall_after, now, last_move=now))
        if self._outage is not None:  # joining during an outage: it is down too
            entry.failing_since, entry.down_since, error = self._outage
            self._down.add(export_id)
            if self._lost_after is not None and now - entry.down_since >= self._lost_after:
                entry.lost = error
        return entry

    async def aclose(self) -> None:
        """Stop polling, wait for the task to end, and end every open watch with an error."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
        if self._running:
            with anyio.CancelScope(shield=True):
                await self._stopped.wait()
        self._fail_all(ClientClosedError("the client was closed while this export was watched"))
        self._listeners.fail(ClientClosedError("the client was closed while its list was watched"))

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            with anyio.CancelScope() as self._scope:
                while (self._entries or self._listeners) and not self._closed:
                    self._wake = anyio.Event()
                    wait = self._pace.due - anyio.current_time()
                    if wait > 0:
                        with anyio.move_on_after(wait):
                            await self._wake.wait()
                        continue
                    await anyio.lowlevel.checkpoint()  # a tick due at once lets others run
                    await self._tick_safely()
        finally:
            self._running = False
            self._scope = None
            self._current = None
            self._stopped.set()

    async def _tick_safely(self) -> None:
        self._pace.start()
        try:
            try:
                changed = await self._tick()
            except VdgError as exc:
                self._failed(exc)
                return
        except Exception as exc:  # a bug must not kill the client's task group
            logger.exception("watch poller failed")
            self._fail_every(exc)
            self._pace.failed(anyio.current_time(), self._min)
            return
        self._failures, self._outage = 0, None
        self._pace.succeeded(changed)

    def _fail_every(self, exc: Exception) -> None:
        """End every watch and every list watch with ``exc``."""
        self._fail_all(exc)
        self._listeners.fail(exc)

    def _failed(self, exc: VdgError) -> None:
        """No poll of this tick answered: an outage tick, or a permanent refusal."""
        self._current = None
        if not is_transient(exc):
            logger.warning("watch failed permanently: %s", exc)
            self._fail_every(exc)
            self._pace.failed(anyio.current_time(), self._min)
            return
        self._failures += 1
        now = anyio.current_time()
        text = describe(exc)
        start = (now, self._clock()) if self._outage is None else self._outage[:2]
        self._outage = (*start, text)
        limit = self._outage_timeout
        if self._listeners and limit is not None and now - start[0] >= limit:
            logger.warning("the list failing for over %g s: %s", limit, exc)
            self._listeners.fail(exc)
        logger.info("poll failed (%s); backing off", exc)
        self._mark_failed(dict.fromkeys(self._entries, exc))
        self._pace.failed(now, backoff(self._failures, self._min, self._max, exc))

    async def _sent(self, fetch: Callable[[], Awaitable[_T]]) -> _T:
        self._pace.sent(anyio.current_time())
        return await fetch()

    async def _tick(self) -> bool:
        self._ticks += 1
        ids = list(self._entries)
        results: dict[str, Export | None] = {}
        backlog = False
        listing = self._use_list(len(ids))
        if listing:
            exports = await self._sent(self._fetch_list)
            self._current = exports
            self._listeners.offer(exports)
            news = bool(self._listeners) and exports is not self._last_list
            unchanged = exports is self._last_list and not self._asked and not self._failures
            if unchanged and not any(e.fresh for e in self._entries.values()):
                return self._stall_checks()
            self._last_list = exports
            missing = []
            for export_id in ids:
                found = exports.get(export_id)
                if found is None:
                    missing.append(export_id)  # confirmed per id before it is declared vanished
                else:
                    results[export_id] = found
            asked = self._pick(missing)
            backlog = news or len(asked) < len(missing)
        else:
            self._current = None
            asked = ids
        self._asked = bool(asked)
        failed = await self._each(asked, results)
        if failed and len(failed) == len(ids) and not listing:
            raise next(iter(failed.values()))  # nothing answered at all: an outage tick
        return self._answered(ids, results, failed) or backlog

    def _answered(
        self, ids: list[str], results: dict[str, Export | None], failed: dict[str, VdgError]
    ) -> bool:
        at, now = datetime.now(timezone.utc), self._clock()
        changed = False
        with self._delivering():
            if self._down:
                covered = set(ids)
                for export_id in [i for i in self._down if i in covered and i not in failed]:
                    self._restored(self._entries[export_id], at, now)
            for export_id, export in results.items():
                entry = self._entries.get(export_id)
                if entry is not None and export_id not in failed:
                    entry.seen_at = at
                    changed |= self._apply(entry, export, at, now)
        self._mark_failed(failed)
        return changed

    def _pick(self, missing: list[str]) -> list[str]:
        """The ids to confirm this tick: at most `MAX_CONFIRMATIONS`, longest unasked first."""
        if len(missing) > MAX_CONFIRMATIONS:
            missing = sorted(missing, key=lambda i: self._entries[i].asked)[:MAX_CONFIRMATIONS]
        for export_id in missing:
            self._entries[export_id].asked = self._ticks
        return missing

    def _use_list(self, watched: int) -> bool:
        """One watched id is polled by id; several with one whole-list request (DESIGN §3),
        and so is any number while a list watch is subscribed: a list unchanged since the
        last tick costs next to nothing (`ListParser`)."""
        return watched >= 2 or bool(self._listeners)

    async def _each(self, ids: list[str], results: dict[str, Export | None]) -> dict[str, VdgError]:
        """Per-id requests: the one watched id, or the confirmations (`MAX_CONFIRMATIONS`).

        Answers go into ``results`` (``None`` for -57). Ids whose request failed
        transiently are returned with their error, so that one failure does not cost the
        answers of the others; a permanent error ends the watches of that id alone.
        """
        failed: dict[str, VdgError] = {}
        refused: dict[str, VdgError] = {}

        async def one(export_id: str) -> None:
            try:
                results[export_id] = await self._sent(lambda: self._fetch_one(export_id))
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

    # -- connection state ------------------------------------------------------------------

    def _mark_failed(self, failed: dict[str, VdgError]) -> None:
        """Polls of these ids failed: `ConnectionLost` after ``lost_after``, and the end
        after ``outage_timeout`` (each id on its own clock)."""
        if not failed:
            return
        real, now, limit = anyio.current_time(), self._clock(), self._outage_timeout
        with self._delivering():
            for export_id, exc in failed.items():
                entry = self._entries.get(export_id)
                if entry is None:
                    continue
                self._down.add(export_id)
                if entry.failing_since is None or entry.down_since is None:
                    entry.failing_since, entry.down_since = real, now
                if limit is not None and real - entry.failing_since >= limit:
                    logger.warning("export %r failing for over %g s: %s", export_id, limit, exc)
                    self._fail_all(exc, [export_id])
                elif entry.lost is not None:
                    entry.lost = describe(exc)  # a joining watch gets the latest
                elif self._lost_after is not None and now - entry.down_since >= self._lost_after:
                    entry.lost = describe(exc)
                    self._lost(entry, entry.refs())
