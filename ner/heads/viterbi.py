"""Decoding under transition scores: a batched Viterbi, forward-backward marginals, per-word confidences.

Shared by both heads, so the softmax head's constrained decoding and the CRF's decoding are the same
algorithm and an ablation can separate "valid sequences" from "CRF training". It imports only torch:
`python -m ner export` copies this file into the Hugging Face folder, whose model decodes with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Score given to a disallowed start or transition in the CRF. Finite, so that pytorch-crf's
# `transition * mask` on padded words never computes `-inf * 0 = nan`, and representable in
# float16/bfloat16 too (a model cast with `.half()` keeps it finite). exp(-1e4) underflows to exactly 0
# in float32 (anything below about -104 does), so disallowed paths carry no probability in the partition
# function or the marginals. It beats any valid path as long as the emissions of two labels at one word
# differ by less than 1e4 (an invalid I-X can always be swapped for B-X); linear-layer emissions are
# orders of magnitude smaller. `viterbi_decode` also accepts -inf (the softmax head uses it).
DISALLOWED = -1e4


def check_inputs(emissions: Tensor, mask: Tensor, num_labels: int, tags: Tensor | None = None) -> None:
    """Raise a ValueError naming the shapes when head inputs do not fit together."""
    if emissions.dim() != 3 or emissions.size(2) != num_labels:
        raise ValueError(f"emissions must be (batch, words, {num_labels}), got {tuple(emissions.shape)}")
    if mask.shape != emissions.shape[:2]:
        raise ValueError(f"mask must be {tuple(emissions.shape[:2])}, got {tuple(mask.shape)}")
    if tags is not None and tags.shape != emissions.shape[:2]:
        raise ValueError(f"tags must be {tuple(emissions.shape[:2])}, got {tuple(tags.shape)}")
    if emissions.size(1) == 0 or not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one word: mask[:, 0] must be all True")


def viterbi_decode(
    scores: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor
) -> list[list[int]]:
    """Best label path per sequence: argmax of start + sum(scores) + sum(transitions) + end.

    `scores` (batch, words, labels), `mask` (batch, words) left-aligned with mask[:, 0] True,
    `transitions` (from, to), `start`/`end` (labels,); disallowed entries are -inf or `DISALLOWED`.
    Vectorised over the batch (pytorch-crf's decode loops over sequences in Python); the only loops are
    over words, and the paths reach the host in a single transfer. Computes in float32 whatever the inputs.
    """
    check_inputs(scores, mask, transitions.size(0))
    scores, transitions = scores.float(), transitions.float()
    mask = mask.bool()
    batch, words, num_labels = scores.shape
    stay = torch.arange(num_labels, device=scores.device).expand(batch, num_labels)  # (batch, labels)

    best = start.float() + scores[:, 0]  # (batch, labels): best score of a path ending in each label
    backpointers = []
    for t in range(1, words):
        # (batch, from, to): extend every best path by one transition and the next word's score
        candidates = best.unsqueeze(2) + transitions + scores[:, t].unsqueeze(1)
        step_best, step_from = candidates.max(dim=1)  # (batch, labels)
        real = mask[:, t].unsqueeze(1)  # (batch, 1)
        best = torch.where(real, step_best, best)
        # past a sequence's end, point each label at itself, so backtracking from the last column
        # carries the best final label unchanged down to the sequence's own last word
        backpointers.append(torch.where(real, step_from, stay))
    best = best + end.float()  # every sequence's scores now stop at its own last word

    label = best.argmax(dim=1)  # (batch,)
    path = [label]
    for step_from in reversed(backpointers):
        label = step_from.gather(1, label.unsqueeze(1)).squeeze(1)
        path.append(label)
    path = torch.stack(path[::-1], dim=1)  # (batch, words)

    lengths = mask.sum(dim=1, keepdim=True)  # (batch, 1)
    rows = torch.cat([lengths, path], dim=1).tolist()  # one device-to-host transfer for everything
    return [row[1 : 1 + row[0]] for row in rows]


def marginals(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Posterior probability of each label at each word (batch, words, labels), by forward-backward.

    Arguments as `viterbi_decode`'s; computes in float32. Rows past a sequence's end repeat its last word
    and should be ignored.
    """
    check_inputs(emissions, mask, transitions.size(0))
    emissions, transitions, end = emissions.float(), transitions.float(), end.float()
    mask = mask.bool()
    words = emissions.size(1)

    # alpha[t]: (batch, labels) log-sum of all prefixes that end at word t in each label
    alpha = [start.float() + emissions[:, 0]]
    for t in range(1, words):
        step = torch.logsumexp(alpha[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alpha.append(torch.where(mask[:, t].unsqueeze(1), step, alpha[-1]))

    # beta[t]: (batch, labels) log-sum of all suffixes after word t, given its label; at a sequence's last
    # word (next word padded) that is just the end score
    beta = [end.expand_as(alpha[0])]
    for t in range(words - 2, -1, -1):
        after = emissions[:, t + 1] + beta[-1]  # (batch, to)
        step = torch.logsumexp(transitions + after.unsqueeze(1), dim=2)  # (batch, from)
        beta.append(torch.where(mask[:, t + 1].unsqueeze(1), step, end.expand_as(step)))
    beta.reverse()

    log_joint = torch.stack(alpha, dim=1) + torch.stack(beta, dim=1)  # (batch, words, labels)
    log_partition = torch.logsumexp(log_joint[:, 0], dim=1)  # (batch,)
    return (log_joint - log_partition[:, None, None]).exp()


def path_scores(probabilities: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
    """Per-word confidence of decoded `paths`: `probabilities` (batch, words, labels) at each chosen label."""
    lengths = mask.sum(dim=1).tolist()
    if len(paths) != len(lengths) or any(len(p) != n for p, n in zip(paths, lengths, strict=True)):
        raise ValueError(f"paths must have the mask's lengths {lengths}, got {[len(p) for p in paths]}")
    if not paths:
        return []
    words = probabilities.size(1)
    padded = torch.tensor([list(p) + [0] * (words - len(p)) for p in paths], dtype=torch.long)
    index = padded.to(probabilities.device).unsqueeze(2)  # (batch, words, 1)
    chosen = probabilities.gather(2, index).squeeze(2)  # (batch, words)
    return [row[:n] for row, n in zip(chosen.float().tolist(), lengths, strict=True)]
