"""PNG plots of a comparison (matplotlib, no display needed). Every value is in percent.

A summary is a `ner.study.stats.summarize` dict over seeds (`mean`, `std`, `values`)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SEED_DOTS = {"s": 12, "zorder": 3, "edgecolor": "black", "linewidth": 0.4}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)  # atomic, like every other output
    return path


def _bars(ax, x, summaries: Sequence[dict], labelled: bool = False, **style):
    """Bars of the means at `x` with std error bars; `labelled`: the mean printed inside each bar."""
    means = [100 * s["mean"] for s in summaries]
    drawn = ax.bar(x, means, yerr=[100 * s["std"] for s in summaries], **style)
    if labelled:
        ax.bar_label(drawn, fmt="%.2f", fontsize=8, label_type="center")
    return drawn


def _zoom(ax, values: list[float]) -> None:
    """A y range around the data: differences of a point or two are the story, not the distance to 0."""
    low, high = 100 * min(values), 100 * max(values)
    margin = max(2.0, 0.25 * (high - low))
    ax.set_ylim(max(0.0, low - margin), min(100.0, high + margin))


def f1_per_arm(comparison: dict, path: Path) -> Path:
    """Micro and macro test F1 per arm: mean with std error bars, one dot per seed."""
    arms = comparison["arms"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 4))
    width, values = 0.38, []
    for k, (metric, label, color) in enumerate(
        (("test_f1", "micro F1", "tab:blue"), ("test_macro_f1", "macro F1", "tab:orange"))
    ):
        summaries = [arm["metrics"][metric] for arm in arms.values()]
        x = np.arange(len(arms)) + (k - 0.5) * width
        _bars(ax, x, summaries, width=width, capsize=4, color=color, alpha=0.75, label=label)
        for xi, s in zip(x, summaries, strict=True):  # the seeds, spread a little around the bar's centre
            offsets = np.linspace(-0.08, 0.08, len(s["values"])) if len(s["values"]) > 1 else [0.0]
            ax.scatter(xi + np.asarray(offsets), [100 * v for v in s["values"]], color=color, **SEED_DOTS)
            values += s["values"]
    ax.set_xticks(range(len(arms)), list(arms))
    _zoom(ax, values)
    ax.set_ylabel("test F1 (%)")
    ax.set_title("Test F1 per arm (honest protocol)\nmean ± std over seeds, one dot per seed", fontsize=10)
    ax.legend()
    return _save(fig, path)


def per_type(comparison: dict, path: Path) -> Path:
    """Test F1 of each entity type, one bar per arm."""
    arms, types = comparison["arms"], comparison["types"]
    fig, ax = plt.subplots(figsize=(2 + 1.4 * len(types), 4))
    width = 0.8 / len(arms)
    for i, (name, arm) in enumerate(arms.items()):
        x = np.arange(len(types)) + (i - (len(arms) - 1) / 2) * width
        _bars(ax, x, [arm["per_type_f1"][t] for t in types], width=width, capsize=3, label=name)
    ax.set_xticks(range(len(types)), types)
    ax.set_ylabel("test F1 (%)")
    ax.set_title("Test F1 per entity type (honest protocol), mean ± std over seeds", fontsize=10)
    ax.legend()
    return _save(fig, path)


def precision_recall(comparison: dict, path: Path) -> Path:
    """Precision against recall per arm: seeds as dots, the mean as a large marker; dotted iso-F1 lines."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    values = []
    for name, arm in comparison["arms"].items():
        p, r = arm["metrics"]["test_precision"], arm["metrics"]["test_recall"]
        dots = ax.scatter([100 * v for v in r["values"]], [100 * v for v in p["values"]], s=18, alpha=0.6)
        color = dots.get_facecolor()[0]
        errors = {"xerr": 100 * r["std"], "yerr": 100 * p["std"]}
        ax.errorbar(
            100 * r["mean"], 100 * p["mean"], **errors, fmt="o", ms=9, color=color, capsize=3, label=name
        )
        values += p["values"] + r["values"]
    low, high = 100 * min(values) - 3, min(100.0, 100 * max(values) + 3)
    grid = np.linspace(max(low, 1.0), high, 200)
    for f in range(5, 100, 5):  # recall on x: precision = f r / (2 r - f)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = f * grid / (2 * grid - f)
        ok = (precision > 0) & (precision <= 100)
        ax.plot(grid[ok], precision[ok], ":", color="grey", linewidth=0.6)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("test recall (%)")
    ax.set_ylabel("test precision (%)")
    ax.set_title("Precision vs recall per arm (dotted: iso-F1)")
    ax.legend()
    return _save(fig, path)


def card_vs_honest(cards: dict, path: Path) -> Path:
    """The ladder from the honest micro F1 to the card protocol's; the card's 'macro' against the true one."""
    fig, axes = plt.subplots(len(cards), 2, figsize=(11, 4 * len(cards)), squeeze=False)
    for (ladder_ax, macro_ax), (arm, card) in zip(axes, cards.items(), strict=True):
        steps = [step["f1"] for step in card["ladder"]]
        colors = ["tab:green"] + ["tab:red"] * (len(steps) - 1)
        _bars(ladder_ax, range(len(steps)), steps, labelled=True, capsize=4, color=colors, alpha=0.8)
        labels = [
            step["step"].split(":")[0].replace(" (= the card's micro F1)", "") for step in card["ladder"]
        ]
        ladder_ax.set_xticks(range(len(steps)), [textwrap.fill(label, 18) for label in labels], fontsize=7)
        _zoom(ladder_ax, [s["mean"] for s in steps])
        ladder_ax.set_ylabel("test micro F1 (%)")
        ladder_ax.set_title(f"{arm}: honest → MODEL CARD PROTOCOL, one choice at a time", fontsize=9)
        macros = {
            "honest macro": card["honest_macro_f1"],
            "card: true macro": card["card_true_macro_f1"],
            "card: 'macro avg'\n(support-weighted)": card["card_macro_avg_as_reported"],
        }
        colors = ["tab:green", "tab:red", "tab:red"]
        _bars(macro_ax, range(3), list(macros.values()), labelled=True, capsize=4, color=colors, alpha=0.8)
        macro_ax.set_xticks(range(3), list(macros), fontsize=8)
        _zoom(macro_ax, [v for s in macros.values() for v in s["values"]])
        macro_ax.set_ylabel("test F1 (%)")
        macro_ax.set_title(f"{arm}: what the card calls 'macro avg'", fontsize=9)
    fig.suptitle(
        "Model card protocol (test-selected epoch, 128-subword truncation, seqeval lenient) vs honest",
        fontsize=10,
    )
    return _save(fig, path)


def plot_all(comparison: dict, out_dir: Path) -> list[Path]:
    """f1_per_arm.png, per_type_f1.png, precision_recall.png and, with card protocol results,
    card_vs_honest.png, in `out_dir` (which exists)."""
    made = [
        f1_per_arm(comparison, out_dir / "f1_per_arm.png"),
        per_type(comparison, out_dir / "per_type_f1.png"),
        precision_recall(comparison, out_dir / "precision_recall.png"),
    ]
    if comparison["card_protocol"]:
        made.append(card_vs_honest(comparison["card_protocol"], out_dir / "card_vs_honest.png"))
    return made
