"""What every command shares: exit codes, the console, one-line errors, "is this an end"."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import typing
from collections.abc import Iterator
from typing import TYPE_CHECKING

import vdgexport

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REMOVED",
    "EXIT_USAGE",
    "EXIT_VANISHED",
    "INSTALL_HINT",
    "broken_pipe",
    "dumps",
    "error",
    "is_terminal",
    "log_to_stderr",
    "make_console",
    "one_line",
    "quiet_stdout",
]

INSTALL_HINT = "pip install 'vdgexport[cli]'"
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REMOVED, EXIT_VANISHED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

#: The classes of `vdgexport.TerminalEvent` (mypy refuses a ``Union`` in ``isinstance``).
_TERMINAL: tuple[type, ...] = typing.get_args(vdgexport.TerminalEvent)


def is_terminal(event: vdgexport.WatchEvent) -> typing.TypeGuard[vdgexport.TerminalEvent]:
    """Whether ``event`` ends its watch (completed, removed or vanished)."""
    return isinstance(event, _TERMINAL)


def make_console() -> Console:
    """A console on stdout that detects whether it is a terminal (no colours if not)."""
    from rich.console import Console

    return Console(force_terminal=None, highlight=False)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, whitespace collapsed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def error(text: str) -> None:
    """Print ``vdgexport: error: text`` on stderr."""
    print(f"vdgexport: error: {text}", file=sys.stderr)


def dumps(data: object) -> str:
    """Compact, one-line JSON (non-ASCII kept as is)."""
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


def broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` is a closed stdout (``| head``), alone or in (nested) groups."""
    if isinstance(exc, BaseExceptionGroup):
        return all(broken_pipe(e) for e in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


def quiet_stdout() -> None:
    """Point stdout at the null device, so that nothing more fails to reach a closed pipe.

    Python flushes stdout once more at exit; with the reader gone that would print a
    traceback of its own.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is now (the live view redirects it above its bars)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def log_to_stderr(enabled: bool) -> Iterator[None]:
    """While inside, the ``vdgexport`` logger writes every record (DEBUG up) to stderr.

    The library logs requests (method, URL without credentials or query, status) and
    retries; it never logs a password or a session key.
    """
    if not enabled:
        yield
        return
    logger = logging.getLogger("vdgexport")
    handler = _Stderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03d vdgexport %(levelname)s %(message)s", "%H:%M:%S")
    )
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
