"""Lightning's debugging limits (`++trainer.NAME=`) either give a finished run that says it is partial, or
are refused before training; never a traceback after training (tiny runs on the shipped sample)."""

from __future__ import annotations

import json

import pytest
from test_config import compose_config

from ner.data.reader import read_iob2
from ner.errors import NerError
from ner.train import run

# 4 sentences per evaluation batch: the sample's 15 dev and 20 test sentences take several batches.
TINY = [
    "experiment=quickstart",
    "progress_bar=false",
    "trainer.max_epochs=1",
    "data.eval_batch_size=4",
    "logger=csv",
]


def train(tmp_path, *overrides: str) -> dict:
    return run(compose_config([*TINY, f"output_dir={tmp_path}", *overrides]))


def predicted_sentences(path) -> int:
    return len(read_iob2(path, with_predictions=True).sentences)


@pytest.mark.parametrize(
    ("limit", "split", "evaluated"),
    [("limit_val_batches", "dev", 4), ("limit_test_batches", "test", 4)],
)
def test_an_evaluation_limit_finishes_and_says_what_it_scored(tmp_path, limit, split, evaluated):
    metrics = train(tmp_path, "++trainer.limit_train_batches=2", f"++trainer.{limit}=1")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["partial"]["limits"] == {"limit_train_batches": 2, limit: 1}
    assert saved["partial"][split] == {"evaluated": evaluated, "of": metrics["sizes"][split]}
    assert saved["partial"][split]["of"] > evaluated
    # predictions of the evaluated sentences alone, and scores over them alone
    assert predicted_sentences(tmp_path / "predictions" / f"{split}.iob2") == evaluated
    gold = read_iob2(tmp_path / "predictions" / f"{split}.iob2", with_predictions=True)
    assert saved[split]["micro"]["n_gold"] == sum(t.startswith("B-") for s in gold.sentences for t in s.tags)


def test_limit_train_batches_evaluates_everything(tmp_path):
    metrics = train(tmp_path, "++trainer.limit_train_batches=2")
    assert metrics["partial"]["limits"] == {"limit_train_batches": 2}
    for split in ("dev", "test"):
        assert metrics["partial"][split]["evaluated"] == metrics["sizes"][split]
    assert metrics["epochs"][0]["step"] == 2


def test_no_dev_batch_at_all(tmp_path):
    metrics = train(tmp_path, "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=0")
    assert metrics["dev"] is None and metrics["best_epoch"] is None and metrics["test"]["micro"]
    assert metrics["partial"]["dev"] == {"evaluated": 0, "of": metrics["sizes"]["dev"]}
    assert (tmp_path / "predictions" / "dev.iob2").read_text().strip() == ""


def test_fast_dev_run(tmp_path):
    metrics = train(tmp_path, "++trainer.fast_dev_run=true")
    assert metrics["partial"]["limits"] == {"fast_dev_run": True}
    assert metrics["partial"]["test"]["evaluated"] == 4  # one batch
    assert (tmp_path / "metrics.json").is_file() and metrics["best_checkpoint"] is None


def test_overfit_batches_is_refused_before_training(tmp_path):
    with pytest.raises(NerError, match="overfit_batches"):
        train(tmp_path, "++trainer.overfit_batches=2")
    assert not (tmp_path / "checkpoints").exists()
