"""A whole ablation on the shipped sample: 2 arms (softmax, softmax + Viterbi) x 2 seeds, a few steps each.

Runs the real entry point (`experiments/ablate.py`) once, then checks the aggregation against numbers computed
here from the per-run files, the re-decoding against what training wrote, the card protocol's labels, and
that a restart trains and re-evaluates nothing.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from test_ablation import study_from_cli

from ner.evaluation.score import read_predictions
from ner.metrics import score_sentences
from ner.study.actions import run_action

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["DNA", "RNA", "cell_line", "cell_type", "protein"]
SEEDS = (1, 2)

pytestmark = pytest.mark.slow


def overrides(study: Path) -> list[str]:
    return [
        "ablation=heads",
        "data=sample",
        f"study_dir={study}",
        "ablation.seeds=[1,2]",
        "~ablation.arms.crf",
        'extra=["trainer.max_epochs=2","++trainer.limit_train_batches=2"]',
        "resamples=500",
    ]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    study = tmp_path_factory.mktemp("ablation")
    command = [sys.executable, "experiments/ablate.py", *overrides(study)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return study, done


def run_dir(study: Path, seed: int) -> Path:
    return study / "runs" / f"softmax-seed{seed}"


def scored(path: Path) -> dict:
    gold, pred = read_predictions(path)
    return score_sentences(gold, pred, TYPES)


def test_every_output_is_written(sweep):
    study, done = sweep
    assert sorted(p.name for p in (study / "runs").iterdir()) == [
        "softmax-seed1",
        "softmax-seed1.log",
        "softmax-seed2",
        "softmax-seed2.log",
    ]  # one training per seed: the Viterbi arm and the card protocol re-use it
    for seed in SEEDS:
        run = run_dir(study, seed)
        assert sorted(p.name for p in (run / "checkpoints").glob("epoch*.ckpt")) == [
            "epoch0.ckpt",
            "epoch1.ckpt",
        ]
        for name in ("softmax.json", "softmax-viterbi.json", "card-softmax.json"):
            assert (run / "eval" / name).is_file(), name
        assert (run / "eval" / "softmax-viterbi" / "predictions" / "test.iob2").is_file()
    out = study / "comparison"
    for name in ("f1_per_arm.png", "per_type_f1.png", "precision_recall.png", "card_vs_honest.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "Arms (honest protocol)" in done.stdout and "Paired significance" in done.stdout


def test_aggregation_matches_the_per_run_files(sweep):
    study, _ = sweep
    comparison = json.loads((study / "comparison" / "comparison.json").read_text())
    assert list(comparison["arms"]) == ["softmax", "softmax-viterbi"]
    files = {
        "softmax": [run_dir(study, s) / "predictions" for s in SEEDS],
        "softmax-viterbi": [run_dir(study, s) / "eval" / "softmax-viterbi" / "predictions" for s in SEEDS],
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
        if arm == "softmax":  # the run's own result is exactly its metrics.json
            metrics = [json.loads((run_dir(study, s) / "metrics.json").read_text()) for s in SEEDS]
            assert expected["test_f1"] == pytest.approx([m["test"]["micro"]["f1"] for m in metrics])
    (test,) = comparison["significance"]
    for arm, folders in files.items():  # seeds pooled: F1 of the counts summed over both seeds
        micro = [scored(f / "test.iob2")["micro"] for f in folders]
        tp, n_pred, n_gold = (sum(m[k] for m in micro) for k in ("tp", "n_pred", "n_gold"))
        assert test["pooled_f1"][arm] == pytest.approx(2 * tp / (n_pred + n_gold))
    assert test["micro"]["difference"] == pytest.approx(
        test["pooled_f1"]["softmax-viterbi"] - test["pooled_f1"]["softmax"]
    )
    assert 0 < test["micro"]["p_bootstrap"] <= 1 and 0 < test["micro"]["p_randomization"] <= 1


def test_redecoding_a_checkpoint_reproduces_training(sweep):
    study, _ = sweep
    for seed in SEEDS:
        run = run_dir(study, seed)
        best = json.loads((run / "metrics.json").read_text())["best_epoch"]
        redecoded = run / "eval" / "epochs" / f"epoch{best}" / "argmax" / "test.iob2"
        assert redecoded.read_text() == (run / "predictions" / "test.iob2").read_text()
        viterbi = json.loads((run / "eval" / "softmax-viterbi.json").read_text())
        dev_f1 = {e["epoch"]: e["dev_f1"] for e in viterbi["epochs"]}
        assert viterbi["epoch"] == max(dev_f1, key=dev_f1.get)  # selected on dev, under Viterbi decoding
        _, pred = read_predictions(run / viterbi["predictions"]["test"])
        pairs = [(a, b) for s in pred for a, b in zip(["O", *s], s, strict=False)]  # (previous, tag)
        assert not [(a, b) for a, b in pairs if b.startswith("I-") and a[2:] != b[2:]]  # valid BIO only


def test_card_protocol_is_labelled_and_measured_against_honest(sweep):
    study, _ = sweep
    for seed in SEEDS:
        run = run_dir(study, seed)
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


def test_a_restart_trains_and_reevaluates_nothing(sweep):
    study, _ = sweep
    built = study_from_cli(overrides(study))
    evaluated = {p: p.stat().st_mtime_ns for p in study.glob("runs/*/eval/*.json")}
    progress, out = io.StringIO(), io.StringIO()
    code = run_action(
        built,
        "run",
        ROOT / "experiments" / "run.py",
        resamples=200,
        progress=Console(file=progress, width=200),
        out=Console(file=out, width=200),
    )
    assert code == 0
    assert "started" not in progress.getvalue() and "decoding" not in progress.getvalue()
    assert {p: p.stat().st_mtime_ns for p in study.glob("runs/*/eval/*.json")} == evaluated
    assert "Arms (honest protocol)" in out.getvalue()
