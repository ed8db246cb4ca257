"""The whole study as a Hydra sweep on the shipped sample: 3 arms (softmax, softmax + Viterbi, crf) x 2 seeds,
2 epochs of 2 batches each, through the real entry point `experiments/run.py -m ablation=heads`, three times:

1. with the joblib launcher, two runs at once, while another process holds the lock of `crf-seed2`: that run
   is refused with a clear message, the others train and are compared, and the sweep exits non-zero;
2. again, with Hydra's basic launcher: only `crf-seed2` trains, and the comparison is complete;
3. again: nothing trains and nothing is re-evaluated.

Then the outputs are checked against numbers computed here from the per-run files: the aggregation, the
re-decoding against what training wrote, and the card protocol's labels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from test_ablation import hold_lock

from ner.evaluation.score import read_predictions
from ner.metrics import score_sentences

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["DNA", "RNA", "cell_line", "cell_type", "protein"]
SEEDS = (1, 2)
RUNS = [f"{head}-seed{seed}" for head in ("crf", "softmax") for seed in SEEDS]

pytestmark = pytest.mark.slow


def sweep_command(study: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "experiments/run.py",
        "-m",
        "ablation=heads",
        "model=minilm",
        "data=sample",
        "seed=1,2",
        "trainer.max_epochs=2",
        "++trainer.limit_train_batches=2",
        "study.resamples=500",
        f"hydra.sweep.dir={study}",
        *extra,
    ]


def run_sweep(study: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        sweep_command(study, *extra), cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
    )


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    study = tmp_path_factory.mktemp("study")
    holder = hold_lock(study / "runs" / "crf-seed2")
    try:
        first = run_sweep(study, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    partial = json.loads((study / "comparison" / "comparison.json").read_text())
    second = run_sweep(study)
    evaluated = {p: p.stat().st_mtime_ns for p in study.glob("runs/*/eval/*.json")}
    third = run_sweep(study)
    return study, first, partial, second, third, evaluated


def output(done: subprocess.CompletedProcess) -> str:
    return done.stdout + done.stderr


def run_dir(study: Path, head: str, seed: int) -> Path:
    return study / "runs" / f"{head}-seed{seed}"


def scored(path: Path) -> dict:
    gold, pred = read_predictions(path)
    return score_sentences(gold, pred, TYPES)


def test_a_locked_run_is_refused_and_the_others_are_compared(sweeps):
    _, first, partial, _, _, _ = sweeps
    assert first.returncode == 1, output(first)[-4000:]
    assert "crf-seed2: pid" in first.stderr and "is training this run" in first.stderr
    assert "not finished, left out: crf-seed2" in first.stderr
    assert "Traceback" not in output(first)
    assert {name: arm["seeds"] for name, arm in partial["arms"].items()} == {
        "softmax": [1, 2],
        "softmax-viterbi": [1, 2],
        "crf": [1],
    }


def test_a_rerun_trains_only_what_is_missing_then_nothing(sweeps):
    study, _, _, second, third, evaluated = sweeps
    assert second.returncode == 0, output(second)[-4000:]
    skipped = {
        r for r in RUNS if f"{study / 'runs' / r}: finished already (metrics.json), skipped" in second.stdout
    }
    assert skipped == set(RUNS) - {"crf-seed2"}
    assert third.returncode == 0, output(third)[-4000:]
    for run in RUNS:
        assert f"{study / 'runs' / run}: finished already (metrics.json), skipped" in third.stdout
    assert ": decoding " not in output(third) and "Trainer.fit" not in output(third)
    assert {p: p.stat().st_mtime_ns for p in study.glob("runs/*/eval/*.json")} == evaluated
    assert "Arms (honest protocol)" in third.stdout and "Paired significance" in third.stdout


def test_every_output_is_written(sweeps):
    study = sweeps[0]
    assert sorted(p.name for p in (study / "runs").iterdir()) == RUNS  # one training per head x seed
    for seed in SEEDS:
        run = run_dir(study, "softmax", seed)
        assert sorted(p.name for p in (run / "checkpoints").glob("epoch*.ckpt")) == [
            "epoch0.ckpt",
            "epoch1.ckpt",
        ]
        for name in ("softmax.json", "softmax-viterbi.json", "card-softmax.json"):
            assert (run / "eval" / name).is_file(), name
        assert (run / "eval" / "softmax-viterbi" / "predictions" / "test.iob2").is_file()
        assert (run_dir(study, "crf", seed) / "eval" / "crf.json").is_file()
    out = study / "comparison"
    for name in ("f1_per_arm.png", "per_type_f1.png", "precision_recall.png", "card_vs_honest.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    markdown = (out / "comparison.md").read_text()
    assert "### Arms (honest protocol)" in markdown and "| softmax-viterbi |" in markdown


def test_aggregation_matches_the_per_run_files(sweeps):
    study = sweeps[0]
    comparison = json.loads((study / "comparison" / "comparison.json").read_text())
    assert list(comparison["arms"]) == ["softmax", "softmax-viterbi", "crf"]  # the config's order
    files = {
        "softmax": [run_dir(study, "softmax", s) / "predictions" for s in SEEDS],
        "softmax-viterbi": [
            run_dir(study, "softmax", s) / "eval" / "softmax-viterbi" / "predictions" for s in SEEDS
        ],
        "crf": [run_dir(study, "crf", s) / "predictions" for s in SEEDS],
    }
    for arm, folders in files.items():
        test = [scored(f / "test.iob2") for f in folders]
        dev = [scored(f / "dev.iob2") for f in folders]
        summary = comparison["arms"][arm]
        expected = {
            "test_f1": [s["micro"]["f1"] for s in test],
            "test_macro_f1": [s["macro"]["f1"] for s in test],
            "test_precision": [s["micro"]["precision"] for s in test],
            "test_recall": [s["micro"]["recall"] for s in test],
            "dev_f1": [s["micro"]["f1"] for s in dev],
        }
        for metric, values in expected.items():
            got = summary["metrics"][metric]
            assert got["values"] == pytest.approx(values), (arm, metric)
            assert got["mean"] == pytest.approx(statistics.mean(values))
            assert got["std"] == pytest.approx(statistics.stdev(values))
            assert (got["min"], got["max"]) == (pytest.approx(min(values)), pytest.approx(max(values)))
        for entity_type in TYPES:
            values = [s["per_type"][entity_type]["f1"] for s in test]
            assert summary["per_type_f1"][entity_type]["mean"] == pytest.approx(statistics.mean(values))
        if arm != "softmax-viterbi":  # a run's own result is exactly its metrics.json
            head = summary["head"]
            metrics = [json.loads((run_dir(study, head, s) / "metrics.json").read_text()) for s in SEEDS]
            assert expected["test_f1"] == pytest.approx([m["test"]["micro"]["f1"] for m in metrics])
    tests = {(t["a"], t["b"]): t for t in comparison["significance"]}
    assert list(tests) == [("softmax", "softmax-viterbi"), ("softmax", "crf"), ("softmax-viterbi", "crf")]
    test = tests["softmax", "softmax-viterbi"]
    for arm in ("softmax", "softmax-viterbi"):  # seeds pooled: F1 of the counts summed over both seeds
        micro = [scored(f / "test.iob2")["micro"] for f in files[arm]]
        tp, n_pred, n_gold = (sum(m[k] for m in micro) for k in ("tp", "n_pred", "n_gold"))
        assert test["pooled_f1"][arm] == pytest.approx(2 * tp / (n_pred + n_gold))
    assert test["micro"]["difference"] == pytest.approx(
        test["pooled_f1"]["softmax-viterbi"] - test["pooled_f1"]["softmax"]
    )
    assert 0 < test["micro"]["p_bootstrap"] <= 1 and 0 < test["micro"]["p_randomization"] <= 1


def test_redecoding_a_checkpoint_reproduces_training(sweeps):
    study = sweeps[0]
    for seed in SEEDS:
        run = run_dir(study, "softmax", seed)
        metrics = json.loads((run / "metrics.json").read_text())
        trained = metrics["model"].get("decode") or metrics["model"]["head"]  # the mode as trained
        redecoded = run / "eval" / "epochs" / f"epoch{metrics['best_epoch']}" / trained / "test.iob2"
        assert redecoded.read_text() == (run / "predictions" / "test.iob2").read_text()
        viterbi = json.loads((run / "eval" / "softmax-viterbi.json").read_text())
        dev_f1 = {e["epoch"]: e["dev_f1"] for e in viterbi["epochs"]}
        assert viterbi["epoch"] == max(dev_f1, key=dev_f1.get)  # selected on dev, under Viterbi decoding
        _, pred = read_predictions(run / viterbi["predictions"]["test"])
        pairs = [(a, b) for s in pred for a, b in zip(["O", *s], s, strict=False)]  # (previous, tag)
        assert not [(a, b) for a, b in pairs if b.startswith("I-") and a[2:] != b[2:]]  # valid BIO only


def test_card_protocol_is_labelled_and_measured_against_honest(sweeps):
    study = sweeps[0]
    for seed in SEEDS:
        run = run_dir(study, "softmax", seed)
        card = json.loads((run / "eval" / "card-softmax.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert card["protocol"] == "card" and card["label"].startswith("MODEL CARD PROTOCOL")
        assert "MODEL CARD PROTOCOL" in (run / "eval" / "card-softmax" / "PROTOCOL.txt").read_text()
        assert card["honest"]["epoch"] == metrics["best_epoch"]
        assert card["honest"]["micro"]["f1"] == pytest.approx(metrics["test"]["micro"]["f1"])
        assert card["ladder"][0]["f1"] == pytest.approx(metrics["test"]["micro"]["f1"])
        assert card["inflation"]["micro_f1"] == pytest.approx(
            card["card"]["micro"]["f1"] - card["honest"]["micro"]["f1"]
        )
    comparison = json.loads((study / "comparison" / "comparison.json").read_text())
    assert comparison["card_protocol"]["softmax"]["label"].startswith("MODEL CARD PROTOCOL")
    assert "MODEL CARD PROTOCOL" in (study / "comparison" / "comparison.md").read_text()


def test_compare_py_recomputes_the_comparison_of_finished_runs(sweeps, tmp_path):
    study = sweeps[0]
    runs = [str(study / "runs" / run) for run in RUNS]
    command = [sys.executable, "experiments/compare.py", *runs, "--resamples", "500", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, output(done)[-3000:]
    again = json.loads((tmp_path / "comparison.json").read_text())
    swept = json.loads((study / "comparison" / "comparison.json").read_text())
    assert list(again["arms"]) == list(swept["arms"])  # the study's order, not the folders'
    assert [(p["a"], p["b"]) for p in again["significance"]] == [
        (p["a"], p["b"]) for p in swept["significance"]
    ]
    for arm, summary in swept["arms"].items():
        assert again["arms"][arm]["metrics"] == summary["metrics"], arm
    assert "Arms (honest protocol)" in done.stdout and (tmp_path / "f1_per_arm.png").is_file()


# what the README's `find -regex` copies to results/ablations/: no checkpoints, no predictions
COMMITTED = re.compile(
    r".*/(comparison/.*|(runs|retrain)/[^/]+/(metrics\.json|config\.yaml|\.hydra/.*|eval/[^/]+\.json"
    r"|eval/card-[^/]+/PROTOCOL\.txt))"
)


def test_the_study_goes_on_elsewhere_from_its_committed_files(sweeps, tmp_path):
    """Copied to a new machine's outputs/, the committed files skip every run and give the same comparison."""
    study = sweeps[0]
    moved = tmp_path / "study"
    for path in study.rglob("*"):
        if path.is_file() and COMMITTED.fullmatch(f"/{path.relative_to(study)}"):
            (moved / path.relative_to(study)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, moved / path.relative_to(study))
    assert not list(moved.rglob("*.ckpt")) and not list(moved.rglob("*.iob2"))
    shutil.rmtree(moved / "comparison")
    done = run_sweep(moved)
    assert done.returncode == 0, output(done)[-4000:]
    for run in RUNS:
        assert f"{moved / 'runs' / run}: finished already (metrics.json), skipped" in done.stdout
    assert "Trainer.fit" not in output(done) and ": decoding " not in output(done)
    again = json.loads((moved / "comparison" / "comparison.json").read_text())
    swept = json.loads((study / "comparison" / "comparison.json").read_text())
    assert again["arms"] == swept["arms"] and again["card_protocol"] == swept["card_protocol"]
    assert again["significance"] == swept["significance"]
