"""What the poller knows of each watched id, and how events reach the watches of it.

`Subscriptions` is the poller's base: the entries (one per id), subscribing and leaving,
the snapshot a joining watch gets, the events of an answer, `ConnectionLost` and
`ConnectionRestored`. When to ask the server, and what: `Poller`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

import anyio

from ._diff import Baseline, Tracker
from ._events import (
    TERMINAL_TYPES,
    ConnectionLost,
    ConnectionRestored,
    ExportVanished,
    VanishReason,
    WatchEvent,
)
from ._models import Export

__all__ = ["Entry", "Ref", "Subscriber", "Subscriptions", "deliver"]


class Subscriber(Protocol):
    """What the poller needs of a watch (`Watch` is one); it imports nothing of the watch."""

    @property
    def export_id(self) -> str: ...  # pragma: no cover - a protocol

    @property
    def baseline(self) -> Export | Baseline | None: ...  # pragma: no cover - a protocol

    def deliver(
        self, events: list[WatchEvent], export: Export | None = None
    ) -> None: ...  # pragma: no cover - a protocol

    def fail(self, error: BaseException) -> None: ...  # pragma: no cover - a protocol


class Ref(weakref.ref["Subscriber"]):
    """A weak reference to a subscriber that knows its id, for the collection callback.

    One shared callback and this slot cost less per watch than a ``partial`` per watch.
    """

    __slots__ = ("export_id",)
    export_id: str


@dataclass(slots=True)
class Entry:
    """One watched id: its tracker, its subscribers and its connection state.

    ``subs`` have had their first snapshot; ``fresh`` (``None`` when empty, which it
    mostly is) wait for the first answer about the id.
    """

    tracker: Tracker
    subs: dict[Ref, None] = field(default_factory=dict)
    fresh: dict[Ref, None] | None = None
    #: When the last answer about this id was observed (the time of its snapshot).
    seen_at: datetime | None = None
    #: When this id's polls began to fail: real time (``outage_timeout``) and the
    #: client's clock (``lost_after``).
    failing_since: float | None = None
    down_since: float | None = None
    #: The last error as text while `ConnectionLost` is in force, else ``None``.
    lost: str | None = None
    #: The tick of its last confirmation (an id missing from the list), oldest first.
    asked: int = 0

    def refs(self) -> dict[Ref, None]:
        """Every subscriber, fresh ones included."""
        return self.subs if not self.fresh else {**self.subs, **self.fresh}

    def drop(self, ref: Ref) -> None:
        self.subs.pop(ref, None)
        if self.fresh is not None:
            self.fresh.pop(ref, None)

    def holds(self, ref: Ref) -> bool:
        return ref in self.subs or (self.fresh is not None and ref in self.fresh)

    @property
    def empty(self) -> bool:
        return not self.subs and not self.fresh

    @property
    def size(self) -> int:
        """How many subscribers, fresh ones included."""
        return len(self.subs) + (len(self.fresh) if self.fresh else 0)


def deliver(
    entry: Entry, refs: dict[Ref, None], events: list[WatchEvent], export: Export | None
) -> bool:
    """Hand ``events`` to the subscribers in ``refs``; ``True`` if they ended them."""
    if not events:
        return False
    ended = isinstance(events[-1], TERMINAL_TYPES)
    for ref in list(refs):
        watch = ref()
        if watch is not None:
            watch.deliver(events, export)
        if ended:
            entry.drop(ref)
    return ended


class Subscriptions:
    """The entries of the watched ids and their subscribers (weakly held)."""

    def __init__(self, *, stall_after: float | None, clock: Callable[[], float]) -> None:
        self._stall_after, self._clock = stall_after, clock
        self._entries: dict[str, Entry] = {}
        self._down: set[str] = set()  # ids whose last poll failed
        self._busy = False  # delivering events: a collected watch is pruned afterwards
        self._dead: list[Ref] = []
        self._on_collected = self._collected  # one bound method shared by every Ref
        self._wake = anyio.Event()  # the poller's: set when the last entry goes
        #: Subscribed watches, kept as an int on the event loop as they come and go, so
        #: that `watches` may be read from any thread (a metrics scrape) while they change.
        self._count = 0

    @property
    def watched(self) -> int:
        """How many export ids are being polled."""
        return len(self._entries)

    @property
    def watches(self) -> int:
        """How many watches are subscribed (safe to read from any thread)."""
        return self._count

    def unsubscribe(self, watch: Subscriber) -> None:
        entry = self._entries.get(watch.export_id)
        if entry is not None:
            self._drop(entry, Ref(watch))  # equal to its stored Ref: refs compare by referent

    def _drop(self, entry: Entry, ref: Ref) -> None:
        before = entry.size
        entry.drop(ref)
        self._count -= before - entry.size
        self._prune(entry)

    def _collected(self, ref: Ref) -> None:
        """A watch was dropped without being closed (``break`` out of ``async for``).

        Freeing it may happen in the middle of delivering events (any allocation can run
        the collector); the entry is then pruned once the delivery is done.
        """
        if self._busy:
            self._dead.append(ref)
            return
        entry = self._entries.get(ref.export_id)
        if entry is not None:
            self._drop(entry, ref)

    def _prune(self, entry: Entry) -> None:
        export_id = entry.tracker.export_id
        if entry.empty and self._entries.get(export_id) is entry:
            del self._entries[export_id]
            self._down.discard(export_id)
            if not self._entries:
                self._wake.set()

    def _fail_all(self, exc: BaseException, ids: Iterable[str] | None = None) -> None:
        with self._delivering():
            for export_id in list(self._entries) if ids is None else ids:
                entry = self._entries.pop(export_id, None)
                self._down.discard(export_id)
                if entry is None:
                    continue
                self._count -= entry.size
                for ref in entry.refs():
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
            for ref in dead:
                self._collected(ref)

    def _snapshot(self, entry: Entry, ref: Ref, watch: Subscriber) -> None:
        """The last answer, diffed from what ``watch`` knows: no request."""
        tracker = entry.tracker
        last = tracker.last
        assert last is not None
        at = entry.seen_at or datetime.now(timezone.utc)
        estimates = tracker.estimates(last)
        events = tracker.events(watch.baseline, last, at, self._clock(), estimates)
        self._send(entry, {ref: None}, events, last)

    def _lost(self, entry: Entry, refs: dict[Ref, None]) -> None:
        assert entry.lost is not None
        assert entry.down_since is not None
        failing = timedelta(seconds=max(0.0, self._clock() - entry.down_since))
        at = datetime.now(timezone.utc)
        event = ConnectionLost(entry.tracker.export_id, at, entry.lost, failing)
        self._send(entry, refs, [event], None)

    def _restored(self, entry: Entry, at: datetime, now: float) -> None:
        self._down.discard(entry.tracker.export_id)
        if entry.lost is not None and entry.down_since is not None:
            down = timedelta(seconds=max(0.0, now - entry.down_since))
            event = ConnectionRestored(entry.tracker.export_id, at, down)
            self._send(entry, entry.refs(), [event], None)
        entry.failing_since = entry.down_since = entry.lost = None

    def _stall_checks(self) -> bool:
        if self._stall_after is None:
            return False
        at, now = datetime.now(timezone.utc), self._clock()
        with self._delivering():
            for entry in list(self._entries.values()):
                last = entry.tracker.last
                if last is not None:
                    events = entry.tracker.stall_events(False, last, at, now)
                    self._send(entry, entry.subs, events, last)
        return False

    def _apply(self, entry: Entry, export: Export | None, at: datetime, now: float) -> bool:
        tracker = entry.tracker
        last = tracker.last
        if export is None:
            vanished: list[WatchEvent] = [
                ExportVanished(tracker.export_id, at, VanishReason.NOT_FOUND, last)
            ]
            self._send(entry, entry.refs(), vanished, None)
            return True
        same = last is export or (last is not None and last == export)
        if same and not entry.fresh:
            if self._stall_after is not None:
                events = tracker.stall_events(False, export, at, now)
                self._send(entry, entry.subs, events, export)
            return False
        estimates = tracker.observe(export, now)
        if not same and last is not None:
            shared = tracker.events(last, export, at, now, estimates)
            stall = tracker.stall_events(bool(shared), export, at, now)  # bandwidth alone: no
            self._send(entry, entry.subs, stall + shared, export)
        fresh, entry.fresh = entry.fresh, None
        for ref in fresh or ():
            watch = ref()
            if watch is None:
                self._count -= 1  # freed before its first answer: it is not moved
            else:
                events = tracker.events(watch.baseline, export, at, now, estimates)
                entry.subs[ref] = None
                self._send(entry, {ref: None}, events, export)
        tracker.last = export
        return True

    def _send(
        self,
        entry: Entry,
        refs: dict[Ref, None],
        events: list[WatchEvent],
        export: Export | None,
    ) -> None:
        before = entry.size
        if deliver(entry, refs, events, export):
            self._count -= before - entry.size
            self._prune(entry)
