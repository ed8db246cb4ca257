"""Heads turn word emissions (batch, words, labels) into a loss and label paths, behind `Head` (base.py).

Adding a head is one file, one entry in `HEADS` (or `HEADS[name] = cls` from anywhere, a test say) and
one YAML in the head config group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ner.heads.base import ExportedDecoder, Head
from ner.heads.crf import CRFHead
from ner.heads.softmax import SoftmaxHead

HEADS: dict[str, type[Head]] = {"softmax": SoftmaxHead, "crf": CRFHead}


def build_head(name: str, labels: Sequence[str], **options: Any) -> Head:
    """The head called `name` over `labels`; `options` go to its constructor (`decode`, `constrained`)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {sorted(HEADS)}")
    head = HEADS[name](labels, **options)
    if not isinstance(head, Head):  # checks that the members exist, so a new head fails here, not mid-run
        raise TypeError(f"head {name!r} ({type(head).__name__}) does not implement ner.heads.Head")
    return head


__all__ = ["HEADS", "CRFHead", "ExportedDecoder", "Head", "SoftmaxHead", "build_head"]
