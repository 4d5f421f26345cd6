"""Tables of exports and devices: rich on a terminal, aligned plain columns elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .format import middle, style_of

__all__ = ["print_table"]

_GAP = 3  # what rich puts between two columns of a SIMPLE_HEAD table without edges


def print_table(
    console: Console,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    style_column: int | None = None,
    squeeze_column: int | None = None,
) -> None:
    """A rich table on a terminal, one line per row; aligned plain text columns elsewhere.

    On a terminal no cell wraps: when the table is wider than the terminal, the cells of
    ``squeeze_column`` (a path) are cut in the middle to fit.
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if not console.is_terminal:
        lines = [f"{title}:"] if title else []
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
            for cells in [headers, *rows]
        ]
        out = console.file
        out.write("\n".join(lines) + "\n")
        out.flush()
        return
    room = console.width - _GAP * (len(headers) - 1)
    if squeeze_column is not None:
        others = sum(widths) - widths[squeeze_column]
        widths[squeeze_column] = max(len(headers[squeeze_column]), room - others)
    table = Table(
        title=title or None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for header in headers:
        table.add_column(header, no_wrap=True, overflow="ellipsis")
    for cells in rows:
        styled = [
            Text(
                middle(c, widths[i]) if i == squeeze_column else c,
                style=style_of(c) if i == style_column else "",
            )
            for i, c in enumerate(cells)
        ]
        table.add_row(*styled)
    console.print(table)
