"""The ``vdgexport`` command line: ``demo``, ``status``, ``watch`` and ``simulate``.

Needs the ``cli`` extra (rich, uvicorn), imported only when a command runs, never when
`vdgexport` is imported.

Exit codes: 0 every watched export completed, 3 one was removed, 4 one vanished (4 wins
over 3), 1 any other error, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from . import __version__
from ._auth import SessionAuth
from ._cli_args import build_parser
from ._client import Client
from ._events import ExportCompleted, ExportRemoved, ExportVanished, TerminalEvent, WatchEvent
from ._exceptions import ExportNotFoundError, VdgError

if TYPE_CHECKING:
    from rich.console import Console

    from ._cli_view import View

__all__ = ["main", "run_watches"]

INSTALL_HINT = "pip install 'vdgexport[cli]'"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REMOVED, EXIT_VANISHED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vdgexport`` command line and return its exit code.

    ``argv`` defaults to ``sys.argv[1:]``. The console script exits with the returned code.
    """
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            f"vdgexport: the command line needs its extra packages: {INSTALL_HINT}", file=sys.stderr
        )
        return EXIT_ERROR
    parser = build_parser(version=__version__)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or bad usage (argparse printed why)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "needs_url", False) and not args.url:
        print(f"vdgexport {args.command}: error: give --url URL or set VDG_URL", file=sys.stderr)
        return EXIT_USAGE
    command: Callable[[argparse.Namespace], int] = _COMMANDS[args.command]
    try:
        return command(args)
    except KeyboardInterrupt:
        print("vdgexport: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- commands ------------------------------------------------------------------------------


def make_console() -> Console:
    """A console on stdout that detects whether it is a terminal (no colours if not)."""
    from rich.console import Console

    return Console(force_terminal=None, highlight=False)


def _run_demo(args: argparse.Namespace) -> int:
    from ._cli_demo import run_demo

    return anyio.run(run_demo, make_console(), args.speed, args.json, backend=args.backend)


def _run_simulate(args: argparse.Namespace) -> int:
    from ._cli_sim import serve

    return serve(host=args.host, port=args.port, exports=args.exports, speed=args.speed)


def _run_status(args: argparse.Namespace) -> int:
    return _with_client(args, _status)


def _run_watch(args: argparse.Namespace) -> int:
    return _with_client(args, _watch)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo": _run_demo,
    "simulate": _run_simulate,
    "status": _run_status,
    "watch": _run_watch,
}


def _with_client(
    args: argparse.Namespace, command: Callable[[Client, argparse.Namespace, Console], Any]
) -> int:
    """Run ``command`` with a client of ``--url``; a `VdgError` becomes one line and 1."""
    auth = None
    if args.user:
        password = os.environ.get("VDG_PASSWORD")
        if password is None:
            password = getpass.getpass(f"Password for {args.user}: ")
        auth = (
            SessionAuth(args.user, password) if args.login == "session" else (args.user, password)
        )
    console = make_console()

    async def run() -> int | VdgError:
        async with Client(
            args.url,
            auth=auth,
            timeout=args.timeout,
            poll_interval=args.interval,
            max_poll_interval=max(args.interval, 10.0),
            outage_timeout=getattr(args, "outage_timeout", 300.0),
        ) as client:
            # Caught inside the block: the client's task group would wrap it in a group.
            try:
                code: int = await command(client, args, console)
            except VdgError as exc:
                return exc
            return code

    result = anyio.run(run, backend=args.backend)
    if isinstance(result, VdgError):
        print(f"vdgexport: error: {_one_line(result)}", file=sys.stderr)
        return EXIT_ERROR
    return result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


async def _status(client: Client, args: argparse.Namespace, console: Console) -> int:
    from ._cli_json import dumps, export_json, export_list_json
    from ._cli_view import fmt_bandwidth, print_table

    if args.export_id is not None:
        export = await client.get_export(args.export_id)
        if args.json:
            print(dumps(export_json(export)))
            return EXIT_OK
        print_table(
            console,
            ("export", "status", "progress", "bandwidth", "path"),
            [
                (
                    export.export_id,
                    export.status.value,
                    f"{export.progress:.1f}%",
                    fmt_bandwidth(export.bandwidth_kbps),
                    export.path,
                )
            ],
            title=f"Export {export.export_id}",
            style_column=1,
        )
        rows = [
            (
                d.server_id,
                d.device_id,
                _when(d.start_time),
                _when(d.end_time),
                f"{d.progress:.1f}%",
                d.status.value,
            )
            for d in export.devices
        ]
        print_table(
            console,
            ("server", "device", "start (UTC)", "end (UTC)", "progress", "status"),
            rows,
            title="Devices",
            style_column=5,
        )
        return EXIT_OK
    exports = await client.list_exports()
    if args.json:
        print(dumps(export_list_json(exports)))
        return EXIT_OK
    rows = [
        (
            e.export_id,
            e.status.value,
            f"{e.progress:.1f}%",
            str(len(e.devices)),
            fmt_bandwidth(e.bandwidth_kbps),
            e.path,
        )
        for e in exports
    ]
    print_table(
        console,
        ("export", "status", "progress", "devices", "bandwidth", "path"),
        rows,
        title=f"{len(rows)} exports",
        style_column=1,
    )
    return EXIT_OK


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


async def _watch(client: Client, args: argparse.Namespace, console: Console) -> int:
    from ._cli_view import Board, make_view

    ids = list(dict.fromkeys(args.export_ids))
    # Fail fast on a wrong URL or credentials, before any live display; -57 is an
    # outcome, not an error: the watch reports it as vanished.
    with contextlib.suppress(ExportNotFoundError):
        await client.get_export(ids[0])
    board = Board(ids, title=f"Watching {len(ids)} export(s)")
    view = make_view(console, board, json=args.json)
    with view:
        outcomes = await run_watches(client, ids, view)
    view.summary()
    return exit_code(outcomes.values())


async def run_watches(
    client: Client,
    export_ids: Sequence[str],
    view: View,
    observe: Callable[[WatchEvent], None] | None = None,
) -> dict[str, TerminalEvent]:
    """Watch every id at once in one task group and return the terminal event of each.

    Every event goes to ``view`` (then ``observe``). The first `VdgError` of any watch
    stops all of them and is raised.
    """
    outcomes: dict[str, TerminalEvent] = {}
    errors: list[VdgError] = []

    async def watch_one(export_id: str, scope: anyio.CancelScope) -> None:
        try:
            async with client.watch(export_id) as events:
                async for event in events:
                    view.on_event(event)
                    if observe is not None:
                        observe(event)
                    if isinstance(event, (ExportCompleted, ExportRemoved, ExportVanished)):
                        outcomes[export_id] = event
        except VdgError as exc:
            errors.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tasks:
        for export_id in export_ids:
            tasks.start_soon(watch_one, export_id, tasks.cancel_scope)
    if errors:
        raise errors[0]
    return outcomes


def exit_code(outcomes: Iterable[TerminalEvent]) -> int:
    """4 if any export vanished, else 3 if any was removed, else 0."""
    events = list(outcomes)
    if any(isinstance(e, ExportVanished) for e in events):
        return EXIT_VANISHED
    if any(isinstance(e, ExportRemoved) for e in events):
        return EXIT_REMOVED
    return EXIT_OK
