"""Softmax head: an independent label per word, trained with cross-entropy; no parameters of its own."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ner.heads.base import ExportedDecoder, check_mode
from ner.heads.viterbi import check_inputs, path_scores, viterbi_decode
from ner.tags import bio_constraints

DECODE_MODES = ("argmax", "viterbi")


class SoftmaxHead(nn.Module):
    """Per-word softmax over labels.

    decode="argmax" takes each word's best label and may produce invalid BIO (`O I-X`), as the original
    model card did; decode="viterbi" finds the best *valid* sequence of summed log-probabilities (zero
    transition scores, -inf for disallowed ones), so an ablation can separate "valid sequences" from
    "CRF training".
    """

    def __init__(self, labels: Sequence[str], decode: str = "argmax") -> None:
        super().__init__()
        if decode not in DECODE_MODES:
            raise ValueError(f"unknown decode mode {decode!r}; expected one of {list(DECODE_MODES)}")
        self.labels = list(labels)
        self.decode_modes = (decode, *(mode for mode in DECODE_MODES if mode != decode))
        start, transitions, end = bio_constraints(self.labels)
        # zero for allowed, -inf for disallowed: buffers so they follow the module across devices;
        # not persistent because they are rebuilt from the labels
        for name, allowed in (("start", start), ("transitions", transitions), ("end", end)):
            log_allowed = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
            self.register_buffer(f"{name}_log_allowed", log_allowed, persistent=False)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Cross-entropy averaged over real (masked-in) words, in float32."""
        check_inputs(emissions, mask, len(self.labels), tags)
        mask = mask.bool()
        return F.cross_entropy(emissions[mask].float(), tags[mask])  # (real words, labels) -> scalar

    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Per-word label probabilities (batch, words, labels), in float32."""
        check_inputs(emissions, mask, len(self.labels))
        return emissions.float().softmax(dim=-1)

    def decode(self, emissions: Tensor, mask: Tensor, mode: str | None = None) -> list[list[int]]:
        """Best label ids per sequence, each of length mask[i].sum(); `mode` argmax or viterbi."""
        check_inputs(emissions, mask, len(self.labels))
        if check_mode(self, mode) == "viterbi":
            log_probs = emissions.float().log_softmax(dim=-1)  # (batch, words, labels)
            return viterbi_decode(
                log_probs, mask, self.transitions_log_allowed, self.start_log_allowed, self.end_log_allowed
            )
        best = emissions.argmax(dim=-1)  # (batch, words)
        lengths = mask.bool().sum(dim=1, keepdim=True)  # (batch, 1)
        rows = torch.cat([lengths, best], dim=1).tolist()  # one device-to-host transfer
        return [row[1 : 1 + row[0]] for row in rows]

    def scores(self, emissions: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per-word confidence of `paths`: the softmax probability of each chosen label."""
        return path_scores(self.marginals(emissions, mask), mask, paths)

    def export_decoder(self, mode: str | None = None) -> ExportedDecoder | None:
        if check_mode(self, mode) == "argmax":
            return None  # a standard token classifier's argmax
        scores = (self.start_log_allowed, self.end_log_allowed, self.transitions_log_allowed)
        return ExportedDecoder("softmax_viterbi", *(score.clone() for score in scores))
