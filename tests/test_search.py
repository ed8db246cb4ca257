"""The recipe search's report: hand-made run folders in the shape real runs write (copied from the session's
quickstart run), then one real two-point sweep through `experiments/run.py -m search=recipe`."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ner.__main__ import main as ner_main
from ner.study.search import CAPTION, collect

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def fake_point(search: Path, name: str, real: Path, knobs: dict, dev_f1s: list[float] | None) -> Path:
    """A search run: the real run's config and metrics with `knobs` set and these dev F1s per epoch
    (None: not finished, no metrics.json)."""
    run = search / name
    (run / ".hydra").mkdir(parents=True)
    config = yaml.safe_load((real / "config.yaml").read_text())
    for key, value in knobs.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = ["search=recipe", "model=minilm", *(f"{k}={v}" for k, v in knobs.items())]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if dev_f1s is None:
        return run
    metrics = json.loads((real / "metrics.json").read_text())
    template = metrics["epochs"][0]
    metrics["epochs"] = [{**copy.deepcopy(template), "epoch": e, "dev_f1": f} for e, f in enumerate(dev_f1s)]
    best = max(range(len(dev_f1s)), key=lambda e: dev_f1s[e])
    metrics["best_epoch"] = best
    metrics["dev"]["micro"]["f1"] = dev_f1s[best]
    metrics["test"]["micro"]["f1"] = 0.123456  # must never show up in the search's report
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def search(tmp_path, softmax_run):
    folder = tmp_path / "search"
    fake_point(folder, "optim.lr=1e-4", softmax_run, {"optim.lr": 1e-4, "head.lr": 1e-3}, [0.5, 0.61, 0.6])
    fake_point(folder, "optim.lr=2e-4", softmax_run, {"optim.lr": 2e-4, "head.lr": 1e-3}, [0.55, 0.7])
    fake_point(folder, "optim.lr=5e-5", softmax_run, {"optim.lr": 5e-5, "head.lr": 1e-2}, [0.4, 0.45, 0.52])
    fake_point(folder, "optim.lr=1e-3", softmax_run, {"optim.lr": 1e-3, "head.lr": 1e-3}, None)
    failed = fake_point(folder, "optim.lr=1e-2", softmax_run, {"optim.lr": 1e-2, "head.lr": 1e-3}, None)
    (failed / "failed.txt").write_text("RuntimeError: loss is nan\ntraceback...\n")
    return folder


def test_runs_are_sorted_by_dev_f1_with_the_knobs_that_vary(search):
    rows = collect([search])
    assert [r["run"] for r in rows] == [
        "optim.lr=2e-4",
        "optim.lr=1e-4",
        "optim.lr=5e-5",
        "optim.lr=1e-2",  # not finished: after every finished run, by name
        "optim.lr=1e-3",
    ]
    assert [r["dev_f1"] for r in rows[:3]] == [0.7, 0.61, 0.52] and [r["best_epoch"] for r in rows[:3]] == [
        1,
        1,
        2,
    ]
    assert rows[0]["knobs"] == {
        "encoder lr": 2e-4,
        "CRF lr": 1e-3,
    }  # seed, epochs, ... are the same everywhere
    assert rows[0]["dev_f1_per_epoch"] == [0.55, 0.7] and len(rows[0]["seconds_per_epoch"]) == 2
    assert rows[3]["status"] == "failed: RuntimeError: loss is nan" and rows[4]["status"] == "not finished"


def test_the_command_writes_table_json_and_plots_without_test_scores(search, tmp_path, capsys):
    out = tmp_path / "report"
    assert ner_main(["search", str(search), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    markdown = (out / "search.md").read_text()
    for text in (markdown, printed):
        assert "0.7000" in text and "failed: RuntimeError: loss is nan" in text and "not finished" in text
        assert "0.1235" not in text
    assert "test" not in markdown.replace(CAPTION, "")  # no test column, nothing about test but the caption
    assert "never shown" in markdown and markdown.index("optim.lr=2e-4") < markdown.index("optim.lr=1e-4")
    assert "| 3 | 5e-05 | 0.01 |" in markdown  # lr 5e-5 shown as given, not rounded to 0.0001
    saved = json.loads((out / "search.json").read_text())
    assert [r["run"] for r in saved["runs"]][:3] == ["optim.lr=2e-4", "optim.lr=1e-4", "optim.lr=5e-5"]
    assert "0.123456" not in (out / "search.json").read_text()
    for row in saved["runs"]:  # relative to the report's folder, so a committed report travels
        assert not Path(row["path"]).is_absolute() and (out / row["path"] / ".hydra").is_dir(), row["path"]
    for name in ("search_knobs.png", "search_epochs.png"):
        assert (out / name).read_bytes()[:8] == PNG, name


def test_a_real_two_point_search_writes_its_report_when_the_sweep_ends(tmp_path):
    folder = tmp_path / "search"
    command = [
        sys.executable,
        "experiments/run.py",
        "-m",
        "search=recipe",
        "model=minilm",
        "data=sample",
        "optim.lr=1e-4,3e-4",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "++trainer.limit_train_batches=1",
        f"hydra.sweep.dir={folder}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    saved = json.loads((folder / "search.json").read_text())
    assert sorted(r["knobs"]["encoder lr"] for r in saved["runs"]) == [1e-4, 3e-4]  # the one knob varied
    assert all(list(r["knobs"]) == ["encoder lr"] for r in saved["runs"])
    assert all(r["status"] == "finished" and len(r["dev_f1_per_epoch"]) == 1 for r in saved["runs"])
    assert (folder / "search_knobs.png").read_bytes()[:8] == PNG
