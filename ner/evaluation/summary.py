"""One Markdown table of finished runs, read from their `metrics.json` (what the README's result tables are).

    python -m ner summarize RUN_DIR [RUN_DIR ...]

A row per run: head, seed, precision, epochs, best epoch, dev F1, test micro P/R/F1, true macro F1, the
support-weighted average, per-type F1 and seconds per epoch. A run evaluated under the model card's protocol
(dev = test) is labelled as such in its row, and so is a final retrain on train+dev (`data.dev=none`: no dev
F1, the last epoch kept, epochs fixed from a dev-selected run or given by hand).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ner.errors import user_errors
from ner.evaluation.run_folder import RunFolder
from ner.tables import Table

TYPES = ("DNA", "RNA", "cell_line", "cell_type", "protein")  # the README's column order for JNLPBA


def row(run: RunFolder, types: list[str]) -> dict:
    metrics = run.metrics
    test, dev = metrics["test"], metrics.get("dev")  # no dev block: trained on train+dev
    protocol, label = metrics["protocol"], ""
    if protocol.get("dev_is_test"):
        label = " (MODEL CARD PROTOCOL: dev = test)"
    elif protocol.get("retrain"):
        label = f" ({protocol['retrain']['label']})"
    kept = f"kept {metrics['kept_epoch']}" if "kept_epoch" in metrics else f"best {metrics['best_epoch']}"
    # None: an epoch resumed by a version that did not yet carry its clock across processes.
    seconds = ", ".join("?" if s is None else f"{s:.0f}" for s in metrics["timing"]["seconds_per_epoch"])
    micro = test["micro"]
    return {
        "head": f"{metrics['model']['head']}{label}",
        "seed": metrics["seed"],
        "precision": str(run.config.trainer.get("precision", "?")),
        "epochs": f"{len(metrics['epochs'])} ({kept})",
        "dev F1": (dev or {}).get("micro", {}).get("f1"),  # blank: no dev set, or no dev batch scored
        "test P / R / F1": f"{micro['precision']:.4f} / {micro['recall']:.4f} / **{micro['f1']:.4f}**",
        "test macro F1": test["macro"]["f1"],
        "weighted avg": test["weighted"]["f1"],
        f"per type F1 ({' / '.join(types)})": " / ".join(
            f"{test['per_type'][t]['f1']:.4f}" if t in test["per_type"] else "-" for t in types
        ),
        "seconds per epoch": seconds,
    }


def table(runs: list[Path]) -> str:
    folders = [RunFolder(run) for run in runs]
    per_type = folders[0].metrics["test"]["per_type"]
    types = [t for t in TYPES if t in per_type] or sorted(per_type)
    return Table("Finished runs", [row(run, types) for run in folders]).to_markdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner summarize", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with metrics.json)")
    args = parser.parse_args(argv)
    with user_errors():
        print(table(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
