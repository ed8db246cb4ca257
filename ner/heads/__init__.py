"""Heads turn word emissions (batch, words, labels) into a loss and label paths.

Every head is an `nn.Module` with `forward(emissions, tags, mask) -> loss`,
`decode(emissions, mask) -> list[list[int]]`, `marginals(emissions, mask) -> (batch, words, labels)`
and `scores(emissions, mask, paths) -> list[list[float]]`. Adding a head is one file, one entry in
`HEADS` and one YAML in the head config group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ner.heads.crf import CRFHead
from ner.heads.softmax import SoftmaxHead
from ner.heads.viterbi import DISALLOWED, viterbi_decode
from ner.tags import bio_constraints

HEADS: dict[str, type[nn.Module]] = {"softmax": SoftmaxHead, "crf": CRFHead}


def build_head(name: str, labels: Sequence[str], **options: Any) -> nn.Module:
    """The head called `name` over `labels`; `options` go to its constructor (`decode`, `constrained`)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {sorted(HEADS)}")
    return HEADS[name](labels, **options)


__all__ = [
    "DISALLOWED",
    "HEADS",
    "CRFHead",
    "SoftmaxHead",
    "bio_constraints",
    "build_head",
    "viterbi_decode",
]
