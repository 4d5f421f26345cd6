"""A plain (blocking) script: list the exports, watch one, wait for another. SyncClient.

The same calls as `vdgexport.Client`, without `async`/`await`: the client runs in an
event loop of its own thread, which `with` (or `close()`) ends.

Run it against the simulator:

    vdgexport simulate --port 8080 &
    VDG_URL=http://127.0.0.1:8080 python examples/sync_script.py 1 2
"""

from __future__ import annotations

import os
import sys

import vdgexport


def main(watched: str, waited: str) -> int:
    url = os.environ.get("VDG_URL", "http://127.0.0.1:8080")
    poll_interval = float(os.environ.get("VDG_POLL_INTERVAL", "1"))
    with vdgexport.SyncClient(url, poll_interval=poll_interval) as client:
        print(f"server {client.server_info().version}")
        for export in client.list_exports():
            print(f"export {export.export_id}: {export.status.value} {export.progress:.0f}%")

        with client.watch(watched) as events:  # leaving the block unsubscribes
            for event in events:
                match event:
                    case vdgexport.DeviceProgress(device_id=device, progress=progress):
                        print(f"{watched}: device {device} at {progress:.0f}%")
                    case vdgexport.ExportCompleted(export=export):
                        print(f"{watched}: completed, {export.path}")
                    case vdgexport.ExportRemoved() | vdgexport.ExportVanished():
                        print(f"{watched}: no export ({type(event).__name__})")

        try:
            export = client.wait_for_completion(waited, timeout=600)
        except vdgexport.ExportFailedError as exc:
            print(f"{waited}: did not complete ({type(exc.event).__name__})")
            return 3
        print(f"{waited}: completed, {export.path}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sync_script.py WATCHED_ID WAITED_ID")
    sys.exit(main(sys.argv[1], sys.argv[2]))
