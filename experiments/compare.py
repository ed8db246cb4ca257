"""Compare finished runs: `python experiments/compare.py RUN_DIR... [--out DIR] [--resamples N]`.

Each run contributes the arms evaluated next to it (`eval/*.json`, written by `experiments/ablate.py`) or,
for a plain run, itself. Prints the tables and writes comparison.json, comparison.md and PNG plots.
"""

import argparse
from pathlib import Path

from ner.errors import user_errors
from ner.study.actions import compare_runs, default_out_dir, make_console


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="finished run folders (with metrics.json)")
    parser.add_argument("--out", type=Path, help="output folder (default: comparison/ beside the runs)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples / shuffles")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling")
    args = parser.parse_args(argv)
    with user_errors():
        out = args.out or default_out_dir(args.run_dirs)
        compare_runs(args.run_dirs, out, args.resamples, args.seed, make_console())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
