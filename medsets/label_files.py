"""Finding the columns of a label file (or a results file) whose layout nobody published.

The sources' CSV and TXT files come with or without a header, with columns in any order and header
names that vary between copies (`Image ID,Image class`, `ID;pattern`, `Patient_ID,new_names,labels`).
So a column is recognised by what its values look like and by its header name, never by position
alone. Every reader of such a file (the HEp-2 and C-NMC builders, `medsets evaluate`) describes the
columns it wants as `Column`s and calls `find_columns`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Column:
    """A column sought in a table. It is the free column whose values most often look like the column's
    (`looks_like`), a header naming it breaking ties; or, when no value looks right, the one its header
    names; or, failing that, the one at `position` (counted among the columns not yet taken)."""

    names: tuple[str, ...] = ()  # header names marking it, in order of preference (any case)
    looks_like: Callable[[str], bool] | None = None
    # The share of its values that must look right for the content alone to choose it.
    min_share: float = 0.0
    # True: a header cell must equal a name (results files, whose headers we ask for by name); False: contain one.
    exact: bool = False
    position: int | None = None  # the fallback; None: the column may be absent


@dataclass
class Table:
    header: list[str]  # the header row as found, [] when the file has none
    body: list[list[str]]
    first_line: int  # the line number of body[0] in the file (1-based)
    columns: dict[str, int | None]  # wanted name -> column index, None when absent

    def value(self, row: list[str], column: str) -> str:
        index = self.columns.get(column)
        return row[index].strip() if index is not None and index < len(row) else ""

    def header_of(self, column: str) -> str | None:
        index = self.columns.get(column)
        return self.header[index].strip().lower() if index is not None and index < len(self.header) else None


def find_columns(rows: list[list[str]], wanted: dict[str, Column], has_header: bool | None = None) -> Table:
    """The columns of `rows` in the order `wanted` lists them, each taken once. With has_header=None the
    first row is a header when none of its cells looks like a value of a wanted column."""
    if has_header is None:
        has_header = bool(rows) and not any(c.looks_like(cell) for c in wanted.values() if c.looks_like
                                            for cell in rows[0])
    header = [h.strip() for h in rows[0]] if has_header and rows else []
    body = rows[1:] if has_header else rows
    width = max((len(r) for r in body), default=len(header))
    lowered = [h.lower() for h in header]

    def share(index: int, looks_like) -> float:
        values = [r[index].strip() for r in body if index < len(r) and r[index].strip()]
        return sum(map(looks_like, values)) / max(len(values), 1)

    def naming(index: int, column: Column) -> int | None:
        """The rank of the name this column's header gives it (0 best), None when it names none."""
        if index >= len(lowered):
            return None
        for rank, name in enumerate(column.names):
            if lowered[index] == name.lower() or (not column.exact and name.lower() in lowered[index]):
                return rank
        return None

    taken: set[int] = set()
    found: dict[str, int | None] = {}
    for key, column in wanted.items():
        free = [i for i in range(width) if i not in taken]
        chosen = None
        if column.looks_like and free:
            best = max(free, key=lambda i: (share(i, column.looks_like), naming(i, column) is not None))
            if share(best, column.looks_like) > column.min_share:
                chosen = best
        if chosen is None:
            named = [(naming(i, column), i) for i in free if naming(i, column) is not None]
            chosen = min(named)[1] if named else None
        if chosen is None and column.position is not None and free:
            chosen = free[min(column.position, len(free) - 1)]
        found[key] = chosen
        if chosen is not None:
            taken.add(chosen)
    return Table(header, body, 2 if has_header else 1, found)


def canonical(value: str, names: list[str], aliases: dict[str, str] | None = None) -> str | None:
    """Match a label spelling case- and separator-insensitively against canonical names."""
    key = re.sub(r"[\s\-_]+", "_", value.strip().lower())
    for name in names:
        if key == name.lower():
            return name
    return (aliases or {}).get(key)
