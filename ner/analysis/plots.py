"""Matplotlib figures of `ner.analysis` tables (imported lazily, so the library works without a display)."""

from __future__ import annotations

from ner.tables import Table


def _axes(ax, size=(6, 3.5)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")[1]


def plot_f1(tables: Table | dict[str, Table], ax=None, metric: str = "f1"):
    """Grouped bars of `metric` per bucket, one group of bars per run; gold support under each bucket."""
    tables = {"": tables} if isinstance(tables, Table) else tables
    ax = _axes(ax)
    buckets = list(dict.fromkeys(b for t in tables.values() for b in t.column("bucket")))
    width = 0.8 / len(tables)
    for k, (name, table) in enumerate(tables.items()):
        values = {row["bucket"]: row[metric] for row in table.rows}
        xs = [i + (k - (len(tables) - 1) / 2) * width for i in range(len(buckets))]
        ax.bar(xs, [values.get(b, 0.0) for b in buckets], width, label=name or None)
    support = {row["bucket"]: row["n_gold"] for row in next(iter(tables.values())).rows}
    ax.set_xticks(range(len(buckets)), [f"{b}\n(n={support.get(b, 0)})" for b in buckets])
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(next(iter(tables.values())).title)
    if len(tables) > 1:
        ax.legend()
    return ax


def plot_confusion(table: Table, ax=None):
    """Heat map of `type_confusion`: gold types down, predicted types across, counts written in."""
    ax = _axes(ax, (5, 4.5))
    names = table.columns[1:]
    grid = [[row[name] for name in names] for row in table.rows]
    ax.imshow(grid, cmap="Blues")
    for i, row in enumerate(grid):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), table.column(table.columns[0]))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(table.title)
    return ax


def plot_outcomes(table: Table, ax=None):
    """Bars of `outcome_table`: how many gold and predicted entities fall in each outcome."""
    ax = _axes(ax)
    rows = [row for row in table.rows if row["outcome"] != "total"]
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [row["gold"] for row in rows], 0.4, label="gold")
    ax.bar([x + 0.2 for x in xs], [row["predicted"] for row in rows], 0.4, label="predicted")
    ax.set_xticks(list(xs), [row["outcome"].replace("_", " ") for row in rows], rotation=30, ha="right")
    ax.set_ylabel("entities")
    ax.set_title(table.title)
    ax.legend()
    return ax


def plot_histograms(values: dict[str, list[float]], title: str, xlabel: str, ax=None, bins: int = 40):
    """Overlaid normalised histograms, one per split (e.g. words or subwords per sentence)."""
    ax = _axes(ax)
    for name, data in values.items():
        ax.hist(data, bins=bins, density=True, histtype="step", linewidth=1.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share")
    ax.set_title(title)
    ax.legend()
    return ax
