"""`subscribe`: the fleet's events from Redis, resumable by token, resynced when lost."""

from __future__ import annotations

import json
import random
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import coredis

import vdgexport
from vdgexport import WatchEvent

from ._redis import (
    READ,
    SNAPSHOT,
    Keys,
    Token,
    connect,
    is_transient,
    logger,
    safe_url,
    unreachable_as_transient,
)
from ._state import TERMINAL, export_order, sliced, state_events

__all__ = ["FleetEvent", "Subscription", "subscribe"]

_BLOCK_MS = 1000  # one XREAD waits this long before the epoch is checked again
_BATCH = 500
_BACKOFF = (0.05, 5.0)


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """One event of the fleet, with the token to resume after it.

    Attributes:
        token: opaque; pass it as ``subscribe(..., since=token)`` to go on right after
            this event (in this process or another, through any relay).
        event: the `WatchEvent`, as the leading publisher's watch gave it.
        resync: ``True`` on the first event of a current state sent because the
            subscription could not resume (its token was trimmed, or Redis lost its data):
            forget what you knew of the fleet's exports and take this state instead.
    """

    token: str
    event: WatchEvent
    resync: bool = False


class Subscription:
    """The events of a fleet: an async context manager and, once entered, an async iterator.

    Made by `subscribe`; see there.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        name: str,
        export_id: vdgexport.ExportId | None = None,
        since: str | None = None,
    ) -> None:
        self._keys = Keys.of(name)
        connect(redis_url)  # checks the URL now
        self._url = redis_url
        self._export = None if export_id is None else str(export_id)
        self._since = None if since is None else Token.parse(since)
        self._stack: AsyncExitStack | None = None
        self._redis: coredis.Redis[str] | None = None
        self._pending: deque[FleetEvent] = deque()
        self._epoch: str | None = None
        self._cursor = "0-0"
        self._resync = False
        self._resumed = False  # from a token: its export was known to the fleet then
        self._done = False
        self._reachable: bool | None = None
        self._lock = anyio.Lock()  # one reader at a time: two would read the same entries

    def __repr__(self) -> str:
        which = "all exports" if self._export is None else f"export {self._export!r}"
        return f"<Subscription {safe_url(self._url)!r} {which}>"

    async def __aenter__(self) -> Subscription:
        if self._stack is not None:
            raise RuntimeError("a subscription can be entered only once")
        redis = connect(self._url)
        async with AsyncExitStack() as stack:
            with unreachable_as_transient():
                await stack.enter_async_context(redis)
            self._stack, self._redis = stack.pop_all(), redis
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the subscription and close its connections; idempotent."""
        self._done = True
        self._pending.clear()
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                with unreachable_as_transient():
                    await stack.aclose()
            except Exception as exc:
                if not is_transient(exc):
                    raise

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FleetEvent:
        if self._redis is None:
            raise RuntimeError(
                "enter the subscription first: `async with vdgexport.fleet.subscribe(...)`"
            )
        if not self._pending:
            async with self._lock:  # one task fills at a time: two would read the same entries
                await self._wait(self._redis)
        item = self._pending.popleft()
        if self._export is not None and isinstance(item.event, TERMINAL):
            self._done = True
            self._pending.clear()
        return item

    async def _wait(self, redis: coredis.Redis[str]) -> None:
        """Read until something is pending (`StopAsyncIteration` once there is no more)."""
        wait = _BACKOFF[0]
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                with unreachable_as_transient():
                    await self._fill(redis)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._reachable is not False:
                    logger.warning(
                        "Redis at %s unreachable (%s); retrying", safe_url(self._url), exc
                    )
                self._reachable = False
                await anyio.sleep(wait * random.uniform(0.5, 1.0))
                wait = min(wait * 2, _BACKOFF[1])
            else:
                self._reachable = True

    # -- reading -------------------------------------------------------------------------

    async def _fill(self, redis: coredis.Redis[str]) -> None:
        if self._epoch is None and self._since is not None:
            since, self._since = self._since, None
            if since.resumable_after_entry:  # `_read` checks that it still can be
                self._epoch, self._cursor = since.epoch, since.entry
                self._resumed = True
            else:  # it left in the middle of a current state
                self._resync = True
        if self._epoch is None:
            await self._snapshot(redis)
        else:
            await self._read(redis)

    async def _snapshot(self, redis: coredis.Redis[str]) -> None:
        """Queue the current state; with no publisher yet, wait a while for one."""
        script = redis.register_script(SNAPSHOT)
        reply: list[Any] = await script(keys=self._keys.all(), args=[self._export or ""])
        if not reply:
            await redis.xread({self._keys.stream: "$"}, block=_BLOCK_MS)
            return
        epoch, last = str(reply[0]), str(reply[1])
        states = sorted(
            zip(reply[2::2], reply[3::2], strict=True), key=lambda pair: export_order(str(pair[0]))
        )
        events = [
            event
            for each in await sliced(lambda pair: _events_of(str(pair[0]), str(pair[1])), states)
            for event in each
        ]
        self._epoch, self._cursor = epoch, last
        for index, event in enumerate(events):
            self._emit(Token(epoch, last, index, len(events)), event)

    async def _read(self, redis: coredis.Redis[str]) -> None:
        """Queue what follows the cursor, checking in the same script that the stream still
        holds the cursor (else nothing can resume there: a resync); wait when nothing does."""
        assert self._epoch is not None
        script = redis.register_script(READ)
        args: list[str | int] = [self._epoch, self._cursor, _BATCH, self._export or ""]
        reply: list[Any] = await script(keys=self._keys.all(), args=args)
        if reply[0] != "ok":
            self._lost_epoch()
            return
        entries, state = reply[1], str(reply[2])
        if not entries:
            if state and any(isinstance(e, TERMINAL) for e in _events_of(self._export, state)):
                self._done = True  # its terminal event came before the cursor: nothing follows
                return
            if self._resumed and self._export is not None and not state:
                self._done = True  # it ended and left the server's list: the fleet forgot it
                return
            # Only a wake-up: what came is read by the script, which checks the cursor again.
            await redis.xread({self._keys.stream: self._cursor}, count=1, block=_BLOCK_MS)
            return
        for identifier, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if fields.get("p") != self._epoch:
                self._lost_epoch()
                return
            self._cursor = str(identifier)
            if "e" not in fields or (self._export is not None and fields.get("x") != self._export):
                continue
            try:
                event = vdgexport.event_from_dict(json.loads(fields["e"]))
            except ValueError as exc:
                raise vdgexport.VdgError(f"fleet entry {self._cursor} is no event: {exc}") from None
            self._emit(Token(self._epoch, self._cursor), event)

    def _lost_epoch(self) -> None:
        """Redis lost the stream (or it was made anew): send the current state again."""
        self._epoch, self._resync = None, True

    def _emit(self, token: Token, event: WatchEvent) -> None:
        self._pending.append(FleetEvent(str(token), event, self._resync))
        self._resync = False


