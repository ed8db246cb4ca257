"""Multi-process training (`trainer=ddp`, gloo on CPU): one run folder written once, complete predictions
in input order, and dev/test metrics equal, to the last digit, to a 1-process evaluation of the same
checkpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from ner.config import register_resolvers
from ner.data.samplers import EvalBatchSampler, TrainBatchSampler
from ner.data.writer import corpus_predictions, sentence_predictions
from ner.metrics import entity_chunks
from ner.model import NerTagger
from ner.train import build_datamodule

ROOT = Path(__file__).resolve().parents[1]
# 2 processes x 8 sentences per batch; a larger step than the quickstart's, so that two short epochs
# already predict entities (a metric of all-O predictions would compare little).
DDP = [
    "experiment=quickstart",
    "progress_bar=false",
    "trainer=ddp",
    "trainer.devices=2",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "optim.lr=3e-4",
]


@pytest.mark.parametrize("n", [1, 2, 5, 15, 16, 17])
@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_eval_shards_score_every_sentence_exactly_once(n, replicas):
    lengths = [(7 * i) % 11 + 1 for i in range(n)]
    shards = [
        list(EvalBatchSampler(lengths, batch_size=4, num_replicas=replicas, rank=r)) for r in range(replicas)
    ]
    assert len({len(batches) for batches in shards}) == 1, "every process must run the same number of steps"
    counted = sorted(i for batches in shards for batch in batches for i, keep in batch if keep)
    assert counted == list(range(n))  # padding repeats are there (n not divisible) but flagged not counted
    assert all(len(b) == len(EvalBatchSampler(lengths, 4, replicas, r)) for r, b in enumerate(shards))


def test_train_shards_take_the_same_number_of_steps():
    lengths = list(range(1, 24))
    shards = [list(TrainBatchSampler(lengths, 4, True, 0, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]
    assert {i for s in shards for batch in s for i, _ in batch} == set(range(23))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("ddp") / "run"
    cmd = [sys.executable, "experiments/run.py", *DDP, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return out, json.loads((out / "metrics.json").read_text()), log


@pytest.mark.slow
def test_two_processes_share_one_run_folder_written_once(ddp_run):
    out, metrics, log = ddp_run
    assert "Starting with 2 processes" in log and "distributed_backend=gloo" in log
    assert OmegaConf.load(out / "config.yaml").trainer.devices == 2
    # Rank 1 (started by Lightning with the same Hydra run folder) writes no Hydra files and its own log.
    # (`.lock`: the run folder's lock, which experiments/run.py holds while a process trains it)
    assert sorted(p.name for p in out.iterdir() if p.is_file() and p.name != ".lock") == [
        "config.yaml",
        "labels.json",
        "metrics.json",
        "run.log",
        "train_ddp_process_1.log",
    ]
    assert sorted(p.name for p in (out / ".hydra").iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    assert len(metrics["epochs"]) == 2 and metrics["best_checkpoint"]


@pytest.mark.slow
def test_metrics_equal_a_single_process_evaluation_of_the_same_checkpoint(ddp_run):
    out, metrics, _ = ddp_run
    register_resolvers()
    datamodule = build_datamodule(OmegaConf.load(out / "config.yaml"))
    datamodule.setup("fit")
    model = NerTagger.load_from_checkpoint(
        out / "checkpoints" / metrics["best_checkpoint"], map_location="cpu"
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.validate(model, datamodule=datamodule, verbose=False)
    trainer.test(model, datamodule=datamodule, verbose=False)
    for split in ("dev", "test"):
        assert metrics[split] == json.loads(json.dumps(model.results[split])), split
    # 15 dev sentences over 2 processes: one repeated to even the shards, and not counted.
    gold = sum(len(entity_chunks(s.tags)) for s in datamodule.sentences["dev"])
    assert len(datamodule.sentences["dev"]) % 2 == 1 and metrics["dev"]["micro"]["n_gold"] == gold
    assert metrics["test"]["micro"]["n_pred"] > 0, "the run predicts no entity: the comparison is vacuous"

    dev = [model.predictions["dev"][i] for i in range(len(datamodule.sentences["dev"]))]
    test = [model.predictions["test"][i] for i in range(len(datamodule.sentences["test"]))]
    assert (out / "predictions" / "dev.iob2").read_text() == sentence_predictions(
        datamodule.sentences["dev"], dev
    )
    assert (out / "predictions" / "test.iob2").read_text() == corpus_predictions(datamodule.test_corpus, test)


@pytest.mark.slow
def test_predictions_are_complete_and_in_input_order(ddp_run):
    out, _, _ = ddp_run
    source = (Path(OmegaConf.load(out / "config.yaml").data.dir) / "test.iob2").read_text().splitlines()
    written = (out / "predictions" / "test.iob2").read_text().splitlines()
    assert len(written) == len(source)
    for src, line in zip(source, written, strict=True):
        if src.strip() and not src.startswith("###"):
            assert line.split("\t")[:2] == src.split("\t")[:2]
        else:
            assert line == src


@pytest.mark.slow
def test_sigterm_to_rank_zero_stops_both_and_the_resumed_run_ends_like_the_uninterrupted_one(
    ddp_run, tmp_path
):
    reference, metrics, _ = ddp_run
    out = tmp_path / "run"
    cmd = [sys.executable, "experiments/run.py", *DDP, "++checkpoint_every_n_steps=2", "ckpt_path=last"]
    cmd.append(f"hydra.run.dir={out}")
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while not (out / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[
            -3000:
        ]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # rank 0 only: the ranks agree on it after the current batch
    assert process.wait(timeout=300) == 128 + signal.SIGTERM, (tmp_path / "first.log").read_text()[-3000:]
    assert "SIGTERM: stopped at epoch 0" in (tmp_path / "first.log").read_text()

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    resumed = json.loads((out / "metrics.json").read_text())
    assert {k: resumed[k] for k in ("dev", "test", "best_epoch")} == {
        k: metrics[k] for k in ("dev", "test", "best_epoch")
    }
    a, b = (
        torch.load(p / "checkpoints" / "last.ckpt", map_location="cpu")["state_dict"]
        for p in (out, reference)
    )
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights differ from the uninterrupted run's"
