"""PNG plots of a comparison (matplotlib, no display needed). Every value is in percent."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)  # atomic, like every other output
    return path


def _seed_points(ax, x: float, values: list[float], color: str) -> None:
    offsets = np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else [0.0]
    ax.scatter(
        [x + o for o in offsets],
        [100 * v for v in values],
        s=12,
        color=color,
        zorder=3,
        edgecolor="black",
        linewidth=0.4,
    )


def f1_per_arm(comparison: dict, path: Path) -> Path:
    """Micro and macro test F1 per arm: mean with std error bars, one dot per seed."""
    arms = list(comparison["arms"])
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 4))
    width = 0.38
    for k, (metric, label, color) in enumerate(
        (("test_f1", "micro F1", "tab:blue"), ("test_macro_f1", "macro F1", "tab:orange"))
    ):
        for i, arm in enumerate(arms):
            s = comparison["arms"][arm]["metrics"][metric]
            x = i + (k - 0.5) * width
            ax.bar(
                x,
                100 * s["mean"],
                width,
                yerr=100 * s["std"],
                capsize=4,
                color=color,
                alpha=0.75,
                label=label if i == 0 else None,
            )
            _seed_points(ax, x, s["values"], color)
    ax.set_xticks(range(len(arms)), arms)
    _zoom(
        ax,
        [
            v
            for a in arms
            for m in ("test_f1", "test_macro_f1")
            for v in comparison["arms"][a]["metrics"][m]["values"]
        ],
    )
    ax.set_ylabel("test F1 (%)")
    ax.set_title("Test F1 per arm (honest protocol)\nmean ± std over seeds, one dot per seed", fontsize=10)
    ax.legend()
    return _save(fig, path)


def _zoom(ax, values: list[float]) -> None:
    """A y range around the data: differences of a point or two are the story, not the distance to 0."""
    if values:
        low, high = 100 * min(values), 100 * max(values)
        margin = max(2.0, 0.25 * (high - low))
        ax.set_ylim(max(0.0, low - margin), min(100.0, high + margin))


def per_type(comparison: dict, path: Path) -> Path:
    """Test F1 of each entity type, one bar per arm."""
    arms, types = list(comparison["arms"]), comparison["types"]
    fig, ax = plt.subplots(figsize=(2 + 1.4 * len(types), 4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        stats = [comparison["arms"][arm]["per_type_f1"][t] for t in types]
        x = np.arange(len(types)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(
            x,
            [100 * s["mean"] for s in stats],
            width,
            yerr=[100 * s["std"] for s in stats],
            capsize=3,
            label=arm,
        )
    ax.set_xticks(range(len(types)), types)
    ax.set_ylabel("test F1 (%)")
    ax.set_title("Test F1 per entity type (honest protocol), mean ± std over seeds", fontsize=10)
    ax.legend()
    return _save(fig, path)


def precision_recall(comparison: dict, path: Path) -> Path:
    """Precision against recall per arm: seeds as dots, the mean as a large marker; dotted iso-F1 lines."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    all_p, all_r = [], []
    for arm, summary in comparison["arms"].items():
        p, r = summary["metrics"]["test_precision"], summary["metrics"]["test_recall"]
        line = ax.scatter([100 * v for v in r["values"]], [100 * v for v in p["values"]], s=18, alpha=0.6)
        color = line.get_facecolor()[0]
        ax.errorbar(
            100 * r["mean"],
            100 * p["mean"],
            xerr=100 * r["std"],
            yerr=100 * p["std"],
            fmt="o",
            ms=9,
            color=color,
            capsize=3,
            label=arm,
        )
        all_p += p["values"]
        all_r += r["values"]
    low = 100 * min(all_p + all_r) - 3
    high = min(100.0, 100 * max(all_p + all_r) + 3)
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


def card_vs_honest(comparison: dict, path: Path) -> Path | None:
    """The ladder from the honest micro F1 to the card protocol's; the card's 'macro' against the true one."""
    cards = comparison["card_protocol"]
    if not cards:
        return None
    fig, axes = plt.subplots(len(cards), 2, figsize=(11, 4 * len(cards)), squeeze=False)
    for row, (arm, card) in enumerate(cards.items()):
        ax = axes[row][0]
        labels = [
            step["step"].split(":")[0].replace(" (= the card's micro F1)", "") for step in card["ladder"]
        ]
        means = [100 * step["f1"]["mean"] for step in card["ladder"]]
        stds = [100 * step["f1"]["std"] for step in card["ladder"]]
        colors = ["tab:green"] + ["tab:red"] * (len(means) - 1)
        drawn = ax.bar(range(len(means)), means, yerr=stds, capsize=4, color=colors, alpha=0.8)
        ax.bar_label(drawn, fmt="%.2f", fontsize=8, label_type="center")
        ax.set_xticks(range(len(means)), [textwrap.fill(label, 18) for label in labels], fontsize=7)
        _zoom(ax, [v / 100 for v in means])
        ax.set_ylabel("test micro F1 (%)")
        ax.set_title(f"{arm}: honest → MODEL CARD PROTOCOL, one choice at a time", fontsize=9)
        ax = axes[row][1]
        bars = [
            ("honest macro", card["honest_macro_f1"], "tab:green"),
            ("card: true macro", card["card_true_macro_f1"], "tab:red"),
            ("card: 'macro avg'\n(support-weighted)", card["card_macro_avg_as_reported"], "tab:red"),
        ]
        drawn = ax.bar(
            range(3),
            [100 * s["mean"] for _, s, _ in bars],
            yerr=[100 * s["std"] for _, s, _ in bars],
            capsize=4,
            color=[c for _, _, c in bars],
            alpha=0.8,
        )
        ax.bar_label(drawn, fmt="%.2f", fontsize=8, label_type="center")
        ax.set_xticks(range(3), [label for label, _, _ in bars], fontsize=8)
        _zoom(ax, [v for _, s, _ in bars for v in s["values"]])
        ax.set_ylabel("test F1 (%)")
        ax.set_title(f"{arm}: what the card calls 'macro avg'", fontsize=9)
    fig.suptitle(
        "Model card protocol (test-selected epoch, 128-subword truncation, seqeval lenient) vs honest",
        fontsize=10,
    )
    return _save(fig, path)


def plot_all(comparison: dict, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    made = [
        f1_per_arm(comparison, out_dir / "f1_per_arm.png"),
        per_type(comparison, out_dir / "per_type_f1.png"),
        precision_recall(comparison, out_dir / "precision_recall.png"),
        card_vs_honest(comparison, out_dir / "card_vs_honest.png"),
    ]
    return [p for p in made if p is not None]
