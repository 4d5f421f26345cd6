"""A trio service watching many exports at once, reacting to how each one ends.

Every export is followed by its own task in one nursery; all share one client and its
poller (one request per poll, however many exports). A failure of one watch (an outage
longer than `outage_timeout`, say) ends that watch alone: the others go on.

Run it against the simulator (`pip install trio`):

    vdgexport simulate --port 8080 &
    VDG_URL=http://127.0.0.1:8080 python examples/trio_service.py          # every export
    VDG_URL=http://127.0.0.1:8080 python examples/trio_service.py 1 2 3    # these ids
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import trio

import vdgexport


async def follow(client: vdgexport.Client, export_id: str, outcomes: Counter[str]) -> None:
    """Watch one export to its end and react to the outcome."""
    try:
        async with client.watch(export_id) as events:
            async for event in events:
                match event:
                    case (
                        vdgexport.ExportCompleted()
                        | vdgexport.ExportRemoved()
                        | vdgexport.ExportVanished()
                    ):
                        outcomes[react(event)] += 1
                    case _:
                        pass  # progress: a service might update a database here
    except vdgexport.VdgError as exc:
        print(f"{export_id}: failed: {type(exc).__name__}: {exc}", flush=True)
        outcomes["failed"] += 1


def react(event: vdgexport.TerminalEvent) -> str:
    """What a service would do with each outcome (here: say it); the outcome's name."""
    match event:
        case vdgexport.ExportCompleted(export=export):
            print(f"{event.export_id}: completed, {export.path} is ready", flush=True)
            return "completed"
        case vdgexport.ExportRemoved(export=export):
            print(f"{event.export_id}: removed at {export.progress:.0f}%", flush=True)
            return "removed"
        case vdgexport.ExportVanished(reason=reason):
            print(f"{event.export_id}: vanished ({reason.value})", flush=True)
            return "vanished"


async def main(export_ids: list[str]) -> int:
    url = os.environ.get("VDG_URL", "http://127.0.0.1:8080")
    poll_interval = float(os.environ.get("VDG_POLL_INTERVAL", "1"))
    outcomes: Counter[str] = Counter()
    async with vdgexport.Client(url, poll_interval=poll_interval) as client:
        if not export_ids:
            export_ids = [export.export_id for export in await client.list_exports()]
        print(f"watching {len(export_ids)} exports", flush=True)
        async with trio.open_nursery() as nursery:
            for export_id in export_ids:
                nursery.start_soon(follow, client, export_id, outcomes)
    names = ("completed", "removed", "vanished", "failed")
    print(", ".join(f"{outcomes[name]} {name}" for name in names))
    return 0 if outcomes["completed"] == len(export_ids) else 1


if __name__ == "__main__":
    sys.exit(trio.run(main, sys.argv[1:]))
