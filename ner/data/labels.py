"""IOB2 label vocabulary: the deterministic label list and tag parsing shared by data, heads and metrics."""

from __future__ import annotations

from collections.abc import Iterable

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
    """The label list for `types`: `O` first, then every `B-`/`I-` label sorted, so ids never depend on data order."""
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
