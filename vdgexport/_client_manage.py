"""The calls around a watch, as part of `Client`: ``/info`` and ``exportVideo``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from typing import TypeVar

from ._checks import check_id
from ._exceptions import ExportNotFoundError, HTTPStatusError, VdgError
from ._manage import check_answer, export_body, find_export_id, parse_info, remove_body
from ._manage import require_exports as _require_exports
from ._models import DeviceSpan, ExportId, ServerInfo
from ._transport import HttpTransport, parsed_by

__all__ = ["ManageCalls"]

logger = logging.getLogger("vdgexport")

_EXPORT_VIDEO = {"command": "exportVideo"}
_FIND_ID = parsed_by(find_export_id)
_CHECK = parsed_by(check_answer)
_T = TypeVar("_T")


class ManageCalls:
    """`Client.server_info`, `Client.create_export` and `Client.remove_export`.

    A part of `Client` (its base class), kept apart so that each module stays small; it
    uses the client's transport, retries, counters and closed check.
    """

    _io: HttpTransport

    def _check_open(self) -> None:
        raise NotImplementedError  # pragma: no cover - `Client` has it

    def _counting(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # pragma: no cover - `Client` has it

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        raise NotImplementedError  # pragma: no cover - `Client` has it

    async def server_info(self) -> ServerInfo:
        """The server's version and clock from ``/info`` (no login; retried like a GET).

        Raises:
            VdgError: ``/info`` answered 404 (Sense before 2.6.1), or the version is before
                2.7.3: either way ``exportVideo`` cannot work there; the message says which.

        Example:
            ```python
            info = await client.server_info()
            print(info.version, info.utc)
            ```
        """

        async def fetch() -> bytes:
            with self._counting():
                return await self._io.request("GET", "info", authenticate=False)

        try:
            body = await self._retrying(fetch)
        except HTTPStatusError as exc:
            if exc.status_code != 404:
                raise
            raise VdgError(
                f"{self._io.safe_base_url}/info answered 404: VDG Sense before 2.6.1 (or not "
                "VDG Sense); exports need Sense 2.7.3 or later"
            ) from exc
        return _require_exports(parse_info(body))

    async def create_export(
        self,
        spans: Iterable[DeviceSpan],
        *,
        path: str | None = None,
        bandwidth_kbps: float | None = None,
    ) -> str:
        """Ask ``exportVideo`` for a new export of these device spans; return its id.

        Each `DeviceSpan` has its own start and end, sent in UTC. ``path`` and
        ``bandwidth_kbps`` are left to the server when ``None``. The request is sent once,
        never retried: a retry after a lost answer could make a second export.

        Raises:
            ValueError: no spans, a bad bandwidth, or text XML cannot carry.
            ProtocolError: no export id in the answer (the message shows the answer).
            ApiError: a negative errorcode (e.g. -2 no device, -4 invalid timestamp).
            TransportError, HTTPStatusError: as for every call, without retries.

        Example:
            ```python
            start = datetime(2024, 1, 19, 10, 0, tzinfo=timezone.utc)
            span = vdgexport.DeviceSpan(server_uid, device_uid, start, start + timedelta(minutes=5))
            export_id = await client.create_export([span], path="D:/Exports/incident-17")
            ```
        """
        self._check_open()
        body = export_body(spans, path=path, bandwidth_kbps=bandwidth_kbps)
        with self._counting():
            return await self._io.call("POST", "command", _EXPORT_VIDEO, _FIND_ID, content=body)

    async def remove_export(self, export_id: ExportId) -> None:
        """Remove an export (the vendor documents this for pending exports); retried.

        Unverified against a real server: the vendor says ``exportVideo`` "can also remove
        a pending export" without documenting how. This POSTs
        ``<export><exportid>ID</exportid><remove>true</remove></export>`` to
        ``command?command=exportVideo``, which is what `vdgexport.testing` implements.
        A watch of the export then ends with `ExportRemoved`.

        A -57 that answers a repeated request (the answer to the first was lost) means that
        the first removed the export: that is success.

        Raises:
            ExportNotFoundError: the server answered -57 (no such export) to the first request.
            ApiError: the server refused (e.g. an export that is no longer pending).
        """
        body = remove_body(check_id(export_id))
        attempts = 0

        async def send() -> None:
            nonlocal attempts
            attempts += 1
            try:
                with self._counting():
                    await self._io.call("POST", "command", _EXPORT_VIDEO, _CHECK, content=body)
            except ExportNotFoundError:
                if attempts == 1:
                    raise
                logger.info("export %r already gone after a repeated removal", export_id)

        await self._retrying(send)
