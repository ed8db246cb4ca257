"""One table type for every result the project shows: HTML in Jupyter, rich in a terminal, Markdown in
the README. Analysis, scores, summaries, the study's report and the benchmarks all build a `Table`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table as RichTable


@dataclass
class Table:
    """Rows of a result (`rows[i][column]`), shown as HTML in Jupyter and as a rich table in a terminal."""

    title: str
    rows: list[dict]
    columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = list(dict.fromkeys(key for row in self.rows for key in row))

    def column(self, name: str) -> list:
        return [row.get(name) for row in self.rows]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in self.columns) + "</tr>"
            for row in self.rows
        )
        return f"<table><caption>{html.escape(self.title)}</caption><tr>{head}</tr>{body}</table>"

    def __rich__(self) -> RichTable:
        table = RichTable(title=self.title)
        for c in self.columns:
            table.add_column(
                c, justify="left" if not self.rows or isinstance(self.rows[0].get(c), str) else "right"
            )
        for row in self.rows:
            table.add_row(*(_cell(row.get(c)) for c in self.columns))
        return table


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)

    def to_markdown(self) -> str:
        """A GitHub Markdown table (numbers right-aligned), without the title."""

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        numeric = [bool(self.rows) and not isinstance(self.rows[0].get(c), str) for c in self.columns]
        rule = ["---:" if n else "---" for n in numeric]
        rows = [line([_cell(row.get(c)) for c in self.columns]) for row in self.rows]
        return "\n".join([line(self.columns), line(rule), *rows])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)
