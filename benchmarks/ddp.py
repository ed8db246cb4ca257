"""How much faster N processes are: the same run with `trainer=default` and with `trainer=ddp`, side by side.

Each contender is an ordinary `experiments/run.py` process on the quickstart sample (our real entry point,
DDP start-up included); its own `metrics.json` gives the fit time and the seconds of every epoch. On a CPU
the processes use gloo and `threads` torch threads each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT


def _run(processes: int, epochs: int, threads: int, extra: list[str], folder: Path) -> dict:
    command = [
        sys.executable,
        str(ROOT / "experiments" / "run.py"),
        "experiment=quickstart",
        "progress_bar=false",
        f"trainer.max_epochs={epochs}",
        f"hydra.run.dir={folder}",
        *extra,
    ]
    if processes > 1:
        command += ["trainer=ddp", f"trainer.devices={processes}"]  # on the quickstart's CPU: gloo
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    timing = json.loads((folder / "metrics.json").read_text())["timing"]
    return {
        "processes": processes,
        "fit_seconds": timing["fit_seconds"],
        "seconds_per_epoch": timing["seconds_per_epoch"],
        "command": " ".join(command[1:]),
    }


def scaling(
    processes: tuple[int, ...] = (1, 2), epochs: int = 3, threads: int = 1, extra: list[str] | None = None
) -> dict:
    """Fit seconds of each process count, and the speed-up against one process (>1: faster)."""
    with tempfile.TemporaryDirectory() as scratch:
        rows = [_run(n, epochs, threads, extra or [], Path(scratch) / f"p{n}") for n in processes]
    base = rows[0]["fit_seconds"]
    for row in rows:
        row["speedup_vs_1"] = round(base / row["fit_seconds"], 3)
    return {"threads_per_process": threads, "epochs": epochs, "rows": rows}