def _events_of(export_id: str | None, text: str) -> list[WatchEvent]:
    try:
        return state_events(text)
    except ValueError as exc:
        raise vdgexport.VdgError(f"fleet state of export {export_id!r}: {exc}") from None


def subscribe(
    redis_url: str,
    *,
    name: str,
    export_id: vdgexport.ExportId | None = None,
    since: str | None = None,
) -> Subscription:
    """The events of fleet ``name``, as `FleetEvent` values; use it with ``async with``.

    Without ``since`` it begins with the current state (what a new watch of each export
    gives first), then live events. ``since`` is the token of an earlier `FleetEvent`: the
    subscription goes on right after it, nothing repeated, nothing lost; when that cannot be
    (the token's entries were trimmed, or Redis lost its data) it sends the current state
    again, its first event marked ``resync=True``. The same holds for a subscriber that
    falls behind: if the stream is trimmed past the last event it read, or Redis loses
    entries it read (restored from an older snapshot), it resyncs. With ``export_id`` only
    that export's events come, ending after its terminal event (at once when ``since`` is
    that event or after it, or when the fleet has forgotten the export since: it ended and
    left the server's list). One subscription may be read by several tasks: each event goes
    to one of them. It waits for a publisher to lead, and for
    the export to appear: bound those waits with `anyio.fail_after`. Redis unreachable: it
    keeps trying with backoff.

    Raises:
        ValueError: ``since`` is not a fleet token, or the URL is not a Redis URL.

    Example:
        ```python
        async with vdgexport.fleet.subscribe("redis://localhost", name="site-a") as events:
            async for item in events:
                save(item.token)
                print(item.event)
        ```
    """
    return Subscription(redis_url, name=name, export_id=export_id, since=since)
