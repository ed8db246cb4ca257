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

from ner.heads.viterbi import DISALLOWED, check_inputs, path_scores, viterbi_decode
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
    can give them their own learning rate.
    """

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

    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Best label ids per sequence (batched Viterbi), each of length mask[i].sum()."""
        check_inputs(emissions, mask, len(self.labels))
        crf = self.crf
        with torch.no_grad(), torch.autocast(device_type=emissions.device.type, enabled=False):
            return viterbi_decode(
                emissions.float(), mask, crf.transitions, crf.start_transitions, crf.end_transitions
            )

    def marginals(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Posterior probability of each label at each word (batch, words, labels), by forward-backward.

        Rows past a sequence's end repeat its last word and should be ignored.
        """
        check_inputs(emissions, mask, len(self.labels))
        mask = mask.bool()
        with torch.autocast(device_type=emissions.device.type, enabled=False), parametrize.cached():
            emissions = emissions.float()
            transitions = self.crf.transitions.float()  # (from, to)
            end = self.crf.end_transitions.float()
            words = emissions.size(1)

            # alpha[t]: (batch, labels) log-sum of all prefixes that end at word t in each label
            alpha = [self.crf.start_transitions.float() + emissions[:, 0]]
            for t in range(1, words):
                step = torch.logsumexp(alpha[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]
                alpha.append(torch.where(mask[:, t].unsqueeze(1), step, alpha[-1]))

            # beta[t]: (batch, labels) log-sum of all suffixes after word t, given its label; at a
            # sequence's last word (next word padded) that is just the end score
            beta = [end.expand_as(alpha[0])]
            for t in range(words - 2, -1, -1):
                after = emissions[:, t + 1] + beta[-1]  # (batch, to)
                step = torch.logsumexp(transitions + after.unsqueeze(1), dim=2)  # (batch, from)
                beta.append(torch.where(mask[:, t + 1].unsqueeze(1), step, end.expand_as(step)))
            beta.reverse()

            log_joint = torch.stack(alpha, dim=1) + torch.stack(beta, dim=1)  # (batch, words, labels)
            log_partition = torch.logsumexp(log_joint[:, 0], dim=1)  # (batch,)
            return (log_joint - log_partition[:, None, None]).exp()

    def scores(self, emissions: Tensor, mask: Tensor, paths: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per-word confidence of `paths`: the posterior marginal of each chosen label."""
        with torch.no_grad():
            return path_scores(self.marginals(emissions, mask), mask, paths)
