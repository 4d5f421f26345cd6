"""Tables of exports and devices: rich on a terminal, aligned plain columns elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .format import STYLES

__all__ = ["print_table"]


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    style_column: int | None = None,
) -> None:
    """A rich table on a terminal; aligned plain text columns elsewhere."""
    if not console.is_terminal:
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
        lines = [f"{title}:"] if title else []
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [headers, *rows]
        ]
        out = console.file
        out.write("\n".join(lines) + "\n")
        out.flush()
        return
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD)
    for header in headers:
        table.add_column(header, overflow="fold")
    for cells in rows:
        styled = [
            Text(c, style=STYLES.get(c.split(" ")[0], "") if i == style_column else "")
            for i, c in enumerate(cells)
        ]
        table.add_row(*styled)
    console.print(table)
