"""Tables for people that never cut a number (compress, build and bench share this).

Rich shrinks a table that is wider than the terminal by cutting cells to "10.0…".
:func:`fit_tables` instead splits the columns over as many tables as needed,
each repeating the key column(s) and fitting the console width (80 columns in a
CI log without a TTY); a cell is folded onto a second line only when one column
alone is wider than the console. No TensorFlow: the device side uses it too.

Example:
    >>> from rich.console import Console
    >>> c = Console(width=40, record=True)
    >>> c.print(fit_tables("t", ["variant", "top-1", "size"], [["int8", "97.22%", "10,240"]]))
"""
from __future__ import annotations

from typing import Any, Sequence

_BORDER = 1  # the table's right border
_PER_COLUMN = 3  # left border + one space of padding each side


def _cell_width(cell: str) -> int:
    from rich.text import Text

    return max((Text.from_markup(line).cell_len for line in str(cell).splitlines() or [""]), default=0)


def fit_tables(
    title: str | None,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    key_columns: int = 1,
    justify: Sequence[str] | None = None,
    row_styles: Sequence[str | None] | None = None,
) -> Any:
    """One or more Rich tables holding ``rows``, each no wider than ``width``.

    Args:
        title: the first table's title (the others say "(continued)").
        header: column names; the first ``key_columns`` are repeated in every table.
        rows: cells as text (Rich markup allowed).
        width: the console width (default: the current console's).
        justify: per column "left"/"right" (default: key columns left, the rest right).
        row_styles: a style per row (or None).

    Returns:
        A Rich renderable; it lays itself out for the width it is printed at
        (``width`` fixes it instead).
    """
    return _FitTables(title, list(header), [list(r) for r in rows], width, key_columns, justify, row_styles)


class _FitTables:
    def __init__(self, *args: Any):
        self.args = args

    def __rich_console__(self, console: Any, options: Any) -> Any:
        title, header, rows, width, key_columns, justify, row_styles = self.args
        yield _layout(title, header, rows, width or options.max_width, key_columns, justify, row_styles)


def _layout(
    title: str | None,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int,
    key_columns: int,
    justify: Sequence[str] | None,
    row_styles: Sequence[str | None] | None,
) -> Any:
    from rich.console import Group
    from rich.table import Table

    n = len(header)
    just = list(justify) if justify is not None else ["left" if i < key_columns else "right" for i in range(n)]
    need = [max([_cell_width(header[i]), *(_cell_width(r[i]) for r in rows)]) for i in range(n)]
    keys = list(range(min(key_columns, n)))
    # A long name (the key) folds onto more lines rather than pushing numbers into many tables.
    cap = max(16, width // (3 * max(len(keys), 1)))
    for i in keys:
        need[i] = min(need[i], cap)
    base = _BORDER + sum(need[i] + _PER_COLUMN for i in keys)
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for i in range(len(keys), n):
        cost = need[i] + _PER_COLUMN
        if current and used + cost > width:
            groups.append(current)
            current, used = [], base
        current.append(i)
        used += cost
    if current or not groups:
        groups.append(current)
    tables = []
    for g, cols in enumerate(groups):
        t = Table(title=title if g == 0 else (f"{title} (continued)" if title else None), title_justify="left", header_style="bold")
        for i in [*keys, *cols]:
            # Key (text) columns may fold when nothing else fits; numbers keep their full width.
            t.add_column(header[i], justify=just[i], overflow="fold", min_width=need[i],
                         max_width=need[i] if i in keys else None,
                         no_wrap=i not in keys)  # fmt: skip
        for r, row in enumerate(rows):
            style = row_styles[r] if row_styles is not None else None
            t.add_row(*(str(row[i]) for i in [*keys, *cols]), style=style)
        tables.append(t)
    return Group(*tables)
