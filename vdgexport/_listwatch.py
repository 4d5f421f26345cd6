"""`ListWatch`: the whole list of each poll of the client's shared poller (``watch_list``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol

from ._leaving import Leaving
from ._models import ExportList

__all__ = ["ListHub", "ListWatch", "Listeners"]

_IDLE, _SUBSCRIBED, _DONE = 0, 1, 2


class ListHub(Protocol):
    """What a list watch is handed (the client's poller): it offers each list answer
    through `ListWatch.offer` and ends it through `ListWatch.fail`."""

    def subscribe_list(self, watch: ListWatch) -> None: ...  # pragma: no cover - a protocol

    def unsubscribe_list(self, watch: ListWatch) -> None: ...  # pragma: no cover - a protocol


class ListWatch(Leaving):
    """The server's whole list, as the client's shared poller sees it: an async iterator and
    an async context manager of `ExportList`.

    Made by `Client.watch_list`. While one is subscribed (entered, or being iterated), every
    tick of the client's poller is one whole-list request, and every `Watch` of the client
    is served from that same answer: one status request per tick for all of them.

    - It yields the list of each successful poll, the latest only: a consumer slower than
      the poller gets the newest list when it asks, never a backlog. An answer that did not
      change gives the very same `ExportList` object again (compare with ``is`` to skip it).
    - A new list watch gets the last list at once, with no request, when the poller already
      polls the list; otherwise the list is polled at once (or at the next tick, if a status
      request went out less than ``poll_interval`` ago).
    - Outages: it yields nothing while polls fail, and goes on at the first answer. Failures
      for longer than the client's ``outage_timeout`` raise the last error, as a `Watch`
      does; so do permanent ones (refused credentials, unsafe XML).
    - It never ends by itself. Leaving it in any way (``break``, leaving ``async with``,
      ``await aclose()``, cancelling the task that waits on it) unsubscribes at once, never
      waiting for the garbage collector. `ClientClosedError` ends it when the client closes.

    Example:
        ```python
        async with client.watch_list() as lists:
            async for exports in lists:
                print(len(exports), "exports:", [e.export_id for e in exports])
        ```
    """

    __slots__ = ("__weakref__", "_hub", "_latest", "_state")

    def __init__(self, hub: ListHub) -> None:
        super().__init__()
        self._hub = hub
        self._latest: ExportList | None = None
        self._state = _IDLE

    def __repr__(self) -> str:
        return f"<ListWatch {'done' if self._state == _DONE else 'open'}>"

    async def __anext__(self) -> ExportList:
        while True:
            self._start()
            latest, self._latest = self._latest, None
            if latest is not None:
                if self._state == _SUBSCRIBED:  # its consumer, off to its loop body
                    self._bind()
                return latest
            self._raise_error()
            if self._state == _DONE:
                raise StopAsyncIteration
            await self._sleep()

    async def aclose(self) -> None:
        """Stop watching now; iteration stops at once, also in another task. Idempotent."""
        self._unbind()
        if self._state == _SUBSCRIBED:
            self._hub.unsubscribe_list(self)
        self._state = _DONE
        self._latest = self._error = None
        self._wake()

    def _start(self) -> None:
        if self._state == _IDLE:
            self._state = _SUBSCRIBED  # first: what subscribing offers must be kept
            try:
                self._hub.subscribe_list(self)
            except BaseException:
                self._state = _IDLE
                raise

    def _suspend(self) -> None:
        """Unsubscribe (its consumer was cancelled); a later `__anext__` subscribes again."""
        self._unbind()
        if self._state == _SUBSCRIBED:
            self._hub.unsubscribe_list(self)
            self._state = _IDLE

    # -- poller side ---------------------------------------------------------------------

    def offer(self, exports: ExportList) -> None:
        """The list of a successful poll: it replaces any list not read yet."""
        if self._state == _SUBSCRIBED:
            self._latest = exports
            self._wake()

    def fail(self, error: BaseException) -> None:
        """End this list watch by raising ``error`` at the next read."""
        if self._state != _DONE:
            self._state = _DONE
            self._error = error
            self._latest = None
            self._wake()


class Listeners:
    """The list watches of a poller, held weakly: one dropped without being closed
    (``break`` out of ``async for``) leaves when it is freed."""

    __slots__ = ("_on_empty", "_on_freed", "_refs")

    def __init__(self, on_empty: Callable[[], None]) -> None:
        self._refs: dict[weakref.ref[ListWatch], None] = {}
        self._on_empty = on_empty
        self._on_freed = self._freed  # one bound method shared by every reference

    def __len__(self) -> int:
        return len(self._refs)

    def add(self, watch: ListWatch) -> None:
        self._refs[weakref.ref(watch, self._on_freed)] = None

    def remove(self, watch: ListWatch) -> None:
        # Equal to its stored reference: weak references compare by referent.
        self._freed(weakref.ref(watch))

    def _freed(self, ref: weakref.ref[ListWatch]) -> None:
        if self._refs.pop(ref, 0) is None and not self._refs:
            self._on_empty()

    def offer(self, exports: ExportList) -> None:
        for ref in list(self._refs):
            watch = ref()
            if watch is not None:
                watch.offer(exports)

    def fail(self, error: BaseException) -> None:
        """End every list watch with ``error``; none is left."""
        refs, self._refs = self._refs, {}
        for ref in refs:
            watch = ref()
            if watch is not None:
                watch.fail(error)
