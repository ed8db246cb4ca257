"""Batch samplers that know about distributed shards, so metrics stay exact across processes.

Training: random batches, or length-bucketed ones (sorted within large random pools) that cut padding.
Evaluation: length-sorted batches; shards are evened out with repeated sentences that are flagged
`counted=False`, so every process runs the same number of steps but no sentence is scored twice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

BUCKET_POOL_BATCHES = 50  # batches per sorted pool: large enough to cut padding, small enough to stay random


class TrainBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Shuffled batches of sentence indices for this process's shard; `set_epoch` reshuffles."""

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        bucket: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.lengths, self.batch_size, self.bucket, self.seed = list(lengths), batch_size, bucket, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already trained on in it)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> TrainBatchSampler:
        """Lightning calls `set_epoch` at each epoch start on a loader's `batch_sampler.sampler`, never on the
        batch sampler itself: this makes that call reach us (without it every epoch has epoch 0's order)."""
        return self

    def resume(self, epoch: int, done: int) -> None:
        """Skip the first `done` batches of `epoch`, once: a run resumed mid-epoch sees the rest of that
        epoch's batches, in the order the interrupted run would have seen them. Later epochs are untouched."""
        self._resume = (epoch, done) if 0 < done < len(self) else None

    def _all_batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.bucket:
            pool = self.batch_size * BUCKET_POOL_BATCHES
            order = [
                i for p in range(0, len(order), pool) for i in sorted(order[p : p + pool], key=self.lengths.__getitem__)
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.bucket:
            rng.shuffle(batches)
        # Every process must take the same number of steps: repeat batches to a multiple of the replicas
        # (cycling, for the case of fewer batches than processes).
        total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        return batches + [batches[i % len(batches)] for i in range(total - len(batches))]

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip, self._resume = self._resume[1], None
        for batch in self._all_batches()[self.rank :: self.num_replicas][skip:]:
            yield [(i, True) for i in batch]

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.lengths) / self.batch_size) / self.num_replicas)


class EvalBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Length-sorted batches, sentences dealt round-robin to processes; padding repeats are not counted."""

    def __init__(self, lengths: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.lengths, self.batch_size, self.num_replicas, self.rank = list(lengths), batch_size, num_replicas, rank

    def _shard(self) -> list[tuple[int, bool]]:
        order = sorted(range(len(self.lengths)), key=self.lengths.__getitem__)
        total = math.ceil(len(order) / self.num_replicas) * self.num_replicas
        repeats = [order[i % len(order)] for i in range(total - len(order))]  # cycles if fewer than replicas
        padded = [(i, True) for i in order] + [(i, False) for i in repeats]
        return padded[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        shard = self._shard()
        for start in range(0, len(shard), self.batch_size):
            yield shard[start : start + self.batch_size]

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.lengths) / self.num_replicas) / self.batch_size)
