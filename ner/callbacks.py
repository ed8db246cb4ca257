"""Lightning callbacks of our own: a per-epoch history, and what makes an interrupted run resume exactly.

A resumed run finishes with the same weights as an uninterrupted one when it restarts from a state the
uninterrupted run actually had (a batch boundary), sees the remaining batches in the same order (the
training loader is torchdata's `StatefulDataLoader`) and draws the same dropout masks (`RandomState`).
Lightning's `ModelCheckpoint` writes those states at epoch ends and every N steps; `Preemption` on signals.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint, Timer
from lightning.pytorch.utilities import rank_zero_warn

from ner.distributed import all_max, gather_objects

log = logging.getLogger(__name__)

# Sent before a SLURM time limit: SIGUSR1 by experiments/slurm/ (--signal=USR1@90), SIGUSR2 by submitit.
REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class EpochHistory(L.Callback):
    """Records, per epoch, its seconds and the dev scores; saved in checkpoints, so a resumed run keeps it.

    The seconds come from Lightning's `Timer`, whose training clock is saved in checkpoints too: a resumed
    run counts the training of all its processes (each up to its last checkpoint), not only the last one's.
    """

    def __init__(self, timer: Timer) -> None:
        self.timer = timer
        self.epochs: list[dict[str, Any]] = []
        self.processes = 1  # that trained this run, counting this one

    @property
    def fit_seconds(self) -> float:
        """Training wall time of this run so far, over every process that trained it."""
        return self.timer.time_elapsed("train")

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # After the module computed its dev scores, before ModelCheckpoint saves (it runs last).
        if trainer.sanity_checking or trainer.state.fn != "fit" or "dev" not in module.results:
            return
        micro = module.results["dev"]["micro"]
        seconds = self.fit_seconds - sum(e["seconds"] for e in self.epochs)
        self.epochs.append(
            {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                "seconds": round(seconds, 2),
                "dev_f1": micro["f1"],
                "dev_precision": micro["precision"],
                "dev_recall": micro["recall"],
                "dev_macro_f1": module.results["dev"]["macro"]["f1"],
            }
        )

    @property
    def best(self) -> dict[str, Any] | None:
        """The first epoch with the highest dev F1: the one ModelCheckpoint(mode='max') keeps."""
        return max(self.epochs, key=lambda e: e["dev_f1"], default=None)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "processes": self.processes}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict["epochs"])
        self.processes = state_dict.get("processes", 1) + 1


def rng_states() -> dict[str, Any]:
    """This process's global RNG states, as tensors and plain lists (checkpoints load with `weights_only`)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, cached),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomState(L.Callback):
    """Saves every process's RNG states in checkpoints; restores them before the first batch after a resume.

    Restored only then, not on load: the sanity check and loader set-up in between must not matter. Nothing
    draws from the global RNGs between two training batches (dropout is off in evaluation, loaders have their
    own generator), so the state saved after batch N is the one batch N + 1 starts from.
    """

    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"per_rank": gather_objects([rng_states()])}  # every process saves: all are in this call

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict["per_rank"]

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        if len(self._pending) == trainer.world_size:
            set_rng_states(self._pending[trainer.global_rank])
        else:
            rank_zero_warn(
                f"resumed with {trainer.world_size} processes from a checkpoint of {len(self._pending)}: "
                "random states not restored, so the run will not repeat the uninterrupted one exactly"
            )
        self._pending = None


class StepCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint(every_n_train_steps=N)`, but never on an epoch's last batch.

    Saved there, before the epoch's validation, a checkpoint resumes into the next epoch and Lightning
    skips it; the epoch-end checkpoint, after validation, comes next anyway.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # tests/test_resume.py::test_killed_in_the_last_epochs_validation_resumes_every_epoch
        if batch_idx + 1 < trainer.num_training_batches:
            super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)


class Interrupted(SystemExit):
    """Ends every process once `Preemption` has saved; exit status 128 + signal, as if the signal had."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)


def requeue_slurm_job() -> bool:
    """`scontrol requeue` this SLURM job (or array task); False, with the reason logged, when it fails."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.error("cannot requeue SLURM job %s: %s", job, error)
        return False
    if result.returncode != 0:
        log.error("scontrol requeue %s failed: %s", job, (result.stderr or result.stdout).strip())
        return False
    log.warning("requeued SLURM job %s: it resumes from the checkpoint when it starts again", job)
    return True


class Preemption(L.Callback):
    """On SIGTERM, SIGUSR1 or SIGUSR2: save `last.ckpt` at the next batch boundary, requeue, and exit.

    Kept because Lightning's SLURM auto-requeue saves from inside the signal handler: a handler can run
    mid-step or while other processes wait in a collective, and such a checkpoint is not a state the
    uninterrupted run ever had (or never gets written). Here the handler only notes the signal. After the
    current training batch all processes agree on it (one all-reduce of three flags per batch, under DDP
    only), `last.ckpt` is written, rank 0 requeues the SLURM job on SIGUSR1/SIGUSR2 inside one, and every
    process exits with `Interrupted`. A signal during an epoch's last batch or its validation is handled
    when the next epoch starts (or training ends): after the epoch's checkpoints.
    """

    SIGNALS = (signal.SIGTERM, *REQUEUE_SIGNALS)

    def __init__(self, dirpath: str | Path) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._received: set[int] = set()
        self._original: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        self._received.add(signum)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Here, not in `setup`: Lightning registers its own SIGTERM handler after `setup`.
        self._received.clear()
        if threading.current_thread() is not threading.main_thread():
            rank_zero_warn(
                "training outside the main thread: SIGTERM/SIGUSR1 will not be turned into checkpoints"
            )
            return
        for signum in self.SIGNALS:
            self._original.setdefault(signum, signal.signal(signum, self._note))

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if received := self._agreed(trainer):
            self._stop(trainer, received)  # the last epoch's checkpoint is the end of training
        self._restore()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._restore()  # Lightning skips the other end hooks when fit ends with an exception (Interrupted)

    def _restore(self) -> None:
        for signum, handler in self._original.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        if self._original and SLURMEnvironment.detect():
            # Training is over and `last.ckpt` is final: a requeue signal now must not kill the evaluation.
            for signum in REQUEUE_SIGNALS:
                if signal.getsignal(signum) in (signal.SIG_DFL, None):
                    signal.signal(signum, signal.SIG_IGN)
        self._original = {}

    def _agreed(self, trainer: L.Trainer) -> set[int]:
        flags = all_max([int(s in self._received) for s in self.SIGNALS], trainer.strategy.root_device)
        return {s for s, flag in zip(self.SIGNALS, flags, strict=True) if flag}

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            return  # mid-accumulation: the gradients so far are not part of a checkpoint
        if batch_idx + 1 >= trainer.num_training_batches:
            return  # the end-of-epoch validation and checkpoint come next
        if received := self._agreed(trainer):
            trainer.save_checkpoint(self.path)
            self._stop(trainer, received)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # A signal since the previous epoch's last batch: its checkpoints, written after validation by the
        # ModelCheckpoints (Lightning runs them after us at epoch end), hold the state to resume from.
        if trainer.current_epoch > 0 and (received := self._agreed(trainer)):
            self._stop(trainer, received)

    def _stop(self, trainer: L.Trainer, received: set[int]) -> None:
        # SIGTERM first: a job being cancelled or preempted is not ours to requeue.
        signum = signal.SIGTERM if signal.SIGTERM in received else min(received)
        where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
        if trainer.is_global_zero:
            log.warning("%s: stopped at %s; resume from %s", signal.Signals(signum).name, where, self.path)
            if signum in REQUEUE_SIGNALS and SLURMEnvironment.detect():
                requeue_slurm_job()
        raise Interrupted(signum)
