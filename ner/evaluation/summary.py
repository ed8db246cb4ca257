"""One Markdown table of finished runs, read from their `metrics.json` (what the README's result tables are).

    python -m ner summarize RUN_DIR [RUN_DIR ...]

A row per run: head, seed, precision, epochs, best epoch, dev F1, test micro P/R/F1, true macro F1, the
support-weighted average, per-type F1 and seconds per epoch. A run evaluated under the model card's protocol
(dev = test) is labelled as such in its row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ner.errors import NerError, user_errors

TYPES = ("DNA", "RNA", "cell_line", "cell_type", "protein")


def load(run: Path) -> tuple[dict, dict]:
    """`metrics.json` and `config.yaml` of a finished run."""
    metrics, config = run / "metrics.json", run / "config.yaml"
    if not metrics.is_file():
        raise NerError(f"{run}: no metrics.json (the run has not finished)")
    try:
        return json.loads(metrics.read_text()), OmegaConf.to_container(
            OmegaConf.load(config)
        ) if config.is_file() else {}
    except (json.JSONDecodeError, OSError, ValueError) as error:
        raise NerError(f"{run}: unreadable metrics.json or config.yaml ({error})") from None


def row(run: Path) -> str:
    metrics, config = load(run)
    test, dev = metrics["test"], metrics["dev"]
    types = [t for t in TYPES if t in test["per_type"]] or sorted(test["per_type"])
    per_type = " / ".join(f"{test['per_type'][t]['f1']:.4f}" for t in types)
    label = " (MODEL CARD PROTOCOL: dev = test)" if metrics["protocol"].get("dev_is_test") else ""
    # None: an epoch resumed by a version that did not yet carry its clock across processes.
    seconds = ", ".join("?" if s is None else f"{s:.0f}" for s in metrics["timing"]["seconds_per_epoch"])
    cells = [
        f"{metrics['model']['head']}{label}",
        str(metrics["seed"]),
        str(config.get("trainer", {}).get("precision", "?")),
        f"{len(metrics['epochs'])} (best {metrics['best_epoch']})",
        f"{dev['micro']['f1']:.4f}",
        f"{test['micro']['precision']:.4f} / {test['micro']['recall']:.4f} / **{test['micro']['f1']:.4f}**",
        f"{test['macro']['f1']:.4f}",
        f"{test['weighted']['f1']:.4f}",
        per_type,
        seconds,
    ]
    return "| " + " | ".join(cells) + " |"


def table(runs: list[Path]) -> str:
    metrics, _ = load(runs[0])
    types = [t for t in TYPES if t in metrics["test"]["per_type"]] or sorted(metrics["test"]["per_type"])
    header = [
        "head",
        "seed",
        "precision",
        "epochs",
        "dev F1",
        "test P / R / F1",
        "test macro F1",
        "weighted avg",
        f"per type F1 ({' / '.join(types)})",
        "seconds per epoch",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + [row(run) for run in runs])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python experiments/summarize.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with metrics.json)")
    args = parser.parse_args(argv)
    with user_errors():
        print(table(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
