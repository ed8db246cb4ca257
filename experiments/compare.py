"""Compare finished runs: `python experiments/compare.py RUN_DIR... [--out DIR] [--arms A,B,...]`.

Each run contributes the arms evaluated next to it (`eval/*.json`, written by the study's sweep) or, for a
plain run, itself. Prints the tables and writes comparison.json, comparison.md and PNG plots. Arms come in
the study config's order, as the sweep lists them, so that paired differences keep their direction.
"""

import argparse
import os
from pathlib import Path

from omegaconf import OmegaConf

from ner.errors import NerError, user_errors
from ner.evaluation.run_folder import RunFolder
from ner.study.compare import collect
from ner.study.report import report


def study_arm_order(run_dirs: list[Path]) -> list[str]:
    """The arm names in the first saved study config (`study.arms`), in config order; [] for plain runs."""
    for run_dir in run_dirs:
        arms = OmegaConf.select(RunFolder(run_dir).config, "study.arms", default=None)
        if arms:
            return [str(name) for name in arms]
    return []


def given_arm_order(arms: str, run_dirs: list[Path]) -> list[str]:
    """`--arms A,B`, each name checked against the arms the runs have (a typo would be ignored silently)."""
    order = [name.strip() for name in arms.split(",") if name.strip()]
    found = {name for arms_of_protocol in collect(run_dirs) for name in arms_of_protocol}
    unknown = [name for name in order if name not in found]
    if unknown:
        raise NerError(f"--arms {arms}: no such arm {unknown}; the runs have {', '.join(sorted(found))}")
    return order


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
    parser.add_argument("--arms", help="comma-separated arm order (default: the study config's order)")
    args = parser.parse_args(argv)
    with user_errors():
        order = given_arm_order(args.arms, args.run_dirs) if args.arms else study_arm_order(args.run_dirs)
        report(args.run_dirs, args.out or default_out(args.run_dirs), args.resamples, args.seed, order)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
