"""`Watch`: the async iterator a user holds; one per ``client.watch(id)`` call."""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from ._diff import Baseline
from ._events import (
    TERMINAL_TYPES,
    DeviceProgress,
    ExportStatusChanged,
    WatchEvent,
)
from ._leaving import Leaving
from ._models import Export, ExportStatus

__all__ = ["Hub", "Watch"]

CHECKPOINT_VERSION = 1
_IDLE, _SUBSCRIBED, _DONE = 0, 1, 2


class Hub(Protocol):
    """What a watch is handed to get its events (the client's poller is one).

    ``subscribe`` delivers through `Watch.deliver` and `Watch.fail`; ``unsubscribe`` stops
    that at once.
    """

    def subscribe(self, watch: Watch) -> None: ...  # pragma: no cover - a protocol

    def unsubscribe(self, watch: Watch) -> None: ...  # pragma: no cover - a protocol


class Watch(Leaving):
    """The events of one watched export, as an async iterator and an async context manager.

    Made by `Client.watch`. Iteration yields `WatchEvent` values and stops after the terminal
    one (`ExportCompleted`, `ExportRemoved` or `ExportVanished`). It raises a `VdgError` when
    the watch cannot go on (an outage longer than ``outage_timeout``, refused credentials,
    unsafe XML) and `ClientClosedError` when the client is closed under it.

    Leaving early unsubscribes at once, whichever way the consumer leaves: ``break`` (the
    dropped watch unsubscribes when it is freed), leaving ``async with`` (or
    ``await watch.aclose()``), or a cancellation of the task that waits for the next event
    (a timeout around ``__anext__`` included: a later ``__anext__`` subscribes again and
    goes on from what the consumer has read), or a cancellation (or an error) of the task
    that last read it while it is busy in its own loop body, also when it holds the watch
    in a local variable (``watch = client.watch(id)``) that the traceback keeps alive.
    No garbage collector is needed for any of it.

    A slow consumer loses nothing that matters: status and terminal events are kept, and
    unread progress of one device collapses to its newest value (``previous_progress`` then
    still names the last value the consumer saw).

    Example:
        ```python
        async with client.watch(42) as events:
            async for event in events:
                match event:
                    case vdgexport.DeviceProgress(device_id=dev, progress=p):
                        print(f"{dev}: {p:.0f}%")
                    case vdgexport.ExportCompleted(export=export):
                        print("done:", export.path)
        ```
    """

    __slots__ = (
        "__weakref__",
        "_cells",
        "_hub",
        "_queue",
        "_shown",
        "_state",
        "baseline",
        "export_id",
    )

    def __init__(self, hub: Hub, export_id: str, resume: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.export_id = export_id
        self._hub = hub
        #: What the watcher already knows (a checkpoint, or what it had read when it was
        #: unsubscribed): the first answer after subscribing diffs from it.
        self.baseline: Export | Baseline | None = (
            None if resume is None else _restore(export_id, resume)
        )
        self._shown: Export | None = None
        self._queue: deque[list[WatchEvent | None]] | None = None
        self._cells: dict[tuple[str, str], list[WatchEvent | None]] | None = None
        self._state = _IDLE

    def __repr__(self) -> str:
        state = "done" if self._state == _DONE else "open"
        return f"<Watch export_id={self.export_id!r} {state}>"

    # -- consumer side -------------------------------------------------------------------

    async def __anext__(self) -> WatchEvent:
        while True:
            self._start()
            event = self._pop()
            if event is not None:
                if isinstance(event, TERMINAL_TYPES):
                    self._finish()
                elif self._state == _SUBSCRIBED:  # its consumer, off to its loop body
                    self._bind()
                return event
            self._raise_error()
            if self._state == _DONE:
                raise StopAsyncIteration
            await self._sleep()

    async def aclose(self) -> None:
        """Stop watching now; iteration stops at once, also in another task. Idempotent."""
        self._finish()
        self._queue = self._cells = None
        self._error = None
        self._wake()

    def checkpoint(self) -> dict[str, Any]:
        """A small JSON-serialisable record of what this watch has yielded so far.

        Pass it as ``client.watch(id, resume=checkpoint)`` (in this process or another) to
        go on from there: the resumed watch yields only what changed since, and ends with
        ``ExportVanished(REPLACED)`` if the id now names another export.

        Example:
            ```python
            state = watch.checkpoint()
            Path("watch.json").write_text(json.dumps(state))
            ...
            resume = json.loads(Path("watch.json").read_text())
            async for event in client.watch(resume["export_id"], resume=resume): ...
            ```
        """
        seen = self._seen()
        if isinstance(seen, Export):
            seen = Baseline.of(seen)
        body = {} if seen is None else seen.to_json()
        return {"version": CHECKPOINT_VERSION, "export_id": self.export_id, **body}

    def _seen(self) -> Export | Baseline | None:
        """What the consumer has read: the last export queued, less what is still unread.

        Unread events carry the values the consumer last saw (``previous_*``), so nothing
        but a reference to the last export is kept per watch.
        """
        if self._shown is None:
            return self.baseline
        seen = Baseline.of(self._shown)
        status_done: set[None] = set()
        devices_done: set[tuple[str, str]] = set()
        for cell in self._queue or ():
            event = cell[0]
            if isinstance(event, ExportStatusChanged) and not status_done:
                status_done.add(None)
                if event.previous_status is None:
                    return self.baseline  # the first snapshot is still unread
                seen.status = event.previous_status
            elif isinstance(event, DeviceProgress):
                key = (event.server_id, event.device_id)
                if key in devices_done:
                    continue
                devices_done.add(key)
                if event.previous_progress is None:
                    seen.devices.pop(key, None)
                else:  # the previous status is not in the event: mark it unknown
                    seen.devices[key] = (event.previous_progress, ExportStatus.UNKNOWN)
        return seen

    # -- poller side ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._state == _IDLE:
            self._hub.subscribe(self)
            if self._state == _IDLE:  # not ended by what subscribing delivered
                self._state = _SUBSCRIBED

    def _suspend(self) -> None:
        """Unsubscribe, keeping what was read: a later `__anext__` subscribes again."""
        self._unbind()
        if self._state == _SUBSCRIBED:
            self._hub.unsubscribe(self)
            self._state = _IDLE
            if self._shown is not None:
                self.baseline = self._shown
            self._wake()  # another task waiting on this watch subscribes it again

    def _finish(self) -> None:
        self._unbind()
        if self._state == _SUBSCRIBED:
            self._hub.unsubscribe(self)
        self._state = _DONE

    def deliver(self, events: list[WatchEvent], export: Export | None = None) -> None:
        """Queue ``events`` (which lead to ``export``), collapsing unread device progress."""
        if self._state == _DONE:
            return
        if export is not None:
            self._shown = export
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
            self._cells = {}
        cells = self._cells
        assert cells is not None
        for event in events:
            cell: list[WatchEvent | None] = [event]
            if isinstance(event, DeviceProgress):
                key = (event.server_id, event.device_id)
                old = cells.get(key)
                if old is not None and isinstance(stale := old[0], DeviceProgress):
                    merged = _replace_previous(event, stale.previous_progress)
                    if stale.previous_progress is None:
                        old[0] = merged  # still the first snapshot: keep the server's order
                        continue
                    old[0] = None  # otherwise the newest value goes after newer status events
                    cell[0] = merged
                cells[key] = cell
            queue.append(cell)
        self._wake()

    def fail(self, error: BaseException) -> None:
        """End this watch by raising ``error`` once its queued events are read."""
        if self._state != _DONE:
            self._error = error
            self._state = _DONE
            self._wake()

    def _pop(self) -> WatchEvent | None:
        queue = self._queue
        while queue:
            cell = queue.popleft()
            event = cell[0]
            if event is None:
                continue
            if isinstance(event, DeviceProgress) and self._cells is not None:
                self._cells.pop((event.server_id, event.device_id), None)
            if not queue:
                self._queue = self._cells = None
            return event
        return None


def _replace_previous(event: DeviceProgress, previous: float | None) -> DeviceProgress:
    return DeviceProgress(
        event.export_id,
        event.observed_at,
        event.server_id,
        event.device_id,
        event.progress,
        previous,
        event.status,
        event.bandwidth_kbps,
        event.rate,
        event.eta,
    )


def _restore(export_id: str, data: dict[str, Any]) -> Baseline | None:
    if data.get("version") != CHECKPOINT_VERSION or str(data.get("export_id")) != export_id:
        raise ValueError(f"not a checkpoint of a watch of export {export_id!r}")
    if "status" not in data:
        return None  # taken before anything was seen: start afresh
    try:
        return Baseline.from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed checkpoint: {exc}") from None
