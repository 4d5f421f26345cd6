"""``vdgexport serve``: the relay (`vdgexport.web`) over HTTP until Ctrl-C; ``--demo`` too."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel

import vdgexport

from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, error
from .connect import make_client
from .metrics import ClientHealth, RelayCollector, fleet_health, relay_routes
from .options import Options, count, positive
from .publish import FLEET_HINT, add_redis_options

__all__ = ["WEB_HINT", "is_loopback", "register", "run"]

WEB_HINT = "pip install 'vdgexport[cli,web]'"
#: Real seconds the outcomes of a demo round stay on the page before the next round.
DEMO_PAUSE = 20.0

_DESCRIPTION = """\
Serve the relay: one poller of the VDG server for any number of browsers and services.
GET / is a live dashboard; /api/exports, /api/exports/ID and /api/exports/ID/events,
/api/events serve JSON and server-sent events; /metrics (Prometheus) and /healthz tell
how it does. The first line printed is the relay's URL. The relay has no login of its own:
keep it on loopback (the default) or behind a proxy that authenticates. With --demo it
serves the built-in simulator, playing the demo's script (exports complete, one is removed,
the PluginManager restarts) round after round. With --redis URL --name NAME (instead of
--url) it serves a fleet's events from Redis (see vdgexport publish) and polls nothing:
run as many replicas as you like; a browser resumes on any of them."""


def register(commands: Any, options: Options) -> None:
    """Add ``serve`` to ``commands``."""
    cmd = commands.add_parser(
        "serve",
        parents=[options.output, options.server],
        help="serve the dashboard and the events over HTTP (the relay)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    cmd.add_argument(
        "--port", type=count, default=8000, help="port to listen on; 0 picks a free one"
    )
    cmd.add_argument(
        "--demo", action="store_true", help="serve the built-in simulator (no --url needed)"
    )
    cmd.add_argument(
        "--speed",
        type=positive,
        default=2.0,
        metavar="X",
        help="with --demo: simulated seconds per real second (default: 2)",
    )
    add_redis_options(cmd, required=False)
    cmd.set_defaults(run=run, needs_url=False)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; return the exit code."""
    try:
        import uvicorn  # noqa: F401

        from vdgexport.web import RelayStats, create_app
    except ImportError:
        hint = "pip install 'vdgexport[cli,web,fleet]'" if args.redis else WEB_HINT
        error(f"serve needs the web extra: {hint}")
        return EXIT_ERROR
    problem = _usage(args)
    if problem:
        print(f"vdgexport serve: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        source, health, play = _source(args)
    except ImportError:
        error(f"serve --redis needs the fleet extra: {FLEET_HINT}")
        return EXIT_ERROR
    except ValueError as exc:
        print(f"vdgexport serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not is_loopback(args.host):
        _say(
            f"warning: listening on {args.host}: the relay has no login, anyone who can reach "
            "it sees every export"
        )
    stats = RelayStats()
    app = create_app(source, list_max_age=max(2.0, args.interval), stats=stats)
    client = source if isinstance(source, vdgexport.Client) else None
    app.router.routes.extend(relay_routes(RelayCollector(stats, client), health))
    try:
        anyio.run(_serve, app, source, args.host, args.port, play)  # uvicorn needs asyncio
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:  # uvicorn could not listen (it logged why)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    return EXIT_OK


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the choice of source (--url, --demo, --redis), if anything."""
    url_given = bool(args.url) and args.url != os.environ.get("VDG_URL")  # VDG_URL: a default
    if args.redis is not None:
        if url_given or args.demo:
            return "give --redis or --url (or --demo), not both"
        if not args.name:
            return "--redis needs --name NAME (the fleet's name, as given to vdgexport publish)"
        return None
    if args.name is not None:
        return "--name goes with --redis URL"
    if not args.demo and not args.url:
        return "give --url URL (or set VDG_URL), --redis URL --name NAME, or --demo"
    return None


def _source(args: argparse.Namespace) -> tuple[Any, Callable[[], Awaitable[Any]], Any]:
    """The relay's source (a client, the demo's, or a fleet), its health check, the demo."""
    if args.redis is not None:
        from vdgexport.web import FleetSource

        fleet = FleetSource(args.redis, name=args.name, timeout=args.timeout)  # ImportError
        return fleet, functools.partial(fleet_health, fleet), None  # without the fleet extra
    client, play = _demo(args) if args.demo else (make_client(args, outage_timeout=None), None)
    return client, ClientHealth(client, max_age=args.interval, timeout=args.timeout), play


async def _serve(
    app: Any,
    source: Any,
    host: str,
    port: int,
    play: Callable[[vdgexport.Client], Any] | None,
) -> None:
    import uvicorn

    demo = anyio.CancelScope()

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit or not self.servers:
                return
            bound = self.servers[0].sockets[0].getsockname()
            name = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            print(f"http://{name}:{bound[1]}/", flush=True)
            _say("the relay's dashboard is at that URL; Ctrl-C stops it")

        async def shutdown(self, sockets: Any = None) -> None:
            demo.cancel()
            await anyio.lowlevel.checkpoint()
            await source.aclose()  # ends every open stream, so that connections can close
            await super().shutdown(sockets=sockets)

    async def play_demo(play: Callable[[vdgexport.Client], Any]) -> None:
        with demo:
            await play(source)

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=5
    )
    async with source, anyio.create_task_group() as tasks:
        if play is not None:
            tasks.start_soon(play_demo, play)
        await Server(config).serve()
        demo.cancel()


def _demo(args: argparse.Namespace) -> tuple[vdgexport.Client, Callable[[vdgexport.Client], Any]]:
    """A client of the demo's simulator, and the task that plays its script round after round."""
    from .common import make_console
    from .demo import Stage
    from .views import Board, View

    stage = Stage(args.speed)
    console = make_console()

    class Notes(View):
        def on_event(self, event: vdgexport.WatchEvent) -> None:
            pass

        def note(self, text: str) -> None:
            _say(text)

    def notes(ids: list[str]) -> View:
        return Notes(console, Board(ids))

    async def rounds(client: vdgexport.Client) -> None:
        while True:
            await stage.play(client, notes)
            _say(f"demo: next round in {DEMO_PAUSE:g} s")
            await anyio.sleep(DEMO_PAUSE)

    return stage.client(max_poll=args.interval), rounds


def _say(text: str) -> None:
    print(f"vdgexport: {text}", file=sys.stderr, flush=True)
