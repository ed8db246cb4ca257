"""Linear-chain CRF head: pytorch-crf's likelihood, BIO constraints in its parameters, batched Viterbi.

All CRF math runs in float32 with autocast off: the partition function sums exponentials over many
words and bfloat16's 8-bit mantissa is not enough for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torchcrf import CRF

from ner.heads.base import ExportedDecoder, check_mode
from ner.heads.viterbi import DISALLOWED, check_inputs, marginals, path_scores, viterbi_decode
from ner.tags import bio_constraints


class MaskDisallowed(nn.Module):
    """Parametrization that pins disallowed entries to `DISALLOWED`.

    Applied to the CRF's own parameters, so the partition function, the gold score and decoding all see
    the same constrained scores, and masked_fill sends no gradient into the pinned entries.
    """

    def __init__(self, allowed: Tensor) -> None:
        super().__init__()
        self.register_buffer("allowed", allowed, persistent=False)  # rebuilt from the labels

    def forward(self, scores: Tensor) -> Tensor:
        return scores.masked_fill(~self.allowed, DISALLOWED)


class CRFHead(nn.Module):
    """CRF over word emissions; `constrained=True` gives invalid BIO sequences zero probability.

    Its parameters (start, end and transition scores) are found by `head.parameters()`, so the model
    gives them their own learning rate (`head.lr`).
    """

    decode_modes = ("crf",)

    def __init__(self, labels: Sequence[str], constrained: bool = True) -> None:
        super().__init__()
        self.labels = list(labels)
        self.constrained = constrained
        self.crf = CRF(len(self.labels), batch_first=True)
        if constrained:
            start, transitions, end = bio_constraints(self.labels)
            for name, allowed in (("start_transitions", start), ("transitions", transitions)):
                parametrize.register_parametrization(self.crf, name, MaskDisallowed(allowed))
            if not bool(end.all()):  # IOB2 allows every label last; kept general for other schemes
                parametrize.register_parametrization(self.crf, "end_transitions", MaskDisallowed(end))

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood averaged over the sequences of the batch, in float32."""
        check_inputs(emissions, mask, len(self.labels), tags)
        mask = mask.bool()
        # padded tags may be -100 or anything: pin them to label 0 ("O") so pytorch-crf indexes safely;
        # it multiplies their scores by the mask, and any label may follow into "O"
        tags = tags.masked_fill(~mask, 0)
        with torch.autocast(device_type=emissions.device.type, enabled=False), parametrize.cached():
            return -self.crf(emissions.float(), tags, mask, reduction="mean")

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """(start, end, transitions) in float32, disallowed entries pinned (parametrized attributes)."""
        crf = self.crf
        return crf.start_transitions.float(), crf.end_transitions.float(), crf.transitions.float()

    def decode(self, emissions: Tensor, mask: Tensor, mode: str | None = None) -> list[list[int]]:
        """Best label ids per sequence (batched Viterbi), each of length mask[i].sum()."""
        check_mode(self, mode)
        with torch.no_grad(), torch.autocast(device_type=emissions.device.type, enabled=False):
            start, end, transitions = self._scores()
            return viterbi_decode(emissions.float(), mask, transitions, start, end)

    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Posterior probability of each label at each word (batch, words, labels), by forward-backward."""
        with torch.autocast(device_type=emissions.device.type, enabled=False), parametrize.cached():
            start, end, transitions = self._scores()
            return marginals(emissions.float(), mask, transitions, start, end)

    def scores(self, emissions: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per-word confidence of `paths`: the posterior marginal of each chosen label."""
        with torch.no_grad():
            return path_scores(self.marginals(emissions, mask), mask, paths)

    def export_decoder(self, mode: str | None = None) -> ExportedDecoder:
        check_mode(self, mode)
        with torch.no_grad():
            start, end, transitions = (score.detach().clone() for score in self._scores())
        return ExportedDecoder("crf", start, end, transitions)
