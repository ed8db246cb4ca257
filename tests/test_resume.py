"""Resume everywhere: a run killed mid-epoch (SIGTERM or SIGKILL) and restarted in the same folder with
`ckpt_path=last` ends with the same weights and metrics as an uninterrupted run (CPU, deterministic)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from test_config import compose_config
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

import ner.train
from ner.data.samplers import TrainBatchSampler

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 5  # of the sample's 8 batches: short, and the epoch boundary falls between checkpoints
QUICK = [
    "experiment=quickstart",
    "progress_bar=false",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    f"++trainer.limit_train_batches={STEPS_PER_EPOCH}",
]
INTERRUPTED = [*QUICK, "++checkpoint_every_n_steps=2", "ckpt_path=last"]


def test_loader_state_resumes_the_epoch_mid_way_in_its_order():
    """torchdata's loader fast-forwards the batches already drawn (the data module sets the epoch)."""
    lengths = [3, 9, 4, 7, 1, 8, 2, 6, 5, 10, 11]

    def loader() -> StatefulDataLoader:
        sampler = TrainBatchSampler(lengths, batch_size=2, bucket=True, seed=7)
        return StatefulDataLoader(_Index(), batch_sampler=sampler, collate_fn=list)

    full = loader()
    full.batch_sampler.set_epoch(1)
    expected = list(full)
    interrupted = loader()
    interrupted.batch_sampler.set_epoch(1)
    batches = iter(interrupted)
    seen = [next(batches) for _ in range(4)]
    resumed = loader()  # a new process
    resumed.batch_sampler.set_epoch(1)
    resumed.load_state_dict(interrupted.state_dict())
    assert seen + list(resumed) == expected and len(expected) == 6
    assert list(resumed) == expected  # once: the next pass over the epoch is whole again


class _Index(Dataset):
    """Each (index, counted) key loads as its index."""

    def __getitem__(self, key: tuple[int, bool]) -> int:
        return key[0]


@pytest.mark.parametrize("bucket", [False, True])
def test_every_seed_and_epoch_has_its_own_order(bucket):
    lengths = [(7 * i) % 23 + 1 for i in range(40)]
    orders = {}
    for seed in range(1, 6):
        for epoch in range(10):
            sampler = TrainBatchSampler(lengths, batch_size=4, bucket=bucket, seed=seed)
            sampler.set_epoch(epoch)
            orders[seed, epoch] = tuple(i for batch in sampler for i, _ in batch)
    assert len(set(orders.values())) == len(orders) == 50  # seed s, epoch e+1 was seed s+1, epoch e


def test_lightning_sets_the_epoch_of_the_training_batch_sampler():
    sampler = TrainBatchSampler(list(range(1, 30)), batch_size=4, seed=7)
    first = list(sampler)
    _set_sampler_epoch(DataLoader(range(29), batch_sampler=sampler), 3)  # what the fit loop does each epoch
    assert sampler.epoch == 3 and list(sampler) != first


def start(out: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "experiments/run.py", *overrides, f"hydra.run.dir={out}"]
    with open(out.with_suffix(".log"), "ab") as log:  # the child keeps its own copy of the file
        return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def log_tail(out: Path) -> str:
    return "\n".join(out.with_suffix(".log").read_text(errors="replace").splitlines()[-30:])


def run_to_end(out: Path, *overrides: str) -> dict:
    code = start(out, *overrides).wait(timeout=600)
    assert code == 0, f"run exited with {code}:\n{log_tail(out)}"
    return json.loads((out / "metrics.json").read_text())


def wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def saved_step(checkpoint: Path) -> int | None:
    """The global step a checkpoint was saved at (None while there is none); cheap: tensors stay on disk."""
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)["global_step"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return None


def saved_clock(checkpoint: Path) -> dict:
    """The training clock (Lightning's `Timer`) and the epoch a checkpoint was saved in."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    fit_seconds = state["callbacks"]["Timer"]["time_elapsed"]["train"]
    finished = state["callbacks"]["EpochHistory"]["epochs"]
    epoch_seconds = fit_seconds - sum(e["seconds"] for e in finished)  # of the epoch being trained
    return {"fit_seconds": fit_seconds, "epoch": len(finished), "epoch_seconds": epoch_seconds}


def assert_timing_spans_both_processes(out: Path, before: dict) -> None:
    """The resumed run's timing counts the killed process's training, not only its own."""
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    assert timing["processes"] == 2
    assert timing["fit_seconds"] > before["fit_seconds"] > 0
    assert all(s is not None and s > 0 for s in timing["seconds_per_epoch"]), (timing, before)
    assert timing["seconds_per_epoch"][before["epoch"]] > before["epoch_seconds"] > 0


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def curve(out: Path) -> list[dict[str, str]]:
    """logs/metrics.csv, row by row, without its empty cells (the columns' order may differ)."""
    with open(out / "logs" / "metrics.csv", newline="") as handle:
        rows = [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]
    assert any("val/f1" in row for row in rows) and any("train/loss" in row for row in rows)
    return rows


def assert_same_run(out: Path, reference: Path) -> None:
    ours, theirs = (json.loads((p / "metrics.json").read_text()) for p in (out, reference))
    for key in ("dev", "test", "best_epoch", "best_checkpoint"):
        assert ours[key] == theirs[key], key
    assert [e["dev_f1"] for e in ours["epochs"]] == [e["dev_f1"] for e in theirs["epochs"]]
    a, b = weights(out), weights(reference)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights differ from the uninterrupted run's"
    assert curve(out) == curve(reference), "the CSV curve differs from the uninterrupted run's"
    for name in ("dev", "test"):
        assert (out / "predictions" / f"{name}.iob2").read_text() == (
            reference / "predictions" / f"{name}.iob2"
        ).read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "uninterrupted"
    assert run_to_end(out, *QUICK)["timing"]["processes"] == 1
    return out


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, tmp_path):
    out = tmp_path / "run"
    process = start(out, *INTERRUPTED)
    last = out / "checkpoints" / "last.ckpt"
    wait_for(last.exists, "the first periodic checkpoint (step 2)")
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=300)
    assert code == 128 + signal.SIGTERM, f"exit {code}:\n{log_tail(out)}"
    assert not (out / "metrics.json").exists()
    step = saved_step(last)  # written after the batch that was running when the signal came
    assert 2 < step < 2 * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH, (
        f"not a mid-epoch checkpoint: step {step}"
    )
    assert "SIGTERM: stopped at epoch" in out.with_suffix(".log").read_text()
    before = saved_clock(last)

    run_to_end(out, *INTERRUPTED)  # same folder, ckpt_path=last
    assert_same_run(out, uninterrupted)
    assert_timing_spans_both_processes(out, before)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, tmp_path):
    out = tmp_path / "run"
    process = start(out, *INTERRUPTED)
    last = out / "checkpoints" / "last.ckpt"
    # Into the second epoch: the periodic save at step 6 (or 8) is the newest checkpoint when SIGKILL lands.
    wait_for(lambda: (saved_step(last) or 0) > STEPS_PER_EPOCH, "a mid-epoch checkpoint in the second epoch")
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    step = saved_step(last)
    assert step % STEPS_PER_EPOCH, f"not a mid-epoch checkpoint: step {step}"
    before = saved_clock(last)

    run_to_end(out, *INTERRUPTED)
    assert_same_run(out, uninterrupted)
    assert_timing_spans_both_processes(out, before)


