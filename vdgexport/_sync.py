"""`SyncClient`: a blocking facade over `Client`, for scripts and sync frameworks.

Nothing is reimplemented here: one `Client` runs in an event loop of its own thread (an
anyio blocking portal) and every method hands its call to it. Like the command line, this
module uses the public API of `vdgexport` only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.from_thread

import vdgexport

if TYPE_CHECKING:
    from vdgexport import (
        ClientStats,
        DeviceSpan,
        Export,
        ExportId,
        ExportList,
        ServerInfo,
        Watch,
        WatchEvent,
    )

__all__ = ["SyncClient", "SyncWatch"]

_T = TypeVar("_T")


class _Closing:
    """Leaving ``with`` calls ``close``."""

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SyncClient(_Closing):
    """A blocking `Client`: the same calls, without ``await``.

    Args:
        base_url: as for `Client`.
        backend: the event loop the client runs in, in a thread of its own: ``"asyncio"``
            (the default) or ``"trio"``.
        **options: every keyword option of `Client` (``auth``, ``timeout``,
            ``poll_interval``, ``verify``, ...), passed on as they are.

    The thread starts here and ends in `close` (or when the ``with`` block is left): no
    thread is left behind. Methods may be called from any thread, e.g. from the views of
    a Django or Flask app that share one client; all watches share one poller.

    Example:
        ```python
        with vdgexport.SyncClient("http://vdg.example", auth=("user", "secret")) as client:
            for export in client.list_exports():
                print(export.export_id, export.status.value)
            with client.watch(42) as events:
                for event in events:
                    print(event)
        ```
    """

    def __init__(self, base_url: str, *, backend: str = "asyncio", **options: Any) -> None:
        self._closed = False
        with ExitStack() as stack:
            self._portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend))
            client = self._portal.call(functools.partial(vdgexport.Client, base_url, **options))
            self._client: vdgexport.Client = stack.enter_context(
                self._portal.wrap_async_context_manager(client)
            )
            self._stack = stack.pop_all()

    def __repr__(self) -> str:
        return f"<SyncClient of {self._client!r}>"

    @property
    def base_url(self) -> str:
        """The server's base URL without user, password, query or fragment: `Client.base_url`."""
        return self._client.base_url

    def __enter__(self) -> SyncClient:
        return self

    def close(self) -> None:
        """Close the client (its watches end with `ClientClosedError`) and end its thread.

        Idempotent; a closed client raises `ClientClosedError` when used.
        """
        self._closed = True
        self._stack.close()

    def _call(self, function: Callable[..., Awaitable[_T]], *args: Any, **kwargs: Any) -> _T:
        if self._closed:
            raise vdgexport.ClientClosedError("the SyncClient is closed")
        return self._portal.call(functools.partial(function, *args, **kwargs))

    def list_exports(self) -> ExportList:
        """Every export the server reports: `Client.list_exports`."""
        return self._call(self._client.list_exports)

    def get_export(self, export_id: ExportId) -> Export:
        """The export with this id: `Client.get_export`."""
        return self._call(self._client.get_export, export_id)

    def wait_for_completion(self, export_id: ExportId, *, timeout: float | None = None) -> Export:
        """Block until the export completes and return it: `Client.wait_for_completion`."""
        return self._call(self._client.wait_for_completion, export_id, timeout=timeout)

    def server_info(self) -> ServerInfo:
        """The server's version and clock: `Client.server_info`."""
        return self._call(self._client.server_info)

    def create_export(
        self,
        spans: Iterable[DeviceSpan],
        *,
        path: str | None = None,
        bandwidth_kbps: float | None = None,
    ) -> str:
        """Ask for a new export; return its id: `Client.create_export`."""
        return self._call(
            self._client.create_export, list(spans), path=path, bandwidth_kbps=bandwidth_kbps
        )

    def remove_export(self, export_id: ExportId) -> None:
        """Remove an export: `Client.remove_export`."""
        self._call(self._client.remove_export, export_id)

    def stats(self) -> ClientStats:
        """Counts of requests, failures and watches so far: `Client.stats` (also when closed)."""
        return self._client.stats()

    def watch(self, export_id: ExportId, *, resume: dict[str, Any] | None = None) -> SyncWatch:
        """Watch one export: a plain iterator of `WatchEvent` (see `SyncWatch`)."""

        async def make() -> Watch:
            return self._client.watch(export_id, resume=resume)

        return SyncWatch(self, self._call(make))


class SyncWatch(_Closing):
    """The events of one watched export, as a plain iterator and a context manager.

    Made by `SyncClient.watch`; it yields what `Watch` yields and raises what it raises.
    Leaving early unsubscribes at once: leave the ``with`` block or call `close`; a watch
    that is dropped after ``break`` is closed when it is collected (at once in CPython).

    Example:
        ```python
        with client.watch(42) as events:
            for event in events:
                if isinstance(event, vdgexport.DeviceProgress):
                    print(f"{event.progress:.0f}%")
        ```
    """

    def __init__(self, client: SyncClient, watch: Watch) -> None:
        self._client = client
        self._watch = watch
        self._closed = False

    def __repr__(self) -> str:
        return f"<SyncWatch of {self._watch!r}>"

    @property
    def export_id(self) -> str:
        """The watched export's id."""
        return self._watch.export_id

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        event = self._client._call(_next_event, self._watch)
        if event is None:
            raise StopIteration
        return event

    def __enter__(self) -> SyncWatch:
        self._client._call(self._watch.__aenter__)
        return self

    def close(self) -> None:
        """Stop watching now (unsubscribe). Idempotent; also fine after the client closed."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(vdgexport.ClientClosedError):  # the client's close ended it
            self._client._call(self._watch.aclose)

    def checkpoint(self) -> dict[str, Any]:
        """What this watch has yielded so far: `Watch.checkpoint`."""

        async def take() -> dict[str, Any]:
            return self._watch.checkpoint()

        return self._client._call(take)

    def __del__(self) -> None:
        # Collected after ``break``: unsubscribe. At exit, or on the portal's own thread
        # (where a blocking call cannot be made), there is nothing left to do.
        with contextlib.suppress(Exception):
            self.close()


async def _next_event(watch: Watch) -> WatchEvent | None:
    """The next event, ``None`` at the end (a coroutine may not end a portal call with
    `StopAsyncIteration`)."""
    try:
        return await watch.__anext__()
    except StopAsyncIteration:
        return None
