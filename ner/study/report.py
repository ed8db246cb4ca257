"""The comparison as `ner.tables.Table`s with a note each: printed with rich, written as Markdown."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from ner.files import atomic_write_text, write_json
from ner.study.compare import HONEST, compare
from ner.study.plots import plot_all
from ner.study.protocol import CARD_LABEL
from ner.tables import Table

ARM_COLUMNS = {
    "test F1": "test_f1",
    "test macro F1": "test_macro_f1",
    "precision": "test_precision",
    "recall": "test_recall",
    "dev F1": "dev_f1",
}
# row label -> (the card's number, the honest one) in a comparison's `card_protocol` entry
CARD_HEADLINE = {
    "micro F1": ("card_micro_f1", "honest_micro_f1"),
    "'macro avg' as the card reports it (support-weighted)": (
        "card_macro_avg_as_reported",
        "honest_macro_f1",
    ),
    "true macro F1 (unweighted)": ("card_true_macro_f1", "honest_macro_f1"),
}
LADDER_NOTE = (
    "Each step adds one of the card's choices to the step above (its epoch re-selected on test under that "
    "scoring); 'alone' adds one choice to the honest protocol."
)


def pct(value: float, sign: str = "") -> str:
    return f"{100 * value:{sign}.2f}"


def spread(summary: dict) -> str:
    """`mean ± std [min–max]` in percent; just the value for one seed."""
    if summary["n"] == 1:
        return pct(summary["mean"])
    return f"{pct(summary['mean'])} ± {pct(summary['std'])} [{pct(summary['min'])}–{pct(summary['max'])}]"


def p_value(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def arm_tables(comparison: dict) -> list[tuple[Table, str]]:
    """The arms, their per-type F1 and the paired tests, each with the note printed under it."""
    arms, tests = comparison["arms"], comparison["significance"]
    rows = [
        {
            "arm": name,
            "decode": arm["decode"],
            "seeds": ",".join(map(str, arm["seeds"])),
            **{column: spread(arm["metrics"][key]) for column, key in ARM_COLUMNS.items()},
        }
        for name, arm in arms.items()
    ]
    selections = "; ".join(f"{name}: {arm['selection']}" for name, arm in arms.items())
    per_type = [
        {"type": t, **{name: spread(arm["per_type_f1"][t]) for name, arm in arms.items()}}
        for t in comparison["types"]
    ]
    pairs = []
    for test in tests:
        a, b = test["a"], test["b"]
        row = {
            "b vs a": f"{b} vs {a}",
            "seeds": ",".join(map(str, test["seeds"])),
            "pooled F1 a": pct(test["pooled_f1"][a]),
            "pooled F1 b": pct(test["pooled_f1"][b]),
        }
        for metric in ("micro", "macro"):
            t = test[metric]
            row[f"Δ {metric} F1 [95% CI]"] = (
                f"{pct(t['difference'], '+')} [{pct(t['ci_low'], '+')}, {pct(t['ci_high'], '+')}]"
            )
            row[f"p boot ({metric})"] = p_value(t["p_bootstrap"])
            row[f"p AR ({metric})"] = p_value(t["p_randomization"])
        pairs.append(row)
    units = ", ".join(sorted({test["resampled"] for test in tests}))
    best = comparison["best_on_dev"]
    pending = "".join(
        f"; not ranked yet: {name} ({n} of {best['seeds']} seeds)" for name, n in best["pending"].items()
    )
    picked = f"Best on dev: {best['arm']} ({pct(best['dev_f1'])}, mean over {best['seeds']} seeds){pending}"
    return [
        (
            Table("Arms (honest protocol)", rows),
            f"{HONEST}. Percent; mean ± std over seeds (n-1) [min–max]; epoch per arm: {selections}. "
            f"{picked}.",
        ),
        (Table("Test F1 per entity type (honest protocol)", per_type), "Percent, mean ± std [min–max]."),
        (
            Table("Paired significance on the test set", pairs),
            f"{comparison['significance_method']}. Resampled: {units}.",
        ),
    ]


def card_tables(arm: str, card: dict) -> list[tuple[Table, str]]:
    """The card protocol's headline numbers against the honest ones, and the ladder between them."""
    rows = [
        {
            "": label,
            "card protocol": spread(card[card_key]),
            "honest": spread(card[honest_key]),
            "inflation (mean)": pct(card[card_key]["mean"] - card[honest_key]["mean"], "+"),
        }
        for label, (card_key, honest_key) in CARD_HEADLINE.items()
    ]
    ladder = [
        {"step": row["step"], "micro F1": spread(row["f1"]), "Δ F1": spread(row["delta_f1"]) if k else ""}
        for k, row in enumerate(card["ladder"])
    ]
    ladder += [
        {"step": f"alone: {row['factor']}", "micro F1": "", "Δ F1": spread(row["delta_f1"])}
        for row in card["alone"]
    ]
    return [
        (Table(f"MODEL CARD PROTOCOL vs honest, arm {arm}, seeds {card['seeds']}", rows), CARD_LABEL),
        (Table(f"From the honest number to the card's, arm {arm} (micro F1)", ladder), LADDER_NOTE),
    ]