# Every epoch's checkpoint kept, and a step checkpoint every 2 of the 4 steps of an epoch: the step count
# lands on each epoch's last batch, right before its validation.
KEPT = [
    *QUICK,
    "++trainer.limit_train_batches=4",
    "keep_epoch_checkpoints=true",
    "checkpoint_every_n_steps=2",
]


class CopyAtValidation(L.Callback):
    """Copies the run folder as a kill during this epoch's validation leaves it."""

    def __init__(self, out: Path, epoch: int, copy: Path) -> None:
        self.out, self.epoch, self.copy = out, epoch, copy

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            shutil.copytree(self.out, self.copy)


def train_in_process(out: Path, *callbacks: L.Callback) -> dict:
    """`run` with extra callbacks on its trainer (same process: the tests resume in-process too)."""
    build_trainer = ner.train.build_trainer

    def with_callbacks(cfg, folder, retrain=None):
        trainer, best, history = build_trainer(cfg, folder, retrain)
        trainer.callbacks.extend(callbacks)
        return trainer, best, history

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ner.train, "build_trainer", with_callbacks)
        return ner.train.run(compose_config([*KEPT, "ckpt_path=last", f"output_dir={out}"]))


@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run with every kind of checkpoint, and its folder as a kill in the last epoch's validation
    left it; the latter in the run's own place (its checkpoints name their folder), the former moved away."""
    root = tmp_path_factory.mktemp("kept")
    out, killed = root / "run", root / "killed"
    train_in_process(out, CopyAtValidation(out, 1, killed))
    shutil.move(out, root / "uninterrupted")
    shutil.move(killed, out)
    return root / "uninterrupted", out


def test_kept_epoch_and_step_checkpoints_write_each_file_once(kept):
    uninterrupted, _ = kept
    metrics = json.loads((uninterrupted / "metrics.json").read_text())
    folder = uninterrupted / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["epoch0.ckpt", "epoch1.ckpt", "last.ckpt", metrics["best_checkpoint"]]), names
    assert (
        [saved_step(folder / f"epoch{e}.ckpt") for e in (0, 1)]
        == [4, 8]
        == [e["step"] for e in metrics["epochs"]]
    )
    assert saved_step(folder / "last.ckpt") == 8


@pytest.mark.slow
def test_killed_in_the_last_epochs_validation_resumes_every_epoch(kept):
    """The newest checkpoint then must be the mid-epoch one of step 6, not one of step 8 from before the
    validation: resumed from that, Lightning skips the epoch's validation and ends with one epoch less."""
    uninterrupted, out = kept
    assert saved_step(out / "checkpoints" / "last.ckpt") == 6
    metrics = train_in_process(out)  # ckpt_path=last
    assert metrics["timing"]["processes"] == 2
    assert_same_run(out, uninterrupted)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(
        p.name for p in (uninterrupted / "checkpoints").iterdir()
    )


class SignalAtValidation(L.Callback):
    """Sends this process SIGTERM when this epoch's validation starts (training itself is over for it)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer.current_epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> tuple[Path, int]:
    """The run of `kept`, stopped by SIGTERM in its first epoch's validation: its folder and exit status."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.raises(SystemExit) as stop:
        train_in_process(out, SignalAtValidation(0))
    return out, stop.value.code


def test_sigterm_in_validation_stops_after_the_epochs_checkpoints(stopped):
    out, code = stopped
    assert code == 128 + signal.SIGTERM
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["best-epoch0.ckpt", "epoch0.ckpt", "last.ckpt"], names
    assert saved_step(out / "checkpoints" / "last.ckpt") == 4


@pytest.mark.slow
def test_resume_from_an_epoch_end_equals_uninterrupted(stopped, kept):
    """The most common resume (no step checkpoint yet in the epoch the run was killed in)."""
    out, _ = stopped
    train_in_process(out)
    assert_same_run(out, kept[0])
