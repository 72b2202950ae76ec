"""The two-column "measure | value" table the commands print their summaries in."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table


def measures_table(title: str, rows: Iterable[tuple[str, object]], key: str = "measure") -> Table:
    table = Table(title=title)
    table.add_column(key)
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, str(value))
    return table
