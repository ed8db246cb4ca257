"""The final retrain on every training abstract (`data.dev=none`): no dev, no validation, the last epoch kept,
epochs given by hand or fixed from a dev-selected run (`retrain_from=RUN`, the session's quickstart run)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from test_config import compose_config

from ner.data.reader import read_iob2
from ner.errors import NerError
from ner.evaluation.evaluate import decode_checkpoint
from ner.evaluation.run_folder import RunFolder
from ner.evaluation.summary import table
from ner.metrics import score_sentences
from ner.retrain import check_same_corpus
from ner.study.arms import arms_in_use
from ner.study.evaluate_arms import evaluate_run
from ner.train import run

ARMS = {"softmax": {"head": "softmax"}, "softmax-viterbi": {"head": "softmax", "decode": "viterbi"}}
QUICK = ["experiment=quickstart", "progress_bar=false", "++trainer.limit_train_batches=2"]


def train(out: Path, *overrides: str) -> dict:
    return run(compose_config([*QUICK, f"output_dir={out}", *overrides]))


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrain") / "by-hand"
    return out, train(out, "data.dev=none", "trainer.max_epochs=2")


def test_a_run_without_dev_has_no_dev_block_and_says_how_it_was_trained(by_hand, capsys):
    out, metrics = by_hand
    saved = json.loads((out / "metrics.json").read_text())
    assert "dev" not in saved and saved["test"]["micro"]["n_gold"] == 76  # scored on all of test
    retrain = saved["protocol"]["retrain"]
    assert retrain["label"] == "trained on train+dev, epochs given: 2" and retrain["from"] is None
    assert "trained on train+dev, epochs given: 2" in saved["protocol"]["selection"]
    train_file = Path(compose_config(QUICK).data.dir) / "train.iob2"
    assert saved["sizes"] == {"train": len(read_iob2(train_file).sentences), "dev": 0, "test": 30}
    assert [e["epoch"] for e in saved["epochs"]] == [0, 1] and saved["kept_epoch"] == 1
    assert saved["best_epoch"] is None and saved["best_checkpoint"] is None
    assert not (out / "predictions" / "dev.iob2").exists() and not list(out.glob("checkpoints/best-*"))
    with open(out / "logs" / "metrics.csv") as handle:  # no validation loop ran, not even a sanity check
        assert not any(column.startswith("val/") for column in next(csv.reader(handle)))
    printed = table([out])  # the summarize table labels it and leaves dev F1 blank
    assert "trained on train+dev, epochs given: 2" in printed and "kept 1" in printed


def test_the_last_epoch_is_the_model_scored_on_test(by_hand):
    out, metrics = by_hand
    folder = RunFolder(out)
    decoded = decode_checkpoint(folder.checkpoint("last"), folder.datamodule(), ["test"], [None], "cpu")
    written = [list(s.predicted) for s in folder.predictions("test")]
    assert decoded[None]["test"] == written
    last = torch.load(folder.checkpoint("last"), map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 4)  # the end of the second epoch of 2 batches
    assert json.loads((out / "metrics.json").read_text())["timing"]["seconds_per_epoch"][1] is not None


def test_retrain_from_takes_the_runs_best_epoch_and_its_schedule(softmax_run, tmp_path, capsys):
    source = json.loads((softmax_run / "metrics.json").read_text())
    corpus = shutil.copytree(compose_config(QUICK).data.dir, tmp_path / "corpus elsewhere")  # the same files
    metrics = train(
        tmp_path / "run",
        "data.dev=none",
        f"retrain_from={softmax_run}",
        "trainer.log_every_n_steps=1",
        f"data.dir='{corpus}'",
    )
    best = source["best_epoch"]
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(best + 1)) and metrics["kept_epoch"] == best
    retrain = metrics["protocol"]["retrain"]
    assert (retrain["epochs"], retrain["schedule_epochs"], retrain["from"]) == (best + 1, 4, str(softmax_run))
    assert f"epochs fixed from {softmax_run}" in retrain["label"] and "dev" not in metrics
    assert f"epochs fixed from {softmax_run}" in capsys.readouterr().out  # the end-of-run summary
    # the LR schedule is the source run's (4 epochs of 2 batches: warm-up 0, then 1 - step / 8), cut at best
    with open(tmp_path / "run" / "logs" / "metrics.csv") as handle:
        rates = {
            int(r["step"]): float(r["lr-AdamW/pg1"]) for r in csv.DictReader(handle) if r.get("lr-AdamW/pg1")
        }
    lr = compose_config(QUICK).optim.lr
    assert sorted(rates) == list(range(2 * (best + 1))) and rates == pytest.approx(
        {step: lr * (1 - step / 8) for step in rates}
    )


def test_retrain_from_refuses_unfinished_no_dev_and_other_recipes(softmax_run, by_hand, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((softmax_run / "config.yaml").read_text())
    with pytest.raises(NerError, match="has not finished"):
        train(tmp_path / "a", "data.dev=none", f"retrain_from={unfinished}")
    with pytest.raises(NerError, match="no dev-selected epoch"):
        train(tmp_path / "b", "data.dev=none", f"retrain_from={by_hand[0]}", "trainer.max_epochs=2")
    with pytest.raises(NerError, match=r"not the run's recipe; optim: .*'lr': 0\.001"):
        train(tmp_path / "c", "data.dev=none", f"retrain_from={softmax_run}", "optim.lr=1e-3")
    with pytest.raises(NerError, match="add data.dev=none"):
        train(tmp_path / "d", f"retrain_from={softmax_run}")
    assert not any((tmp_path / name).exists() for name in "abcd")  # refused before anything was written


def test_the_corpus_is_compared_by_its_files_not_its_path(tmp_path, caplog):
    original = Path(compose_config(QUICK).data.dir)
    copy = shutil.copytree(original, tmp_path / "copy")
    check_same_corpus(copy, original, tmp_path)  # a restored study's corpus at another path: accepted
    (copy / "train.iob2").write_text((copy / "train.iob2").read_text().replace("\tB-", "\tI-", 1))
    (copy / "dev.iob2").write_text("")
    with pytest.raises(NerError, match=r"not the run's corpus .*: train\.iob2 \(different contents\), dev"):
        check_same_corpus(copy, original, tmp_path)
    (copy / "test.iob2").unlink()
    with pytest.raises(NerError, match=r"test\.iob2 \(missing here\)"):
        check_same_corpus(copy, original, tmp_path)
    with caplog.at_level("WARNING", logger="ner.retrain"):  # nothing to compare with: said, not passed over
        check_same_corpus(original, tmp_path / "gone", tmp_path)
    assert "is not on this machine; cannot check" in caplog.text


def test_the_study_evaluates_a_retrained_run_at_its_kept_epoch(by_hand):
    out, metrics = by_hand
    honest, card = arms_in_use(ARMS, card_arms=["softmax"], protocol="both")
    written = evaluate_run(out, honest, card, device="cpu", log=lambda _: None)
    assert sorted(p.name for p in written) == ["softmax-viterbi.json", "softmax.json"]  # no card protocol
    native, viterbi = (json.loads((out / "eval" / f"{arm}.json").read_text()) for arm in ARMS)
    for result in (native, viterbi):
        assert result["retrain"]["label"] == "trained on train+dev, epochs given: 2"
        assert "dev" not in result and result["epoch"] == 1 and list(result["predictions"]) == ["test"]
    assert native["test"] == metrics["test"]
    # the decode-only arm re-decodes last.ckpt (the kept epoch) with constrained Viterbi, on test only
    folder = RunFolder(out)
    decoded = decode_checkpoint(folder.checkpoint("last"), folder.datamodule(), ["test"], ["viterbi"], "cpu")
    predicted = read_iob2(out / viterbi["predictions"]["test"], with_predictions=True).sentences
    assert [list(s.predicted) for s in predicted] == decoded["viterbi"]["test"]
    assert viterbi["test"] == score_sentences(
        [s.tags for s in predicted], [s.predicted for s in predicted], folder.types
    )
