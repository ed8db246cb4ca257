"""Resume everywhere: a run killed mid-epoch (SIGTERM or SIGKILL) and restarted in the same folder with
`ckpt_path=last` ends with the same weights and metrics as an uninterrupted run (CPU, deterministic)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader

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


def test_sampler_resume_skips_the_trained_batches_of_that_epoch_only():
    lengths = [3, 9, 4, 7, 1, 8, 2, 6, 5, 10, 11]
    full = TrainBatchSampler(lengths, batch_size=2, bucket=True, seed=7)
    resumed = TrainBatchSampler(lengths, batch_size=2, bucket=True, seed=7)
    full.set_epoch(1)
    resumed.set_epoch(1)
    resumed.resume(epoch=1, done=4)
    assert list(resumed) == list(full)[4:]
    assert list(resumed) == list(full)  # once: the next pass over the epoch is whole again
    resumed.resume(epoch=0, done=4)  # another epoch's position does not apply
    assert list(resumed) == list(full) and len(resumed) == len(full) == 6


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
    """The training clock `EpochHistory` saved in a checkpoint."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    return state["callbacks"]["EpochHistory"]["clock"]


def assert_timing_spans_both_processes(out: Path, before: dict) -> None:
    """The resumed run's timing counts the killed process's training, not only its own."""
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    assert timing["processes"] == 2
    assert timing["fit_seconds"] > before["fit_seconds"] > 0
    assert all(s is not None and s > 0 for s in timing["seconds_per_epoch"]), (timing, before)
    assert timing["seconds_per_epoch"][before["epoch"]] > before["epoch_seconds"] > 0


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def assert_same_run(out: Path, reference: Path) -> None:
    ours, theirs = (json.loads((p / "metrics.json").read_text()) for p in (out, reference))
    for key in ("dev", "test", "best_epoch", "best_checkpoint"):
        assert ours[key] == theirs[key], key
    assert [e["dev_f1"] for e in ours["epochs"]] == [e["dev_f1"] for e in theirs["epochs"]]
    a, b = weights(out), weights(reference)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights differ from the uninterrupted run's"
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
