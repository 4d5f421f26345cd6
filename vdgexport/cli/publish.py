"""``vdgexport publish``: one publisher of a fleet (see `vdgexport.fleet`), until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

import anyio

import vdgexport

from .common import EXIT_ERROR, EXIT_OK, error, one_line
from .connect import make_client
from .options import Options, count, positive

__all__ = ["FLEET_HINT", "add_redis_options", "find_error", "fleet_logging", "register", "run"]

FLEET_HINT = "pip install 'vdgexport[cli,fleet]'"

_DESCRIPTION = """\
Publish every export of the VDG server to a Redis stream, for any number of subscribers
(vdgexport.fleet.subscribe, vdgexport serve --redis). Run several publishers of one
server, on different machines: one leads (and polls the server), the others stand by and
take over within a lease when it stops. Stderr says "leading" or "standing by" when that
changes, and when Redis is unreachable (it keeps trying)."""


def register(commands: Any, options: Options) -> None:
    """Add ``publish`` to ``commands``."""
    cmd = commands.add_parser(
        "publish",
        parents=[options.output, options.server],
        help="publish the server's exports to Redis, one leader among many",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_redis_options(cmd)
    cmd.add_argument(
        "--lease",
        type=positive,
        default=10.0,
        metavar="SECONDS",
        help="how long a leader holds the lead without renewing it (default: 10)",
    )
    cmd.add_argument(
        "--retention",
        type=_at_least_one,
        default=10_000,
        metavar="N",
        help="events kept in the stream, about (default: 10000)",
    )
    cmd.add_argument(
        "--metrics-port",
        type=count,
        metavar="PORT",
        help="serve /metrics (Prometheus) and /healthz on this port",
    )
    cmd.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address of --metrics-port (default: 127.0.0.1)",
    )
    cmd.set_defaults(run=run)


def add_redis_options(cmd: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--redis URL`` and ``--name NAME``, the fleet's address (publish, serve)."""
    cmd.add_argument(
        "--redis",
        required=required,
        metavar="URL",
        help="the Redis server, redis://[:password@]host[:port][/db]",
    )
    cmd.add_argument(
        "--name",
        required=required,
        help="the fleet's name: one per VDG server, the same everywhere",
    )


def _at_least_one(text: str) -> int:
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def fleet_logging() -> None:
    """Say what the fleet does (leading, standing by, Redis unreachable) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vdgexport: %(message)s"))
    log = logging.getLogger("vdgexport.fleet")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run(args: argparse.Namespace) -> int:
    """Publish until interrupted; return the exit code (1 when it cannot go on)."""
    try:
        import coredis.exceptions

        from vdgexport import fleet
    except ImportError:
        error(f"publish needs the fleet extra: {FLEET_HINT}")
        return EXIT_ERROR
    try:
        client = make_client(args, outage_timeout=None)
        publisher = fleet.Publisher(
            client,
            args.redis,
            name=args.name,
            retention=args.retention,
            lease=args.lease,
            list_interval=args.interval,
        )
    except ValueError as exc:
        error(str(exc))
        return EXIT_ERROR
    fleet_logging()

    if args.metrics_port is not None:
        from .metrics import serve_metrics

        url = serve_metrics(args.metrics_host, args.metrics_port, client, publisher)
        print(f"vdgexport: metrics at {url}/metrics and {url}/healthz", file=sys.stderr)

    async def main() -> BaseException | None:
        async with client, anyio.create_task_group() as tasks:
            tasks.start_soon(_stop_on_signal, tasks.cancel_scope)
            try:
                await publisher.run()
            except Exception as exc:  # raised from task groups: find the cause in the group
                found = find_error(exc, (vdgexport.VdgError, coredis.exceptions.RedisError))
                if found is None:
                    raise
                return found
        return None  # stopped by SIGTERM or SIGINT: the lease was handed back

    failure = anyio.run(main, backend=args.backend)
    if failure is None:
        print("vdgexport: stopped", file=sys.stderr)
        return EXIT_OK
    error(one_line(failure))
    return EXIT_ERROR


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` at SIGTERM or SIGINT: the leader hands its lease back as it stops, and a
    standby leads at once (not a lease later). Where signals cannot be received (Windows),
    Ctrl-C still stops it, and the lease runs out by itself."""
    try:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                scope.cancel()
                return
    except NotImplementedError:  # pragma: no cover - Windows
        await anyio.sleep_forever()


def find_error(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``exc`` if it is one of ``kinds``, or the first such error inside an exception group."""
    if isinstance(exc, kinds):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = find_error(inner, kinds)
        if found is not None:
            return found
    return None
