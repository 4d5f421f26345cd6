"""`Client`: the one object a user makes."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from ._auth import SessionAuth, client_auth
from ._checks import check_count, check_id, check_transport, check_url, seconds
from ._client_manage import ManageCalls
from ._events import ExportCompleted, ExportRemoved, ExportVanished
from ._exceptions import (
    ApiError,
    ClientClosedError,
    ExportRemovedError,
    ExportVanishedError,
    VdgError,
)
from ._incremental import ListParser, parse_export_async
from ._listwatch import ListWatch
from ._models import ClientStats, Export, ExportId, ExportList
from ._poller import Poller
from ._retry import retrying
from ._tls import Verify, ssl_verify
from ._transport import HttpTransport, cookie_jar
from ._watch import Watch

if sys.version_info >= (3, 11):
    _Group = BaseExceptionGroup  # noqa: F821 - a builtin since 3.11
else:  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup as _Group

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "Client"]

logger = logging.getLogger("vdgexport")

#: Default cap on the size of one answer: 16 MiB (about 12,000 exports of 4 devices).
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_LIST = {"command": "getExportVideoStatus"}
_T = TypeVar("_T")


class Client(ManageCalls):
    """An async client of one VDG Sense server's SensePluginManager.

    Args:
        base_url: ``http://server[:port]``, with the path prefix of a reverse proxy if any;
            requests go to ``{base_url}/command``.
        auth: an `httpx.Auth` (e.g. `SessionAuth`), or a ``(username, password)`` pair for
            HTTP Basic authentication.
        timeout: seconds one request may take in all (connect, send, wait and read).
        poll_interval: the fastest pace of watches, in seconds, and the first step of the
            backoff after a failure.
        max_poll_interval: the slowest pace, reached while nothing changes.
        outage_timeout: how long a watch rides through consecutive failures before it raises
            the last error; ``None`` rides forever.
        max_response_bytes: answers larger than this are refused with `ProtocolError`; the
            rest of such a body is never read.
        stall_after: seconds without progress after which a watch yields `ExportStalled`;
            ``None`` (the default) never does.
        transport: any `httpx.AsyncBaseTransport`, e.g. ``httpx.ASGITransport(app=simulator)``.
        clock: the monotonic time source (seconds) of rates, ETAs, stall detection and
            ``lost_after``; tests pass the simulator's `ManualClock`. Polling itself always
            runs in real time.
        verify: HTTPS certificate checks: ``True`` (the system's CAs), a CA bundle path
            (a PEM file or a directory; e.g. the private CA that signed a VMS server's
            certificate), an `ssl.SSLContext`, or ``False`` (no check: avoid). A refused
            certificate is a `TransportError` at once, never retried; it ends a watch.
        lost_after: seconds of failing polls of an export after which its watches yield
            `ConnectionLost` (then `ConnectionRestored` at the first answer); ``None``
            never does.

    Watching needs ``async with``: the client owns the task that polls. One-shot calls
    (`list_exports`, `get_export`) also work on a client that was never entered, until
    `aclose`. A closed client raises `ClientClosedError` when used.

    Example:
        ```python
        async with vdgexport.Client("http://vdg.example", auth=("user", "secret")) as client:
            exports = await client.list_exports()
            final = await client.wait_for_completion(42, timeout=600)
        ```
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
        outage_timeout: float | None = 300.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        stall_after: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] | None = None,
        verify: Verify = True,
        lost_after: float | None = 10.0,
    ) -> None:
        url = check_url(base_url)
        timeout = seconds("timeout", timeout)
        poll_interval = seconds("poll_interval", poll_interval)
        max_poll_interval = seconds("max_poll_interval", max_poll_interval)
        outage_timeout = seconds("outage_timeout", outage_timeout, optional=True)
        stall_after = seconds("stall_after", stall_after, optional=True)
        lost_after = seconds("lost_after", lost_after, optional=True)
        max_response_bytes = check_count("max_response_bytes", max_response_bytes)
        session = client_auth(auth, url)
        self._requests = self._failures = 0  # for `stats`
        self._http = httpx.AsyncClient(
            auth=session,
            transport=check_transport(transport),
            cookies=cookie_jar(),
            timeout=timeout,
            follow_redirects=False,
            verify=ssl_verify(verify),
            event_hooks={"request": [self._count_request]},  # logins included
        )
        self._io = HttpTransport(
            self._http,
            str(url),
            timeout=timeout,
            max_bytes=max_response_bytes,
            renew=session._expire_session if isinstance(session, SessionAuth) else None,
        )
        self._poll = (poll_interval, max(poll_interval, max_poll_interval))
        self._poller = Poller(
            fetch_one=self._fetch_one,
            fetch_list=self._fetch_list,
            spawn=self._spawn,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
            outage_timeout=outage_timeout,
            stall_after=stall_after,
            lost_after=lost_after,
            clock=clock or time.monotonic,
        )
        self._stack: AsyncExitStack | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._lists = ListParser()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"watching={self._poller.watched}"
        return f"<Client {self.base_url!r} {state}>"

    @property
    def base_url(self) -> str:
        """The server's base URL as text, without user, password, query or fragment.

        What to show a person or write in a log; the credentials of a URL given to the
        client went into its auth and are never shown.

        Example:
            ```python
            client = vdgexport.Client("http://op:secret@vdg.example:8080/sense/?x=1")
            assert client.base_url == "http://vdg.example:8080/sense"
            ```
        """
        return self._io.safe_base_url

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        self._check_open()
        if self._stack is not None:
            raise RuntimeError("a Client can be entered only once")
        async with AsyncExitStack() as stack:
            self._tasks = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        stack, self._stack = self._stack, None
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
        except _Group as group:
            # The poller never raises, so the task group only wraps the block's own error:
            # let it propagate as itself, so that `except VdgError` around the block works.
            if exc is None or list(group.exceptions) != [exc]:
                raise

    async def aclose(self) -> None:
        """Stop polling, end open watches with `ClientClosedError`, close the connections.

        May be called from any task, also inside the ``async with`` block while watches
        run; idempotent.
        """
        if self._closed:
            return
        self._closed = True
        await self._poller.aclose()
        with anyio.CancelScope(shield=True):
            await self._http.aclose()

    def stats(self) -> ClientStats:
        """Counts of requests, failures and watches so far (`ClientStats`), also when closed.

        Safe to call from any thread (e.g. a metrics server's): every count is an int the
        event loop keeps up to date.
        """
        poller = self._poller
        return ClientStats(
            self._requests, self._failures, poller.watches, poller.watched, poller.list_watches
        )

    async def _count_request(self, request: httpx.Request) -> None:
        self._requests += 1

    @contextmanager
    def _counting(self) -> Iterator[None]:
        """Count a request that ends in an error (an `ApiError` is an answer, not one)."""
        try:
            yield
        except VdgError as exc:
            self._failures += not isinstance(exc, ApiError)
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the Client is closed")

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._tasks is None:
            raise RuntimeError("watching needs the client entered: `async with Client(...)`")
        self._tasks.start_soon(fn, name="vdgexport poller")

    # -- one-shot calls ------------------------------------------------------------------

    async def list_exports(self) -> ExportList:
        """Every export the server reports (retried on transient failures).

        Example:
            ```python
            for export in await client.list_exports():
                print(export.export_id, export.status.value, f"{export.progress:.0f}%")
            ```
        """
        return await self._retrying(self._fetch_list)

    async def get_export(self, export_id: ExportId) -> Export:
        """The export with this id; `ExportNotFoundError` if the server answers -57.

        Raises:
            TypeError, ValueError: ``export_id`` is not an id (see `check_id`).
        """
        text = check_id(export_id)

        async def fetch() -> Export:
            return await self._fetch_one(text)

        return await self._retrying(fetch)

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        self._check_open()
        return await retrying(call, base=self._poll[0], cap=self._poll[1])

    async def _fetch_list(self) -> ExportList:
        """One whole-list request; unchanged exports come back as the very same objects."""
        self._check_open()
        with self._counting():
            return await self._io.call("GET", "command", _LIST, self._lists.parse_async)

    async def _fetch_one(self, export_id: str) -> Export:
        self._check_open()
        params = {**_LIST, "exportid": export_id}

        async def parse(body: bytes) -> Export:
            return await parse_export_async(body, export_id)

        with self._counting():
            return await self._io.call("GET", "command", params, parse)

    async def _command(self, command: str, **params: str) -> bytes:
        self._check_open()
        return await self._io.request("GET", "command", {"command": command, **params})

    # -- watching ------------------------------------------------------------------------

    def watch(self, export_id: ExportId, *, resume: dict[str, Any] | None = None) -> Watch:
        """Watch one export: an async iterator of `WatchEvent`, ending after a terminal one.

        Any number of watches share one request per poll. ``resume`` takes a
        `Watch.checkpoint` to go on from it. See `Watch` for the details.

        Example:
            ```python
            async with client.watch(42) as events:
                async for event in events:
                    print(event)
            ```
        """
        text = check_id(export_id)
        self._check_open()
        return Watch(self._poller, text, resume)

    def watch_list(self) -> ListWatch:
        """Watch the server's whole list: an async iterator of `ExportList`, one per poll.

        While one is subscribed, each tick of the client's poller is one whole-list request
        and every `watch` of the client is served from that same answer, so a service that
        discovers exports and watches each of them (a relay, a fleet publisher) costs the
        server one status request per tick. It yields the latest list only (a slow consumer
        gets the newest, never a backlog; an unchanged answer is the same object again),
        nothing during an outage, raises as a `Watch` does after ``outage_timeout`` of
        failures or on a permanent error, and ends with `ClientClosedError` when the client
        closes. Leaving it in any way unsubscribes at once. See `ListWatch`.

        Example:
            ```python
            async with client.watch_list() as lists:
                async for exports in lists:
                    for export in exports:
                        if export.export_id not in followed:
                            followed.add(export.export_id)
                            tasks.start_soon(follow, client.watch(export.export_id))
            ```
        """
        self._check_open()
        return ListWatch(self._poller)

    async def wait_for_completion(
        self,
        export_id: ExportId,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the documented API
    ) -> Export:
        """Wait until the export completes and return it.

        Raises:
            ExportRemovedError: the export was removed first (``.event`` is `ExportRemoved`).
            ExportVanishedError: the id vanished (``.event`` is `ExportVanished`).
            TimeoutError: ``timeout`` seconds passed first (the message names the id and
                the time waited).
            VdgError: the watch could not go on (see `Watch`).

        Example:
            ```python
            try:
                export = await client.wait_for_completion(42, timeout=600)
            except vdgexport.ExportFailedError as exc:
                print("no export:", exc.event)
            ```
        """
        with anyio.move_on_after(timeout) as deadline:
            async with self.watch(export_id) as events:
                async for event in events:
                    if isinstance(event, ExportCompleted):
                        return event.export
                    if isinstance(event, ExportRemoved):
                        raise ExportRemovedError(f"export {export_id!r} was removed", event)
                    if isinstance(event, ExportVanished):
                        raise ExportVanishedError(
                            f"export {export_id!r} vanished ({event.reason.value})", event
                        )
        if deadline.cancelled_caught:
            raise TimeoutError(f"export {str(export_id)!r} did not complete within {timeout:g} s")
        raise RuntimeError("the watch ended without a terminal event")  # pragma: no cover
