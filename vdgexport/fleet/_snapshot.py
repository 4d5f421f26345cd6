"""`snapshot`: the fleet's current exports and whether a publisher leads, in one look."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import vdgexport

from ._redis import SNAPSHOT, Keys, connect, unreachable_as_transient
from ._state import ExportState, export_order, sliced

__all__ = ["FleetSnapshot", "snapshot"]


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What a fleet holds now.

    Attributes:
        epoch: the stream's epoch (``None``: no publisher has ever led, or Redis lost it).
        leading: whether a publisher holds the lease now.
        exports: the current state of every export the fleet knows, by id.
    """

    epoch: str | None
    leading: bool
    exports: tuple[vdgexport.Export, ...]


async def snapshot(
    redis_url: str, *, name: str, export_id: vdgexport.ExportId | None = None
) -> FleetSnapshot:
    """The current exports of fleet ``name`` and whether a publisher leads it.

    For health checks and for ``GET /api/exports`` of ``vdgexport serve --redis``. With
    ``export_id`` only that export is read (``exports`` holds it, or nothing when the fleet
    does not know it): one state, however many the fleet holds.

    Raises:
        ValueError: not a Redis URL, or a bad fleet name.
        coredis.exceptions.ConnectionError: Redis is unreachable.
        vdgexport.VdgError: a stored state cannot be read (written by another version?).

    Example:
        ```python
        now = await vdgexport.fleet.snapshot("redis://localhost", name="site-a")
        print(now.leading, [e.export_id for e in now.exports])
        ```
    """
    keys = Keys.of(name)
    redis = connect(redis_url)
    with unreachable_as_transient():
        async with redis:
            script = redis.register_script(SNAPSHOT)
            wanted = "" if export_id is None else str(export_id)
            reply: list[Any] = await script(keys=keys.all(), args=[wanted])
            leading = bool(await redis.exists([keys.lease]))
    if not reply:
        return FleetSnapshot(None, leading, ())

    def read(pair: tuple[Any, Any]) -> vdgexport.Export | None:
        try:
            return ExportState.from_json(str(pair[1])).export
        except ValueError as exc:
            raise vdgexport.VdgError(f"fleet state of export {str(pair[0])!r}: {exc}") from None

    read_all = await sliced(read, zip(reply[2::2], reply[3::2], strict=True))
    exports = [export for export in read_all if export is not None]
    exports.sort(key=lambda e: export_order(e.export_id))
    return FleetSnapshot(str(reply[0]), leading, tuple(exports))
