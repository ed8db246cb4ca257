"""One table type for every result the project shows: HTML in Jupyter, rich in a terminal, Markdown in
the README. Analysis, scores, summaries, the study's report and the benchmarks all build a `Table`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table as RichTable


@dataclass
class Table:
    """Rows of a result (`rows[i][column]`); floats are shown with `digits` decimals, and columns holding
    only numbers are right-aligned. `sections` are the rows after which a terminal draws a rule."""

    title: str
    rows: list[dict]
    columns: list[str] = field(default_factory=list)
    digits: int = 4
    sections: Sequence[int] = ()

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = list(dict.fromkeys(key for row in self.rows for key in row))

    def column(self, name: str) -> list:
        return [row.get(name) for row in self.rows]

    def numeric(self, name: str) -> bool:
        values = [v for v in self.column(name) if v is not None]
        return bool(values) and all(isinstance(v, int | float) for v in values)

    def cells(self, row: dict) -> list[str]:
        """The row as shown: floats rounded to `digits`, None blank."""
        return [_cell(row.get(c), self.digits) for c in self.columns]

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in self.cells(row)) + "</tr>"
            for row in self.rows
        )
        return f"<table><caption>{html.escape(self.title)}</caption><tr>{head}</tr>{body}</table>"

    def __rich__(self) -> RichTable:
        table = RichTable(title=self.title)
        for c in self.columns:
            table.add_column(c, justify="right" if self.numeric(c) else "left")
        for i, row in enumerate(self.rows):
            table.add_row(*self.cells(row), end_section=i in self.sections)
        return table

    def to_markdown(self) -> str:
        """A GitHub Markdown table (number columns right-aligned), without the title."""

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        rule = ["---:" if self.numeric(c) else "---" for c in self.columns]
        return "\n".join([line(self.columns), line(rule), *(line(self.cells(row)) for row in self.rows)])


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)
