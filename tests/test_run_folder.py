"""`RunFolder`, the one reader of a run folder: hand-built folders for every file it reads and every way
one can be missing or broken, then a real quickstart run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ner.errors import NerError
from ner.evaluation.evaluate import decode_checkpoint, precision_context, predictions_text
from ner.evaluation.run_folder import RunFolder, run_folder_of_checkpoint
from ner.study.arms import arms_in_use
from ner.study.evaluate_arms import evaluate_run

METRICS = {"model": {"head": "crf", "labels": ["O", "B-DNA", "I-DNA", "B-RNA", "I-RNA"]}}


def started(tmp_path: Path, head: str = "softmax") -> RunFolder:
    """A run folder as training leaves it before the end: config.yaml and checkpoints."""
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(f"head:\n  name: {head}\nseed: 3\n")
    return RunFolder(folder)


def finish(run: RunFolder, metrics: dict = METRICS) -> RunFolder:
    (run.path / "metrics.json").write_text(json.dumps(metrics))
    return RunFolder(run.path)  # a new reader: the properties are read once per object


def touch(run: RunFolder, *names: str) -> None:
    for name in names:
        (run.checkpoints_dir / name).write_bytes(b"")


def test_an_unfinished_run(tmp_path):
    run = started(tmp_path)
    assert run.name == "run" and not run.finished and run.config.seed == 3
    assert run.head == "softmax"  # from config.yaml until metrics.json exists
    with pytest.raises(NerError, match=r"no metrics\.json \(the run has not finished\)"):
        run.metrics  # noqa: B018


def test_a_finished_run_reads_metrics_json(tmp_path):
    run = finish(started(tmp_path))
    assert run.finished and run.head == "crf" and run.types == ["DNA", "RNA"]


@pytest.mark.parametrize(
    ("config", "metrics", "problem"),
    [
        (None, None, r"config\.yaml: not found; is .* a run folder"),
        ("head: [unclosed", None, r"config\.yaml: unreadable"),
        ("head: {name: crf}", "{not json", r"metrics\.json: unreadable"),
    ],
)
def test_broken_files_are_one_clear_error(tmp_path, config, metrics, problem):
    if config is not None:
        (tmp_path / "config.yaml").write_text(config)
    if metrics is not None:
        (tmp_path / "metrics.json").write_text(metrics)
    run = RunFolder(tmp_path)
    with pytest.raises(NerError, match=problem):
        run.metrics if metrics else run.config  # noqa: B018


def test_predictions(tmp_path):
    run = started(tmp_path)
    with pytest.raises(NerError, match=r"no predictions/dev\.iob2"):
        run.predictions("dev")
    (run.path / "predictions").mkdir()
    (run.path / "predictions" / "test.iob2").write_text("IL-2\tB-DNA\tB-DNA\ngene\tI-DNA\tO\n\nx\tO\tO\n")
    sentences = run.predictions()
    assert [s.tags for s in sentences] == [("B-DNA", "I-DNA"), ("O",)]
    assert [s.predicted for s in sentences] == [("B-DNA", "O"), ("O",)]


def test_checkpoints_by_name(tmp_path):
    run = started(tmp_path)
    with pytest.raises(NerError, match="expected exactly one best-epochN.ckpt, found 0"):
        run.checkpoint("best")
    touch(run, "best-epoch2.ckpt", "last.ckpt", "epoch10.ckpt", "epoch2.ckpt", "epoch.ckpt", "epoch1x.ckpt")
    assert list(run.epoch_checkpoints()) == [2, 10]  # numeric order; other names are not epochs
    assert run.best_checkpoint() == (2, run.checkpoints_dir / "best-epoch2.ckpt")
    assert run.checkpoint() == run.checkpoints_dir / "best-epoch2.ckpt"
    assert run.checkpoint("last") == run.checkpoints_dir / "last.ckpt"
    assert run.checkpoint("epoch10") == run.checkpoints_dir / "epoch10.ckpt"
    loose = tmp_path / "elsewhere.ckpt"
    loose.write_bytes(b"")
    assert run.checkpoint(str(loose)) == loose
    with pytest.raises(NerError, match="epoch7.ckpt: checkpoint not found"):
        run.checkpoint("epoch7")
    touch(run, "best-epoch3.ckpt")
    with pytest.raises(NerError, match="found 2"):
        run.best_checkpoint()


def test_the_run_folder_of_a_checkpoint(tmp_path):
    run = started(tmp_path)
    touch(run, "last.ckpt")
    assert run_folder_of_checkpoint(run.checkpoints_dir / "last.ckpt") == run
    assert run_folder_of_checkpoint(tmp_path / "loose.ckpt") is None


@pytest.mark.slow
def test_a_real_run(softmax_run):
    run = RunFolder(softmax_run)
    datamodule = run.datamodule()  # the run's own data, rebuilt from config.yaml
    assert run.finished and run.head == "softmax" and run.types == datamodule.types
    assert run.best_checkpoint()[0] == run.metrics["best_epoch"]
    assert len(run.predictions("test")) == run.metrics["sizes"]["test"]
    sizes = {split: len(sentences) for split, sentences in datamodule.sentences.items()}
    assert sizes == {split: run.metrics["sizes"][split] for split in sizes}


def test_the_forward_pass_at_a_runs_precision():
    cpu = torch.device("cpu")
    with precision_context("bf16-mixed", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with precision_context("32-true", cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(NerError, match="precision 'bf16-true' is not supported"):
        precision_context("bf16-true", cpu)


@pytest.mark.slow
def test_decode_only_arms_decode_at_the_runs_precision(softmax_run, tmp_path):
    """A run trained in bf16-mixed is re-decoded in bf16-mixed: its decode-only arms see the emissions that
    its own predictions came from (fp32 emissions change a few words of the real test set)."""
    run = RunFolder(softmax_run)
    assert run.precision == "32-true"
    datamodule = run.datamodule()
    own = (run.path / "predictions" / "test.iob2").read_text()
    decoded = decode_checkpoint(run.checkpoint("best"), datamodule, ["test"], [None], "cpu", run.precision)
    assert predictions_text(datamodule, "test", decoded[None]["test"]) == own
    # the same run, as if trained in bf16-mixed: its viterbi arm is decoded and labelled so
    bf16 = tmp_path / "bf16"
    bf16.mkdir()
    for name in ("metrics.json", "labels.json", "predictions", "checkpoints"):
        (bf16 / name).symlink_to(run.path / name)
    config = OmegaConf.load(run.path / "config.yaml")
    config.trainer.precision = "bf16-mixed"
    OmegaConf.save(config, bf16 / "config.yaml")
    arms, _ = arms_in_use({"softmax-viterbi": {"head": "softmax", "decode": "viterbi"}}, protocol="honest")
    (path,) = evaluate_run(bf16, arms, device="cpu", log=lambda _: None)
    result = json.loads(path.read_text())
    assert result["decode_precision"] == "bf16-mixed" and result["test"]["micro"]["f1"] >= 0
    assert len(result["test_documents"]["documents"]) >= 1
