"""Subword tokenization, windowing of long sentences and merging window predictions back into words.

A sentence longer than the encoder's budget is never truncated: it is cut into overlapping windows of
whole words, every window is a model input, and each word takes its prediction from the window where it
has the most context on both sides. Heads see words only: `word_index` points at each word's first
subword inside its window.

Document context (`data.context`, `ner.data.context`) never takes a sentence's own room: the windows are
planned on the sentence's words alone, exactly as without context, and context fills what is left of
`max_length` in a window: the preceding text only in a window that starts at the sentence's first word,
the following text only in one that ends at its last word (so every input is contiguous text). The room
is split between the sides: each gets up to half, nearest subwords first, and a side that needs less
leaves the rest to the other; never more than the N subwords of a side that `context_pieces` supplies.
Context subwords have no `word_index` entry: they are never labelled, scored or predicted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase

from ner.data.context import NO_CONTEXT, Context


@dataclass(frozen=True)
class Window:
    """One encoder input covering words `[start, start + len(word_index))` of its sentence."""

    input_ids: tuple[int, ...]  # with the encoder's special tokens
    word_index: tuple[int, ...]  # position of each word's first subword in input_ids
    start: int
    owned: tuple[bool, ...]  # True where this window supplies the word's prediction
    labels: tuple[int, ...]  # label id of each word: its target in training, its gold elsewhere
    left: tuple[int, int] = (0, 0)  # [start, end) of the preceding context's subwords in input_ids
    right: tuple[int, int] = (0, 0)  # [start, end) of the following context's subwords in input_ids


@dataclass(frozen=True)
class EncodedSentence:
    """A sentence ready for the model: its windows (each with its words' label ids)."""

    index: int  # position in its split, so predictions find their way back
    windows: tuple[Window, ...]

    @property
    def n_subwords(self) -> int:
        return sum(len(w.input_ids) for w in self.windows)


def word_pieces(
    tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]]
) -> list[list[list[int]]]:
    """Subword ids of every word, `[sentence][word][piece]`. A word the tokenizer maps to nothing
    (e.g. a lone control character) becomes the unknown token, so no word ever disappears."""
    encoding = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    result = []
    for i, words in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in words]
        for token_id, word_id in zip(encoding["input_ids"][i], encoding.word_ids(i), strict=True):
            if word_id is not None:
                pieces[word_id].append(token_id)
        result.append([p or [tokenizer.unk_token_id] for p in pieces])
    return result


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the encoder expects before and after a single sequence (e.g. `[CLS]` and `[SEP]`)."""
    encoding = tokenizer(["x"], is_split_into_words=True)
    ids, word_ids = encoding["input_ids"], encoding.word_ids()
    first, last = word_ids.index(0), len(word_ids) - 1 - word_ids[::-1].index(0)
    return ids[:first], ids[last + 1 :]


def plan_windows(costs: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Word ranges `[start, end)` whose summed subword `costs` fit `budget`.

    Consecutive windows start at least `stride` subwords apart and overlap, so that every word can be
    predicted away from a window edge. One window when the whole sentence fits.
    """
    if budget < 1 or stride < 1:
        raise ValueError(f"budget and stride must be positive, got {budget}, {stride}")
    n = len(costs)
    offsets = [0]
    for cost in costs:
        offsets.append(offsets[-1] + min(cost, budget))
    windows, start = [], 0
    while True:
        end = start + 1
        while end < n and offsets[end + 1] - offsets[start] <= budget:
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        next_start = start + 1
        while next_start < end and offsets[next_start] - offsets[start] < stride:
            next_start += 1
        start = next_start


def owners(windows: Sequence[tuple[int, int]], n_words: int) -> list[int]:
    """For each word, the window where it has the most context: max over windows of the smaller of its
    left and right context (a sentence edge counts as full context); ties go to the earlier window."""
    best: list[tuple[float, int]] = [(-1.0, -1)] * n_words
    for w, (start, end) in enumerate(windows):
        for i in range(start, end):
            left = float("inf") if start == 0 else i - start
            right = float("inf") if end == n_words else end - 1 - i
            score = min(left, right)
            if score > best[i][0]:
                best[i] = (score, w)
    return [w for _, w in best]


