"""`python -m ner summarize`: the README's result tables, read from finished runs' metrics.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ner.evaluation.summary import table

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_one_row_per_run_with_the_runs_own_numbers(softmax_run, crf_run):
    lines = table([softmax_run, crf_run]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| head | seed | precision |")
    for line, run in zip(lines[2:], (softmax_run, crf_run), strict=True):
        metrics = json.loads((run / "metrics.json").read_text())
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == metrics["model"]["head"] and cells[1] == str(metrics["seed"])
        assert cells[4] == f"{metrics['dev']['micro']['f1']:.4f}"
        assert f"**{metrics['test']['micro']['f1']:.4f}**" in cells[5]
        assert cells[6] == f"{metrics['test']['macro']['f1']:.4f}"


def test_an_unfinished_run_is_one_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ner", "summarize", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "no metrics.json" in result.stderr and "Traceback" not in result.stderr


def test_an_epoch_without_its_seconds_shows_a_question_mark(softmax_run, tmp_path):
    # metrics.json of runs resumed before the training clock was saved in checkpoints.
    run = tmp_path / "resumed"
    run.mkdir()
    metrics = json.loads((softmax_run / "metrics.json").read_text())
    metrics["timing"]["seconds_per_epoch"] = [None, *metrics["timing"]["seconds_per_epoch"][1:]]
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.yaml").write_text((softmax_run / "config.yaml").read_text())
    assert table([run]).splitlines()[2].rstrip(" |").split("|")[-1].strip().startswith("?")
