"""Compare finished runs: `python experiments/compare.py RUN_DIR... [--out DIR] [--resamples N]`.

Each run contributes the arms evaluated next to it (`eval/*.json`, written by the study's sweep) or, for a
plain run, itself. Prints the tables and writes comparison.json, comparison.md and PNG plots.
"""

import argparse
import os
from pathlib import Path

from ner.errors import user_errors
from ner.study.report import report


def default_out(run_dirs: list[Path]) -> Path:
    """`comparison/` beside the runs: in the study folder for `STUDY/runs/*`, else in their common folder."""
    common = Path(os.path.commonpath([p.absolute().parent for p in run_dirs]))
    return (common.parent if common.name == "runs" else common) / "comparison"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="finished run folders (with metrics.json)")
    parser.add_argument("--out", type=Path, help="output folder (default: comparison/ beside the runs)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples / shuffles")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    args = parser.parse_args(argv)
    with user_errors():
        report(args.run_dirs, args.out or default_out(args.run_dirs), args.resamples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