def encode_sentence(
    index: int,
    pieces: list[list[int]],
    labels: Sequence[int],
    specials: tuple[list[int], list[int]],
    max_length: int,
    stride: int | None = None,
    begin_of: Mapping[int, int] | None = None,
    context: Context = NO_CONTEXT,
) -> EncodedSentence:
    """Cut one sentence's word pieces into windows of at most `max_length` subwords (special tokens included).

    `specials`: the encoder's (prefix, suffix) ids, from `special_tokens`. `stride`: subwords between
    window starts (default: half the budget). `begin_of`: the `B-X` id of every `I-X` id; given (training
    targets), a window that starts inside an entity starts it with `B-X`, so every window's targets are a
    valid sequence, which a constrained CRF needs (an `I-` first has probability zero there).
    `context`: the (left, right) subwords of the sentence's document around it (`context_pieces`), added
    where the words leave room, by the rule of the module docstring.
    """
    prefix, suffix = specials
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"data.max_length={max_length} leaves no room for words")
    spans = plan_windows([len(p) for p in pieces], budget, stride or max(1, budget // 2))
    owner = owners(spans, len(pieces))
    windows = []
    for w, (start, end) in enumerate(spans):
        words = [pieces[word][:budget] for word in range(start, end)]  # an over-long word keeps its head
        before = context[0] if start == 0 else ()
        after = context[1] if end == len(pieces) else ()
        n_left, n_right = share_room(budget - sum(map(len, words)), len(before), len(after))
        ids = [*prefix, *before[len(before) - n_left :]]
        word_index = []
        for word in words:
            word_index.append(len(ids))
            ids.extend(word)
        ids.extend(after[:n_right])
        left, right = (len(prefix), len(prefix) + n_left), (len(ids) - n_right, len(ids))
        ids.extend(suffix)
        owned = tuple(owner[word] == w for word in range(start, end))
        targets = list(labels[start:end])
        if begin_of is not None:
            targets[0] = begin_of.get(targets[0], targets[0])
        context_spans = {"left": left, "right": right} if n_left or n_right else {}  # else the defaults
        windows.append(Window(tuple(ids), tuple(word_index), start, owned, tuple(targets), **context_spans))
    return EncodedSentence(index, tuple(windows))


def share_room(room: int, left: int, right: int) -> tuple[int, int]:
    """Context subwords taken on each side from `room` free places, when `left` and `right` are on offer:
    up to half each, and what one side leaves goes to the other."""
    n_left = min(left, room // 2)
    n_right = min(right, room - n_left)
    return min(left, room - n_right), n_right


def drop_context(sentence: EncodedSentence, left: bool, right: bool) -> EncodedSentence:
    """`sentence` with its preceding (`left`) and/or following (`right`) context removed, the other side
    left as it was (`context_dropout`); both removed: the windows it has when encoded without context."""
    windows = []
    for window in sentence.windows:
        ids, word_index = list(window.input_ids), window.word_index
        spans = {"left": window.left, "right": window.right}
        if right:
            del ids[slice(*window.right)]
            spans["right"] = (0, 0)
        if left:
            start, end = window.left
            del ids[start:end]
            word_index = tuple(i - (end - start) for i in word_index)
            if spans["right"] != (0, 0):
                spans["right"] = (spans["right"][0] - (end - start), spans["right"][1] - (end - start))
            spans["left"] = (0, 0)
        windows.append(replace(window, input_ids=tuple(ids), word_index=word_index, **spans))
    return replace(sentence, windows=tuple(windows))


def collate(items: Sequence[tuple[EncodedSentence, bool]], pad_id: int) -> dict:
    """Pad a batch of sentences' windows to the longest window (dynamic padding).

    `counted` is False for sentences repeated only to even out distributed shards: they are run but
    neither scored nor written.
    """
    windows = [(i, w) for i, (sentence, _) in enumerate(items) for w in sentence.windows]

    def pad(rows: Sequence[Sequence[int]], value: int = 0) -> torch.Tensor:
        tensors = [torch.tensor(row, dtype=torch.long) for row in rows]
        return pad_sequence(tensors, batch_first=True, padding_value=value)

    return {
        "input_ids": pad([w.input_ids for _, w in windows], pad_id),  # (windows, subwords)
        "attention_mask": pad([[1] * len(w.input_ids) for _, w in windows]),  # (windows, subwords)
        "word_index": pad([w.word_index for _, w in windows]),  # (windows, words)
        "word_mask": pad([[1] * len(w.word_index) for _, w in windows]).bool(),  # (windows, words)
        "labels": pad([w.labels for _, w in windows]),  # (windows, words)
        "window_item": [item for item, _ in windows],
        "window_owned": [window.owned for _, window in windows],
        "sentence_index": [sentence.index for sentence, _ in items],
        "counted": [counted for _, counted in items],
    }


def merge_window_rows(
    rows: torch.Tensor, owned: Sequence[Sequence[bool]], window_item: Sequence[int], n_items: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-word rows of each sentence, each word's row from its owning window: (windows, words, ...) ->
    (sentences, words, ...), with the sentence word mask (sentences, words).

    Merging emissions before decoding lets a head decode whole sentences, so a Viterbi or CRF path is valid
    across window seams too (two windows' paths, cut and joined, need not be).
    """
    positions: list[list[tuple[int, int]]] = [[] for _ in range(n_items)]
    for window, (mask, item) in enumerate(zip(owned, window_item, strict=True)):
        positions[item].extend((window, word) for word, keep in enumerate(mask) if keep)
    longest = max(len(p) for p in positions)
    index = torch.zeros((2, n_items, longest), dtype=torch.long)  # (window, word) of each sentence word
    mask = torch.zeros((n_items, longest), dtype=torch.bool)
    for item, words in enumerate(positions):
        index[:, item, : len(words)] = torch.tensor(words, dtype=torch.long).T
        mask[item, : len(words)] = True
    index = index.to(rows.device)
    return rows[index[0], index[1]], mask.to(rows.device)
