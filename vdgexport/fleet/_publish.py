"""`publish`: one leading publisher per fleet writes every export's events to Redis."""

from __future__ import annotations

import json
import math
import random
import secrets
from typing import Any

import anyio
import anyio.abc
import coredis

import vdgexport

from ._redis import (
    INIT,
    PRUNE,
    RENEW,
    TAKE,
    WRITE,
    Keys,
    connect,
    entry_order,
    is_transient,
    logger,
    release,
    safe_url,
    unreachable_as_transient,
)
from ._state import ExportState, sliced

__all__ = ["Publisher", "publish"]

_BACKOFF = (0.1, 5.0)  # first and longest wait between attempts to reach Redis
_LOST = "Redis lost the stream or its last entries"
_TAKEN = "the lease is gone or another publisher holds it"


class Publisher:
    """A member of a fleet of publishers; `run` it until cancelled (see `publish`).

    Attributes:
        leading: ``True`` while this publisher holds the lease (and polls and writes).
        reachable: whether Redis answered the last attempt (``None`` before the first).
        epoch: the epoch of the stream it last led (``None`` before it first led).
    """

    def __init__(
        self,
        client: vdgexport.Client,
        redis_url: str,
        *,
        name: str,
        retention: int = 10_000,
        lease: float = 10.0,
        list_interval: float = 1.0,
    ) -> None:
        for what, value in (("lease", lease), ("list_interval", list_interval)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
        if not (isinstance(retention, int) and retention > 0):
            raise ValueError(f"retention must be a positive number of events, not {retention!r}")
        self._keys = Keys.of(name)
        connect(redis_url)  # checks the URL now, not at the first attempt
        self._client, self._url, self._name = client, redis_url, name
        self._retention, self._lease, self._interval = retention, lease, list_interval
        self._token = secrets.token_hex(16)  # of the current (or last) term of lead
        self._last = ""  # the last stream entry this leader knows was written ("": not yet)
        self._known: dict[str, ExportState] = {}
        self._watching: set[str] = set()
        self._lost: str | None = None
        self.leading = False
        self.reachable: bool | None = None
        self.epoch: str | None = None

    def __repr__(self) -> str:
        role = "leading" if self.leading else "standing by"
        return f"<Publisher {self._name!r} {safe_url(self._url)!r} {role}>"

    async def run(self) -> None:
        """Campaign for the lease, lead while holding it, stand by otherwise; never returns.

        Redis unreachable: keep trying with backoff (said once per outage in the log).
        """
        wait = _BACKOFF[0]
        while True:
            redis = connect(self._url)
            try:
                with unreachable_as_transient():
                    async with redis:
                        await self._campaign(redis)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._unreachable(exc)
                await anyio.sleep(wait * random.uniform(0.5, 1.0))
                wait = min(wait * 2, _BACKOFF[1])
                continue

    def _unreachable(self, exc: BaseException) -> None:
        if self.reachable is not False:
            logger.warning(
                "Redis at %s unreachable (%s: %s); retrying with backoff",
                safe_url(self._url),
                type(exc).__name__,
                exc,
            )
        self.reachable = False

    def _reached(self) -> None:
        if self.reachable is False:
            logger.warning("Redis at %s reachable again", safe_url(self._url))
        self.reachable = True

    # -- the lease -----------------------------------------------------------------------

    async def _campaign(self, redis: coredis.Redis[str]) -> None:
        keys, ms = self._keys, int(self._lease * 1000)
        take = redis.register_script(TAKE)
        standing = False
        while True:
            began = anyio.current_time()
            # Each term of lead has a token of its own: what an earlier term sent late (its
            # writes, a renew) is fenced out. A lease that still names our last term (a renew
            # that reached Redis after we stepped down) is ours to take again.
            token = secrets.token_hex(16)
            taken: int = await take(keys=[keys.lease], args=[token, ms, self._token])
            self._reached()
            if taken == 1:
                standing = False
                self._token = token
                await self._lead(redis, began)
                continue
            if not standing:
                logger.info("standing by: another publisher leads fleet %r", self._name)
                standing = True
            left = await redis.pttl(keys.lease)
            # Try again when the lease lapses, and at least every third of a lease.
            third = self._lease / 3
            await anyio.sleep(third if left == -1 else min(max(left, 0) / 1000 + 0.001, third))

    async def _lead(self, redis: coredis.Redis[str], began: float) -> None:
        self._lost, self._last = None, ""  # `_begin` says where the stream is
        with anyio.CancelScope(deadline=began + self._lease) as scope:
            self.leading = True
            try:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(self._renew, scope)
                    await self._work(redis, tasks, scope)
            finally:
                self.leading = False
                self._watching.clear()
                if not scope.cancel_called:  # stopped (cancelled from outside) or failed
                    await release(self._url, self._keys, self._token)
        reason = self._lost or "its lease ran out before it could renew it"
        logger.warning("lost the lead of fleet %r: %s", self._name, reason)

    async def _renew(self, scope: anyio.CancelScope) -> None:
        """Renew the lease on connections of its own, never queued behind event writes."""
        while True:
            try:
                with unreachable_as_transient():
                    async with connect(self._url) as redis:
                        await self._renew_on(redis, scope)
                        return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._unreachable(exc)
                await anyio.sleep(self._lease / 10)  # the deadline steps down if this lasts

    async def _renew_on(self, redis: coredis.Redis[str], scope: anyio.CancelScope) -> None:
        script = redis.register_script(RENEW)
        ms = int(self._lease * 1000)
        while True:
            await anyio.sleep(self._lease / 3)
            began = anyio.current_time()
            fence = [self.epoch or "", self._last] if self._last else ["", ""]
            try:
                renewed: int = await script(keys=self._keys.all(), args=[self._token, ms, *fence])
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._unreachable(exc)  # said (and unhealthy) now, not when the lease ends
                continue  # the deadline steps down if Redis stays away
            self._reached()
            if renewed != 1:
                self._step_down(scope, _LOST if renewed == 2 else _TAKEN)
                return
            scope.deadline = began + self._lease

    def _step_down(self, scope: anyio.CancelScope, reason: str) -> None:
        self._lost = self._lost or reason
        scope.cancel()

    # -- leading -------------------------------------------------------------------------

    async def _work(
        self, redis: coredis.Redis[str], tasks: anyio.abc.TaskGroup, scope: anyio.CancelScope
    ) -> None:
        if not await self._begin(redis, scope):
            return
        known = len(self._known)
        plural = "" if known == 1 else "s"
        logger.info(
            "leading fleet %r (epoch %s, %d export%s known)", self._name, self.epoch, known, plural
        )
        for export_id, state in list(self._known.items()):
            if not state.done:
                self._follow_soon(tasks, redis, scope, export_id, state, state.checkpoint)
        failing = False
        while True:
            # The poller's own list answers (no request of its own: one status request per
            # tick for the list and every watch), looked at every `list_interval` at most.
            try:
                async with self._client.watch_list() as lists:
                    async for listed in lists:
                        failing = False
                        self._discover(listed, tasks, redis, scope)
                        await self._prune(redis, scope, {e.export_id for e in listed})
                        await anyio.sleep(self._interval)
            except (vdgexport.AuthenticationError, vdgexport.ClientClosedError):
                raise
            except vdgexport.VdgError as exc:  # paced by the poller: no burst of retries
                if not failing:
                    logger.warning("cannot list the exports (%s); retrying", exc)
                failing = True

    async def _begin(self, redis: coredis.Redis[str], scope: anyio.CancelScope) -> bool:
        """Read the stored state (or make a new epoch holding ours); ``False``: not leading."""
        carried: list[Any] = []
        for export_id, state in self._known.items():
            carried += [export_id, state.to_json()]
        new_epoch = secrets.token_hex(8)
        script = redis.register_script(INIT)
        reply: list[Any] = await script(
            keys=self._keys.all(), args=[self._token, new_epoch, self._retention, *carried]
        )
        if reply[0] == "lost":
            self._step_down(scope, _TAKEN)
            return False
        self.epoch, self._last = str(reply[1]), str(reply[2])
        if reply[0] == "old":
            self._known = await _stored(reply[3:])
        return True

    def _discover(
        self,
        listed: vdgexport.ExportList,
        tasks: anyio.abc.TaskGroup,
        redis: coredis.Redis[str],
        scope: anyio.CancelScope,
    ) -> None:
        for export in listed:
            export_id = export.export_id
            if export_id in self._watching:
                continue
            state = self._known.get(export_id)
            if state is None:
                state = ExportState.fresh()
            elif state.done:
                if state.export is not None and state.export.fingerprint == export.fingerprint:
                    continue  # the same finished export, still listed
                state = ExportState.fresh(state.seq)  # the id names another
            resume = state.checkpoint or None
            self._follow_soon(tasks, redis, scope, export_id, state, resume)

    def _follow_soon(
        self,
        tasks: anyio.abc.TaskGroup,
        redis: coredis.Redis[str],
        scope: anyio.CancelScope,
        export_id: str,
        state: ExportState,
        resume: dict[str, Any] | None,
    ) -> None:
        self._watching.add(export_id)
        tasks.start_soon(self._follow, redis, scope, export_id, state, resume)

    async def _follow(
        self,
        redis: coredis.Redis[str],
        scope: anyio.CancelScope,
        export_id: str,
        state: ExportState,
        resume: dict[str, Any] | None,
    ) -> None:
        script = redis.register_script(WRITE)
        try:
            async with self._client.watch(export_id, resume=resume) as watch:
                async for event in watch:
                    after = state.after(event, watch.checkpoint())
                    await self._write(script, scope, export_id, event, after)
                    state = self._known[export_id] = after
        except vdgexport.ClientClosedError:
            raise
        except vdgexport.VdgError as exc:
            logger.warning("the watch of export %r failed (%s); it starts again", export_id, exc)
        except ValueError as exc:  # a stored checkpoint this version cannot read
            logger.warning("export %r: %s; watching it afresh", export_id, exc)
            self._known.pop(export_id, None)
        finally:
            self._watching.discard(export_id)

    async def _write(
        self,
        script: Any,
        scope: anyio.CancelScope,
        export_id: str,
        event: vdgexport.WatchEvent,
        after: ExportState,
    ) -> None:
        body = json.dumps(vdgexport.event_to_dict(event))
        args = [self._token, self.epoch, self._retention, export_id, after.to_json(), body]
        wait = 0.01
        while True:
            try:
                reply: object = await script(keys=self._keys.all(), args=[*args, self._last])
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self._unreachable(exc)
                await anyio.sleep(wait)  # until it works or the lease runs out
                wait = min(wait * 2, self._lease / 10)
        if reply in ("lost", "epoch"):
            self._step_down(scope, _TAKEN if reply == "lost" else _LOST)
            await anyio.sleep_forever()
        if reply != "dup" and entry_order(str(reply)) > entry_order(self._last):
            self._last = str(reply)

    async def _prune(
        self, redis: coredis.Redis[str], scope: anyio.CancelScope, listed: set[str]
    ) -> None:
        gone = [i for i, s in self._known.items() if s.done and i not in listed]
        if not gone:
            return
        script = redis.register_script(PRUNE)
        if await script(keys=self._keys.all(), args=[self._token, *gone]) == -1:
            self._step_down(scope, _TAKEN)
            await anyio.sleep_forever()
        for export_id in gone:
            self._known.pop(export_id, None)


async def _stored(flat: list[Any]) -> dict[str, ExportState]:
    def read(pair: tuple[Any, Any]) -> tuple[str, ExportState | None]:
        try:
            return str(pair[0]), ExportState.from_json(str(pair[1]))
        except ValueError as exc:
            logger.warning("export %r: %s; watching it afresh", pair[0], exc)
            return str(pair[0]), None

    read_all = await sliced(read, zip(flat[::2], flat[1::2], strict=True))
    return {export_id: state for export_id, state in read_all if state is not None}


async def publish(
    client: vdgexport.Client,
    redis_url: str,
    *,
    name: str,
    retention: int = 10_000,
    lease: float = 10.0,
    list_interval: float = 1.0,
) -> None:
    """Publish every export of ``client``'s server to the fleet ``name`` in Redis; run until
    cancelled.

    Any number of publishers may run for one fleet: one leads at a time, holding a lease of
    ``lease`` seconds; the others stand by and take over when it lapses. The leader follows
    the server's list through the client's own poller (`vdgexport.Client.watch_list`), looking
    for new exports every ``list_interval`` seconds at most, watches each one (one status
    request per tick for the list and every watch: the list asks for nothing of its own),
    and appends each event to the fleet's
    stream (about ``retention`` entries kept) together with the export's current state and
    watch checkpoint, in one script fenced by the lease. A new leader resumes every watch
    from its stored checkpoint: subscribers see no event twice and none lost.

    Args:
        client: an entered `vdgexport.Client` (its pace is the fleet's pace).
        redis_url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``).
        name: the fleet: one per VDG server.
        list_interval: the least time, in seconds, between two looks at the list for new
            exports and forgotten ones. It costs the VDG server nothing: the list is the
            one the client's poller fetches anyway.

    Example:
        ```python
        async with vdgexport.Client("http://vdg.example", auth=("user", "secret")) as client:
            await vdgexport.fleet.publish(client, "redis://localhost", name="site-a")
        ```
    """
    await Publisher(
        client, redis_url, name=name, retention=retention, lease=lease, list_interval=list_interval
    ).run()
