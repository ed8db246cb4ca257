"""The recipe search's report: every run of a search folder, its knobs and its dev scores, sorted by dev F1.

    python -m ner search outputs/search/recipe-minilm [MORE_DIRS ...] [--out DIR]

The search (`python experiments/run.py -m search=recipe model=minilm 'optim.lr=...'`) trains one run per
point; `SearchSweep` (registered in `experiments/configs/search/recipe.yaml`) writes this report when the
sweep ends, and the command rewrites it at any time (e.g. while the sweep runs). Written into `--out` (the
first folder by default): `search.md`, `search.json`, `search_knobs.png` (dev F1 against each knob that
varies) and `search_epochs.png` (dev F1 per epoch of every run). Selection is by dev F1 alone: the table
never shows a test score. Runs that failed or have not finished are listed as such, never dropped.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ner.errors import NerError, user_errors
from ner.evaluation.run_folder import RunFolder
from ner.files import atomic_write_text, write_json
from ner.tables import Table

FAILED = "failed.txt"  # as the study's sweep records it (ner.study.sweep)
# column -> config key: the knobs the README's search varies; any other key given on a sweep's command line
# (`.hydra/overrides.yaml`) is a knob too, under its own name
KNOBS = {
    "encoder lr": "optim.lr",
    "CRF lr": "head.lr",
    "epochs": "trainer.max_epochs",
    "dropout": "model.dropout",
    "warm-up": "optim.warmup_ratio",
    "context": "data.context",
    "precision": "trainer.precision",
    "seed": "seed",
}
NOT_KNOBS = ("search", "model", "data.dir", "ckpt_path", "hydra", "output_dir", "progress_bar")
CAPTION = (
    "Selected by dev F1 only (best epoch of each run, official rules); test scores are never shown here. "
    "Knobs: the settings that differ between runs. Epochs are numbered from 0, as in checkpoints/epochN.ckpt."
)


def overrides(run: Path) -> dict[str, str]:
    """The `key=value` overrides the job was started with (Hydra's `.hydra/overrides.yaml`)."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    found = {}
    for item in OmegaConf.load(path):
        key, _, value = str(item).lstrip("+~").partition("=")
        if not key.startswith(NOT_KNOBS) and "/" not in key:
            found[key] = value
    return found


def settings(run: RunFolder) -> dict[str, Any]:
    """Every candidate knob of the run: `KNOBS` from its config, then its other command-line overrides."""
    try:
        config = run.config
    except NerError:
        config = OmegaConf.create()
    values = {name: OmegaConf.select(config, key, default=None) for name, key in KNOBS.items()}
    keys = set(KNOBS.values())
    for key, value in overrides(run.path).items():
        if key not in keys:
            values[key] = OmegaConf.select(config, key, default=value)
    return values


def run_row(run: RunFolder) -> dict[str, Any]:
    """One run's knobs and dev scores; `status`: finished | failed: WHY | not finished | no dev (retrain)."""
    row: dict[str, Any] = {"run": run.name, "path": str(run.path), "knobs": settings(run)}
    row.update(status="not finished", dev_f1=None, best_epoch=None, dev_f1_per_epoch=[], seconds_per_epoch=[])
    failed = run.path / FAILED
    if not run.finished:
        if failed.is_file():
            lines = failed.read_text().splitlines() or ["?"]
            row["status"] = f"failed: {lines[0]}"
        return row
    try:
        metrics = run.metrics
    except NerError as error:
        row["status"] = f"unreadable: {error}"
        return row
    epochs = metrics.get("epochs", [])
    row["dev_f1_per_epoch"] = [e.get("dev_f1") for e in epochs]
    row["seconds_per_epoch"] = [e.get("seconds") for e in epochs]
    if metrics.get("dev") is None:  # a final retrain (data.dev=none) or no dev batch: nothing to select on
        row["status"] = "no dev score"
        return row
    row.update(status="finished", dev_f1=metrics["dev"]["micro"]["f1"], best_epoch=metrics["best_epoch"])
    return row


def collect(folders: Sequence[Path]) -> list[dict[str, Any]]:
    """Every run (a Hydra job folder, `.hydra/`) under the folders: finished ones by dev F1, then the rest."""
    runs = sorted({p.parent.resolve() for folder in folders for p in Path(folder).glob("**/.hydra")})
    if not runs:
        raise NerError(f"no runs (Hydra job folders with .hydra/) under {', '.join(map(str, folders))}")
    rows = [run_row(RunFolder(path)) for path in runs]
    varying = [
        name
        for name in dict.fromkeys(k for row in rows for k in row["knobs"])
        if len({repr(row["knobs"].get(name)) for row in rows}) > 1
    ]
    for row in rows:
        row["knobs"] = {name: row["knobs"].get(name) for name in varying}
    return sorted(rows, key=lambda r: (r["dev_f1"] is None, -(r["dev_f1"] or 0.0), r["run"]))


def seconds(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.mean(known):.0f}" if known else ""


def knob_cell(value: Any) -> Any:
    """A knob as given: learning rates such as 5e-05 must not round to the table's 4 decimals (0.0001)."""
    return f"{value:g}" if isinstance(value, float) else value


def table(rows: Sequence[dict[str, Any]]) -> Table:
    shown = []
    for k, row in enumerate(rows, 1):
        per_epoch = ", ".join("?" if f is None else f"{f:.4f}" for f in row["dev_f1_per_epoch"])
        shown.append(
            {
                "rank": k if row["dev_f1"] is not None else None,
                **{name: knob_cell(value) for name, value in row["knobs"].items()},
                "dev F1": row["dev_f1"],
                "best epoch": row["best_epoch"],
                "dev F1 per epoch": per_epoch,
                "seconds / epoch": seconds(row["seconds_per_epoch"]),
                "status": row["status"],
                "run": row["run"],
            }
        )
    return Table("Recipe search on dev", shown)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def plot(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """`search_knobs.png`: dev F1 against each knob (points = runs, line = best per value);
    `search_epochs.png`: dev F1 per epoch of every finished run. Nothing is drawn without a finished run."""
    from ner.study.plots import _save, plt  # matplotlib on the Agg backend, atomic PNG writes

    done = [r for r in rows if r["dev_f1"] is not None]
    if not done:
        return []
    knobs = list(done[0]["knobs"]) or ["run"]
    fig, axes = plt.subplots(1, len(knobs), figsize=(3.6 * len(knobs), 3.4), squeeze=False)
    for ax, knob in zip(axes[0], knobs, strict=True):
        values = [r["knobs"].get(knob, r["run"]) for r in done]
        numeric = all(_number(v) is not None for v in values)
        labels = sorted({repr(v) for v in values}) if not numeric else []
        x = [_number(v) if numeric else labels.index(repr(v)) for v in values]
        y = [100 * r["dev_f1"] for r in done]
        ax.scatter(x, y, s=18, alpha=0.7, zorder=3)
        best: dict[float, float] = {}
        for xi, yi in zip(x, y, strict=True):
            best[xi] = max(best.get(xi, -math.inf), yi)
        ax.plot(sorted(best), [best[k] for k in sorted(best)], "-", color="tab:red", label="best per value")
        if numeric and min(x) > 0 and max(x) / min(x) > 20:  # learning rates: a log axis
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), [label.strip("'") for label in labels], fontsize=7)
        ax.set_xlabel(knob)
        ax.set_ylabel("best dev F1 (%)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Recipe search: dev F1 against each knob (one point per run)", fontsize=10)
    made = [_save(fig, out_dir / "search_knobs.png")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in done:
        label = ", ".join(f"{k}={v}" for k, v in r["knobs"].items()) or r["run"]
        f1s = [None if f is None else 100 * f for f in r["dev_f1_per_epoch"]]
        ax.plot(range(len(f1s)), f1s, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch (numbered from 0)")
    ax.set_ylabel("dev F1 (%)")
    ax.set_title("Dev F1 per epoch, one line per run", fontsize=10)
    if len(done) <= 12:
        ax.legend(fontsize=6)
    made.append(_save(fig, out_dir / "search_epochs.png"))
    return made


def report(
    folders: Sequence[Path], out_dir: Path | None = None, rows: Sequence[dict[str, Any]] | None = None
) -> list[Path]:
    """Write search.md / search.json and the plots of `rows` (default: collected) into `out_dir` (default:
    the first folder); returns the files written."""
    rows = collect(folders) if rows is None else rows
    out_dir = Path(out_dir or folders[0])
    shown = table(rows)
    markdown = f"### {shown.title}\n\n{shown.to_markdown()}\n\n_{CAPTION}_\n"
    # run paths relative to the report, so that a committed search.json holds no machine's absolute paths
    runs = [{**row, "path": os.path.relpath(row["path"], out_dir.resolve())} for row in rows]
    data = {"caption": CAPTION, "selection": "dev F1 (best epoch per run)", "runs": runs}
    written = [atomic_write_text(out_dir / "search.md", markdown), write_json(out_dir / "search.json", data)]
    return written + plot(rows, out_dir)


class SearchSweep(Callback):
    """Records why a run of the search failed (`RUN/failed.txt`, the sweep goes on) and writes the report
    when the sweep ends."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        from ner.study.sweep import describe

        run = Path(config.hydra.runtime.output_dir)
        if job_return.status == JobStatus.FAILED:
            atomic_write_text(run / FAILED, describe(job_return._return_value) + "\n")
            job_return.status, job_return.return_value = JobStatus.COMPLETED, None  # the sweep goes on
        else:
            (run / FAILED).unlink(missing_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ner.study.sweep import describe

        try:
            for path in report([Path(config.hydra.sweep.dir)]):
                print(f"wrote {path}")
        except Exception as error:  # noqa: BLE001 -- after hours of training, a message, never a traceback
            print(f"the search report failed: {describe(error)}", file=sys.stderr)
            raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner search", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="search folders (one run folder per point)")
    parser.add_argument("--out", type=Path, help="where to write the report (default: the first folder)")
    args = parser.parse_args(argv)
    with user_errors():
        rows = collect(args.folders)
        from ner.study.report import make_console

        console = make_console()
        console.print(table(rows))
        console.print(CAPTION, style="dim")
        for path in report(args.folders, args.out, rows):
            console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
