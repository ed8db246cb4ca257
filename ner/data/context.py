"""Document context, FLERT-style (Schweter & Akbik, 2020): a sentence is encoded together with up to
`data.context` subwords of the text around it in its document, on each side.

The context is input only: its subwords have no `word_index` entry, so they are never labelled, scored
or predicted; they get segment id 0 like the sentence (FLERT adds no marker either). The rule for sharing
a window with the sentence's own words is `ner.data.windows.encode_sentence`'s: own words first, context
in what is left.

Documents are consecutive sentences with the same `Sentence.document` (the reader numbers them by
position); a sentence outside any document (a file without markers) gets no context. Context may reach
past the immediate neighbours: as many neighbouring sentences as the N subwords of a side take.

`context_dropout` (training only) removes each side of a sentence's context with probability p, drawn from
(seed, epoch, sentence index) alone: a resumed run and every distributed rank draw the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

Context = tuple[tuple[int, ...], tuple[int, ...]]  # (left, right) subword ids, in reading order
NO_CONTEXT: Context = ((), ())


def context_pieces(
    pieces: Sequence[Sequence[Sequence[int]]], documents: Sequence[Hashable | None], size: int
) -> list[Context]:
    """For every sentence, up to `size` subwords of its document before it (ending right before it) and
    after it (starting right after it). `pieces[sentence][word]`: subword ids (`word_pieces`); sentences of
    one document are consecutive ones with the same `documents` entry, None belongs to no document."""
    if size < 0:
        raise ValueError(f"data.context must be >= 0, got {size}")
    if len(pieces) != len(documents):
        raise ValueError(f"{len(pieces)} sentences but {len(documents)} document entries")
    flat = [[piece for word in sentence for piece in word] for sentence in pieces]
    result: list[Context] = []
    for i, document in enumerate(documents):
        if size == 0 or document is None:
            result.append(NO_CONTEXT)
            continue
        left: list[int] = []  # nearest subwords first: reversed reading order
        j = i - 1
        while len(left) < size and j >= 0 and documents[j] == document:
            left.extend(reversed(flat[j][-(size - len(left)) :]))
            j -= 1
        right: list[int] = []
        j = i + 1
        while len(right) < size and j < len(documents) and documents[j] == document:
            right.extend(flat[j][: size - len(right)])
            j += 1
        result.append((tuple(reversed(left)), tuple(right)))
    return result


def dropped_sides(p: float, seed: int, epoch: int, index: int) -> tuple[bool, bool]:
    """Whether `context_dropout=p` removes the (left, right) context of training sentence `index` in
    `epoch`: independent draws, from (seed, epoch, index) only."""
    if p <= 0:
        return False, False
    draws = np.random.default_rng([seed, epoch, index]).random(2)
    return bool(draws[0] < p), bool(draws[1] < p)
