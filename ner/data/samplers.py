"""Batch samplers that know about distributed shards, so metrics stay exact across processes.

Training: random batches, or length-bucketed ones (sorted within large random pools) that cut padding.
Evaluation: length-sorted batches; shards are evened out with repeated sentences that are flagged
`counted=False`, so every process runs the same number of steps but no sentence is scored twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

BUCKET_POOL_BATCHES = 50  # batches per sorted pool: large enough to cut padding, small enough to stay random


class TrainBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Shuffled batches of sentence indices for this process's shard; `set_epoch` reshuffles.

    Deterministic given (seed, epoch): torchdata's `StatefulDataLoader` resumes mid-epoch by drawing the
    epoch's batches again and skipping those already trained on.
    """

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

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def sampler(self) -> TrainBatchSampler:
        """Lightning calls `set_epoch` at each epoch start on a loader's `batch_sampler.sampler`, never on the
        batch sampler itself: this makes that call reach us (without it every epoch has epoch 0's order)."""
        return self

    def _all_batches(self) -> list[list[int]]:
        # Seeded by the pair, not `seed + epoch`: that made seed 2's epoch 0 seed 1's epoch 1.
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)).tolist()
        if self.bucket:
            pool = self.batch_size * BUCKET_POOL_BATCHES
            order = [
                i
                for p in range(0, len(order), pool)
                for i in sorted(order[p : p + pool], key=self.lengths.__getitem__)
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.bucket:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        # Every process must take the same number of steps: repeat batches to a multiple of the replicas
        # (cycling, for the case of fewer batches than processes).
        total = math.ceil(len(batches) / self.num_replicas) * self.num_replicas
        return batches + [batches[i % len(batches)] for i in range(total - len(batches))]

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        for batch in self._all_batches()[self.rank :: self.num_replicas]:
            yield [(i, True) for i in batch]

    def __len__(self) -> int:
        return math.ceil(math.ceil(len(self.lengths) / self.batch_size) / self.num_replicas)


class EvalBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Length-sorted batches, sentences dealt round-robin to processes; padding repeats are not counted."""

    def __init__(self, lengths: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.lengths, self.batch_size, self.num_replicas, self.rank = (
            list(lengths),
            batch_size,
            num_replicas,
            rank,
        )

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