RETRAIN_NOTE = (
    "Percent; mean ± std over seeds (n-1) [min–max]. Retrained: trained on train+dev (data.dev=none, no dev "
    "set), the last epoch kept; Δ = retrained − dev-selected on the seeds both have, paired test as above."
)


def retrained_tables(retrained: dict) -> list[tuple[Table, str]]:
    """Each retrained arm next to the same arm selected on dev: seeds, test F1, and the paired difference."""
    rows = []
    for name, final in retrained.items():
        for label, key in (("selected on dev", "dev_selected"), ("retrained on train+dev", "retrained")):
            if (arm := final[key]) is None:
                continue
            rows.append(
                {
                    "arm": name,
                    "model": label,
                    "seeds": ",".join(map(str, arm["seeds"])),
                    "test F1": spread(arm["test_f1"]),
                    "test macro F1": spread(arm["test_macro_f1"]),
                }
            )
        if test := final["significance"]:
            t = test["micro"]
            rows[-1]["Δ micro F1 [95% CI]"] = (
                f"{pct(t['difference'], '+')} [{pct(t['ci_low'], '+')}, {pct(t['ci_high'], '+')}]"
            )
            rows[-1]["p boot"], rows[-1]["p AR"] = p_value(t["p_bootstrap"]), p_value(t["p_randomization"])
    labels = sorted({label for final in retrained.values() for label in final["labels"]})
    note = f"{RETRAIN_NOTE} Epochs: {'; '.join(labels)}."
    return [(Table("Final models: retrained on train+dev vs selected on dev", rows), note)]


def make_console(stderr: bool = False) -> Console:
    """A rich console; wide when writing to a file or pipe (a log), where rich would assume 80 columns."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160, soft_wrap=True)


def report(
    run_dirs: Sequence[Path],
    out_dir: Path,
    resamples: int = 10_000,
    seed: int = 0,
    arm_order: Sequence[str] = (),
    out: Console | None = None,
) -> dict:
    """Compare the runs (`ner.study.compare`), print the tables on `out`, write comparison.json,
    comparison.md and the PNG plots into `out_dir`."""
    out = out or make_console()
    comparison = compare(run_dirs, out_dir, resamples, seed, arm_order)
    tables = arm_tables(comparison)
    for arm, card in comparison["card_protocol"].items():
        tables += card_tables(arm, card)
    if comparison.get("retrained"):
        tables += retrained_tables(comparison["retrained"])
    for table, note in tables:
        out.print(table)
        out.print(escape(note), style="dim")
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = "\n".join(
        f"### {table.title}\n\n{table.to_markdown()}\n\n_{note}_\n" for table, note in tables
    )
    written = [write_json(out_dir / "comparison.json", comparison)]
    written += [atomic_write_text(out_dir / "comparison.md", markdown), *plot_all(comparison, out_dir)]
    for path in written:
        out.print(f"wrote {path}")
    return comparison
