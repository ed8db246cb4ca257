"""The tag vocabulary shared by data, heads and metrics: IOB2 labels, entity chunks and BIO constraints.

It sits below everything else: data, heads and metrics import it, and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str | None]:
    """`'B-protein'` -> `('B', 'protein')`, `'O'` -> `('O', None)`. Raises ValueError on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, entity_type = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not entity_type:
        raise ValueError(f"tag {tag!r} is not 'O', 'B-<type>' or 'I-<type>'")
    return prefix, entity_type


def build_labels(types: Iterable[str]) -> list[str]:
    """The label list for `types`: `O` first, then every `B-`/`I-` label sorted (ids never depend on data
    order)."""
    types = sorted(set(types))
    if not types:
        raise ValueError("at least one entity type is needed")
    return [OUTSIDE] + sorted(f"{prefix}-{t}" for t in types for prefix in ("B", "I"))


def types_of(labels: Iterable[str]) -> list[str]:
    """The sorted entity types named by a label list."""
    return sorted({t for label in labels if (t := split_tag(label)[1]) is not None})


def repair_bio(tags: Iterable[str]) -> tuple[list[str], list[int]]:
    """Turn every `I-X` that cannot continue an entity (after `O`, after another type, or first) into `B-X`.

    Returns the repaired tags and the positions changed. Used on training targets only, where a
    constrained CRF cannot score an invalid sequence; evaluation gold is never changed.
    """
    repaired, changed, previous = [], [], OUTSIDE
    for i, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag)
        if prefix == "I" and split_tag(previous)[1] != entity_type:
            tag = f"B-{entity_type}"
            changed.append(i)
        repaired.append(tag)
        previous = tag
    return repaired, changed


@dataclass(frozen=True)
class Chunk:
    """A maximal run `B-/I-` then `I-`*; `type` is the first tag's type, the entity type when `begun_by_b`."""

    start: int
    end: int  # exclusive
    type: str
    begun_by_b: bool


def entity_chunks(tags: Sequence[str]) -> list[Chunk]:
    """Chunks of one sentence as evalIOB2.pl sees them: an `I-` continues any open chunk, of any type."""
    chunks: list[Chunk] = []
    open_chunk: tuple[int, str, bool] | None = None  # (start, type, begun_by_b)
    for i, tag in enumerate(tags):
        prefix, entity_type = split_tag(tag)
        if prefix == "I" and open_chunk is not None:
            continue
        if open_chunk is not None:
            chunks.append(Chunk(open_chunk[0], i, open_chunk[1], open_chunk[2]))
            open_chunk = None
        if prefix != OUTSIDE:
            open_chunk = (i, entity_type, prefix == "B")
    if open_chunk is not None:
        chunks.append(Chunk(open_chunk[0], len(tags), open_chunk[1], open_chunk[2]))
    return chunks


def bio_constraints(labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Which IOB2 label sequences are valid: `I-X` only after `B-X` or `I-X`, never first; all else allowed.

    Returns `(start_allowed (labels,), transition_allowed (from, to), end_allowed (labels,))`, all bool.
    """
    parsed = [split_tag(label) for label in labels]  # raises ValueError on a malformed label
    num = len(parsed)
    start = torch.tensor([prefix != "I" for prefix, _ in parsed], dtype=torch.bool)
    transitions = torch.ones(num, num, dtype=torch.bool)
    for j, (prefix_to, type_to) in enumerate(parsed):
        if prefix_to != "I":
            continue
        for i, (prefix_from, type_from) in enumerate(parsed):
            transitions[i, j] = prefix_from in ("B", "I") and type_from == type_to
    end = torch.ones(num, dtype=torch.bool)
    return start, transitions, end
