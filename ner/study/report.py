"""The comparison as tables: each table built once as rows, rendered with rich (terminal) or as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ner.study.compare import HONEST
from ner.study.protocol import CARD_LABEL


@dataclass(frozen=True)
class Rows:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    note: str = ""


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def spread(summary: dict) -> str:
    """`mean ± std [min–max]` in percent; just the value for one seed."""
    if summary["n"] == 1:
        return pct(summary["mean"])
    return f"{pct(summary['mean'])} ± {pct(summary['std'])} [{pct(summary['min'])}–{pct(summary['max'])}]"


def signed(value: float) -> str:
    return f"{100 * value:+.2f}"


def p_value(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def arms_rows(comparison: dict) -> Rows:
    headers = ("arm", "decode", "seeds", "test F1", "test macro F1", "precision", "recall", "dev F1")
    rows = []
    for name, arm in comparison["arms"].items():
        m = arm["metrics"]
        rows.append(
            (
                name,
                arm["decode"],
                ",".join(map(str, arm["seeds"])),
                *(
                    spread(m[k])
                    for k in ("test_f1", "test_macro_f1", "test_precision", "test_recall", "dev_f1")
                ),
            )
        )
    note = (
        f"{HONEST}. Percent; mean ± std over seeds (n-1) [min–max]; epoch per arm: {_selections(comparison)}"
    )
    return Rows("Arms (honest protocol)", headers, rows, note)


def _selections(comparison: dict) -> str:
    return "; ".join(f"{name}: {arm['selection']}" for name, arm in comparison["arms"].items())


def per_type_rows(comparison: dict) -> Rows:
    arms = list(comparison["arms"])
    rows = [
        (t, *(spread(comparison["arms"][a]["per_type_f1"][t]) for a in arms)) for t in comparison["types"]
    ]
    return Rows(
        "Test F1 per entity type (honest protocol)", ("type", *arms), rows, "Percent, mean ± std [min–max]."
    )


def significance_rows(comparison: dict) -> Rows:
    headers = (
        "b vs a",
        "seeds",
        "pooled F1 a",
        "pooled F1 b",
        "Δ micro F1 [95% CI]",
        "p boot",
        "p AR",
        "Δ macro F1 [95% CI]",
        "p boot",
        "p AR",
    )
    rows = []
    for test in comparison["significance"]:
        a, b = test["a"], test["b"]
        cells = [
            f"{b} vs {a}",
            ",".join(map(str, test["seeds"])),
            pct(test["pooled_f1"][a]),
            pct(test["pooled_f1"][b]),
        ]
        for metric in ("micro", "macro"):
            t = test[metric]
            cells += [
                f"{signed(t['difference'])} [{signed(t['ci_low'])}, {signed(t['ci_high'])}]",
                p_value(t["p_bootstrap"]),
                p_value(t["p_randomization"]),
            ]
        rows.append(tuple(cells))
    units = sorted({test["resampled"] for test in comparison["significance"]})
    note = f"{comparison['significance_method']}. Resampled: {', '.join(units)}."
    return Rows("Paired significance on the test set", headers, rows, note)


def card_rows(comparison: dict) -> list[Rows]:
    tables = []
    for arm, card in comparison["card_protocol"].items():
        headline = [
            (
                "micro F1",
                spread(card["card_micro_f1"]),
                spread(card["honest_micro_f1"]),
                signed(card["inflation_micro_f1"]["mean"]),
            ),
            (
                "'macro avg' as the card reports it (support-weighted)",
                spread(card["card_macro_avg_as_reported"]),
                spread(card["honest_macro_f1"]),
                signed(card["inflation_reported_macro"]["mean"]),
            ),
            (
                "true macro F1 (unweighted)",
                spread(card["card_true_macro_f1"]),
                spread(card["honest_macro_f1"]),
                signed(card["card_true_macro_f1"]["mean"] - card["honest_macro_f1"]["mean"]),
            ),
        ]
        tables.append(
            Rows(
                f"MODEL CARD PROTOCOL vs honest, arm {arm}, seeds {card['seeds']}",
                ("", "card protocol", "honest", "inflation (mean)"),
                headline,
                CARD_LABEL,
            )
        )
        ladder = [
            (row["step"], spread(row["f1"]), spread(row["delta_f1"]) if k else "")
            for k, row in enumerate(card["ladder"])
        ]
        ladder += [(f"alone: {row['factor']}", "", spread(row["delta_f1"])) for row in card["alone"]]
        tables.append(
            Rows(
                f"From the honest number to the card's, arm {arm} (micro F1)",
                ("step", "micro F1", "Δ F1"),
                ladder,
                "Each step adds one of the card's choices to the step above (its epoch re-selected on "
                "test under that scoring); 'alone' adds one choice to the honest protocol.",
            )
        )
    return tables


def all_rows(comparison: dict) -> list[Rows]:
    return [
        arms_rows(comparison),
        per_type_rows(comparison),
        significance_rows(comparison),
        *card_rows(comparison),
    ]


def rich_table(rows: Rows) -> Table:
    table = Table(
        title=escape(rows.title), title_justify="left", caption=escape(rows.note), caption_justify="left"
    )
    for k, header in enumerate(rows.headers):
        table.add_column(escape(header), justify="left" if k == 0 else "right")
    for row in rows.rows:
        table.add_row(*map(escape, row))
    return table


def markdown_table(rows: Rows) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [
        f"### {rows.title}",
        "",
        line(rows.headers),
        "|" + "|".join(["---"] + ["---:"] * (len(rows.headers) - 1)) + "|",
    ]
    out += [line(r) for r in rows.rows]
    if rows.note:
        out += ["", f"_{rows.note}_"]
    return "\n".join(out) + "\n"


def markdown(comparison: dict) -> str:
    return "\n".join(markdown_table(rows) for rows in all_rows(comparison))


def print_comparison(comparison: dict, console: Console | None = None) -> None:
    console = console or Console()
    for rows in all_rows(comparison):
        console.print(rich_table(rows))
