"""What every command shares: exit codes, the console, one-line errors, "is this an end"."""

from __future__ import annotations

import sys
import typing
from typing import TYPE_CHECKING

import vdgexport

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
    "error",
    "is_terminal",
    "make_console",
    "one_line",
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
