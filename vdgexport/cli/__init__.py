"""The ``vdgexport`` command line: ``demo``, ``status``, ``watch`` and ``simulate``.

Needs the ``cli`` extra (rich, uvicorn), imported only when a command runs, never when
`vdgexport` is imported. Uses the public API of `vdgexport` only (and `vdgexport.testing`
for the demo and the simulator). The commands are listed in `vdgexport.cli.parser`.

Exit codes: 0 every watched export completed, 3 one was removed, 4 one vanished (4 wins
over 3), 1 any other error, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vdgexport`` command line and return its exit code.

    ``argv`` defaults to ``sys.argv[1:]``. The console script exits with the returned code.
    When the reader of stdout goes away (``vdgexport demo --json | head``), it stops quietly
    and returns 0, as Unix tools do.
    """
    from .common import EXIT_OK, broken_pipe, quiet_stdout

    try:
        code = _main(argv)
        sys.stdout.flush()
    except BaseException as exc:
        if not broken_pipe(exc):
            raise
        quiet_stdout()
        return EXIT_OK
    return code


def _main(argv: Sequence[str] | None) -> int:
    from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, INSTALL_HINT, log_to_stderr

    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            f"vdgexport: the command line needs its extra packages: {INSTALL_HINT}", file=sys.stderr
        )
        return EXIT_ERROR
    from vdgexport import __version__

    from .parser import build_parser

    parser = build_parser(version=__version__)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or bad usage (argparse printed why)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "needs_url", False) and not args.url:
        print(f"vdgexport {args.command}: error: give --url URL or set VDG_URL", file=sys.stderr)
        return EXIT_USAGE
    try:
        with log_to_stderr(getattr(args, "verbose", False)):
            code: int = args.run(args)
    except KeyboardInterrupt:
        print("vdgexport: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code
