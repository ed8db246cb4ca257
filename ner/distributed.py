"""Small helpers for code that runs the same in one process and under DDP."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def gather_objects(local: list[Any]) -> list[Any]:
    """Every process's list, concatenated (in rank order) on every process; the list itself when alone."""
    if not is_distributed():
        return list(local)
    gathered: list[list[Any]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, local)
    return [item for part in gathered for item in part]


def all_max(values: list[int], device: torch.device | str = "cpu") -> list[int]:
    """Element-wise maximum of `values` over all processes (e.g. flags: did any process get a signal?)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()
