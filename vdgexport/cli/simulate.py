"""``vdgexport simulate``: the simulator over real HTTP, with a small control endpoint."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from vdgexport.testing import SenseSimulator, SimRequest

from .common import EXIT_ERROR, EXIT_OK, INSTALL_HINT
from .options import Options, count, positive

__all__ = ["CONTROL_HELP", "SimControl", "make_simulator", "register", "run", "serve"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTROL_HELP = """\
control endpoint (beside the API, under /_sim):
  GET  /_sim                                  the exports and their status, and the
                                              requests answered (count, the last 10)
  POST /_sim/add?devices=N&duration=SECONDS   add an export; answers its id
  POST /_sim/remove?exportid=ID               remove an export (status REMOVED)
  POST /_sim/restart                          restart the PluginManager: every export
                                              is forgotten, ids start again at 1
example:
  curl -X POST 'http://127.0.0.1:8080/_sim/remove?exportid=2'
"""


def register(commands: Any, options: Options) -> None:
    """Add ``simulate`` to ``commands``."""
    cmd = commands.add_parser(
        "simulate",
        help="serve the simulator over HTTP",
        description="Serve a simulated SensePluginManager over real HTTP, for curl or your "
        "own code. Stop it with Ctrl-C.",
        epilog=CONTROL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on")
    cmd.add_argument(
        "--port",
        type=count,
        default=8080,
        help="port to listen on; 0 picks a free one (default: 8080)",
    )
    cmd.add_argument(
        "--exports", type=count, default=5, metavar="N", help="exports to start with (default: 5)"
    )
    cmd.add_argument(
        "--speed",
        type=positive,
        default=1.0,
        metavar="X",
        help="simulated seconds per real second (default: 1)",
    )
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the simulator until interrupted; return the exit code."""
    return serve(host=args.host, port=args.port, exports=args.exports, speed=args.speed)


class SimControl:
    """An ASGI app: ``/_sim`` controls the simulator, every other path goes to it."""

    def __init__(self, sim: SenseSimulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI 3 connection."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/_sim" or path.startswith("/_sim/")):
            await self.sim(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace")))
        status, text = self.control(scope.get("method", "GET"), path, query)
        body = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def control(self, method: str, path: str, query: dict[str, str]) -> tuple[int, str]:
        """Carry out one control request; return the HTTP status and a line of text."""
        action = path[len("/_sim") :].strip("/")
        if action == "":
            return 200, self._listing()
        if action not in ("add", "remove", "restart"):
            return 404, f"no such control: {action}\n\n{CONTROL_HELP}"
        if method != "POST":
            return 405, f"use POST /_sim/{action}\n"
        if action == "restart":
            self.sim.restart()
            return 200, "restarted: every export forgotten, ids start again at 1\n"
        if action == "remove":
            export_id = query.get("exportid", "")
            try:
                self.sim.remove_export(export_id)
            except KeyError:
                return 404, f"no export {export_id!r}\n"
            return 200, f"removed export {export_id}\n"
        try:
            devices = int(query.get("devices", "1"))
            export_id = self.sim.add_export(
                devices=devices, duration=float(query.get("duration", "60"))
            )
        except ValueError as exc:
            return 400, f"bad request: {exc}\n"
        return 200, f"{export_id}\n"

    def _listing(self) -> str:
        lines = [f"{i} {self.sim.status_of(i)}" for i in self.sim.export_ids()]
        log = self.sim.requests
        lines += ["", f"requests answered: {len(log)} (the last {min(len(log), _LAST)} below)"]
        lines += [_request_line(r) for r in log[-_LAST:]]
        return "\n".join([*lines, "", CONTROL_HELP])


_LAST = 10


def _request_line(request: SimRequest) -> str:
    """One request of the log: simulated time, method, path, query, and any fault served."""
    query = " ".join(f"{k}={v}" for k, v in request.query.items())
    fault = f" [fault: {request.fault.name.lower()}]" if request.fault is not None else ""
    return f"  {request.time:10.2f}s {request.method} {request.path} {query}{fault}".rstrip()


def make_simulator(exports: int, speed: float) -> SenseSimulator:
    """A simulator running at ``speed`` with ``exports`` exports of 1-4 devices."""
    t0 = time.monotonic()
    sim = SenseSimulator(clock=lambda: (time.monotonic() - t0) * speed)
    for n in range(exports):
        sim.add_export(
            devices=1 + n % 4, duration=60.0 * (n + 1), bandwidth_kbps=4000.0 * (1 + n % 3)
        )
    return sim


def serve(*, host: str, port: int, exports: int, speed: float) -> int:
    """Serve the simulator with uvicorn until interrupted; return the exit code."""
    try:
        import uvicorn
    except ImportError:
        print(f"vdgexport simulate needs uvicorn: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_ERROR

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit or not self.servers:
                return
            bound = self.servers[0].sockets[0].getsockname()
            url = f"http://{_host(bound[0])}:{bound[1]}"
            print(
                f"vdgexport simulator at {url} ({exports} exports, {speed:g}x speed)\n"
                f"  try:     curl '{url}/command?command=getExportVideoStatus'\n"
                f"  control: curl -X POST {url}/_sim/restart   (see {url}/_sim)\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )

    app = SimControl(make_simulator(exports, speed))
    server = Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:  # uvicorn could not start (it logged why)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return EXIT_OK


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
