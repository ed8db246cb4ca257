"""An exported tagger that decodes with its transitions: encoder -> linear emissions -> Viterbi over words.

Shipped inside the exported folder and loaded with `trust_remote_code=True`; it imports nothing from
the `ner` package. `forward` returns the emissions of every subword as `logits` (what the training code
calls emissions); `decode` turns the emissions of each word's first subword into labels, either with the
CRF's learned transitions or with the BIO constraints over softmax log-probabilities. The pipeline in
`pipeline_ner_tagger.py` calls `decode`, so `pipeline("ner", ...)` gives the head's own decoding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

from .configuration_ner_tagger import NerTaggerConfig

NO_POOLER_TYPES = ("bert", "roberta", "xlm-roberta", "electra")


def viterbi(scores: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> list[list[int]]:
    """Best path per sequence of start + sum(scores) + sum(transitions) + end.

    `scores` (batch, words, labels), `mask` (batch, words) left-aligned, `transitions` (from, to).
    """
    best = start + scores[:, 0]  # (batch, labels): best score of a path ending in each label
    backpointers = []
    for t in range(1, scores.size(1)):
        candidates = best.unsqueeze(2) + transitions + scores[:, t].unsqueeze(1)  # (batch, from, to)
        step_best, step_from = candidates.max(dim=1)
        real = mask[:, t].unsqueeze(1)
        best = torch.where(real, step_best, best)
        backpointers.append(step_from.masked_fill(~real, -1))  # -1: past this sequence's end
    best = best + end
    paths = []
    for i, length in enumerate(mask.sum(dim=1).tolist()):
        label = int(best[i].argmax())
        path = [label]
        for step_from in reversed(backpointers[: length - 1]):
            label = int(step_from[i, label])
            path.append(label)
        paths.append(path[::-1])
    return paths


def crf_marginals(emissions: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Posterior probability of each label at each word (batch, words, labels), by forward-backward."""
    words = emissions.size(1)
    alpha = [start + emissions[:, 0]]  # log-sum of all prefixes ending at word t in each label
    for t in range(1, words):
        step = torch.logsumexp(alpha[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]
        alpha.append(torch.where(mask[:, t].unsqueeze(1), step, alpha[-1]))
    beta = [end.expand_as(alpha[0])]  # log-sum of all suffixes after word t, given its label
    for t in range(words - 2, -1, -1):
        step = torch.logsumexp(transitions + (emissions[:, t + 1] + beta[-1]).unsqueeze(1), dim=2)
        beta.append(torch.where(mask[:, t + 1].unsqueeze(1), step, end.expand_as(step)))
    log_joint = torch.stack(alpha, dim=1) + torch.stack(beta[::-1], dim=1)
    return (log_joint - torch.logsumexp(log_joint[:, 0], dim=1)[:, None, None]).exp()


class NerTaggerForTokenClassification(PreTrainedModel):
    config_class = NerTaggerConfig
    base_model_prefix = "encoder"

    def __init__(self, config: NerTaggerConfig) -> None:
        super().__init__(config)
        encoder_config = dict(config.encoder)
        encoder_config = AutoConfig.for_model(encoder_config.pop("model_type"), **encoder_config)
        options = {"add_pooling_layer": False} if encoder_config.model_type in NO_POOLER_TYPES else {}
        self.encoder = AutoModel.from_config(encoder_config, **options)
        n = config.num_labels
        self.classifier = nn.Linear(encoder_config.hidden_size, n)
        # (labels,), (labels,), (from, to); disallowed entries are very negative (CRF) or -inf (softmax)
        self.start_transitions = nn.Parameter(torch.zeros(n), requires_grad=False)
        self.end_transitions = nn.Parameter(torch.zeros(n), requires_grad=False)
        self.transitions = nn.Parameter(torch.zeros(n, n), requires_grad=False)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        """Emissions of every subword: `logits` (batch, subwords, labels). Not a softmax classifier's
        logits: labels come from `decode` over each word's first subword."""
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return TokenClassifierOutput(logits=self.classifier(states))

    @torch.no_grad()
    def decode(
        self, emissions: Tensor, mask: Tensor | None = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """Label ids per sequence and the posterior probability of each chosen label.

        `emissions` (batch, words, labels): `logits` at each word's first subword; `mask` (batch, words),
        left-aligned (default: all words real).
        """
        emissions = emissions.float().to(self.transitions.device)
        mask = torch.ones(emissions.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
        mask = mask.to(emissions.device)
        start, end, transitions = (
            p.float() for p in (self.start_transitions, self.end_transitions, self.transitions)
        )
        if self.config.decoder == "crf":
            paths = viterbi(emissions, mask, transitions, start, end)
            probabilities = crf_marginals(emissions, mask, transitions, start, end)
        else:  # softmax_viterbi: best BIO-valid sequence of per-word log-probabilities
            paths = viterbi(emissions.log_softmax(-1), mask, transitions, start, end)
            probabilities = emissions.softmax(-1)
        rows = probabilities.cpu().tolist()  # one transfer; (batch, words, labels)
        confidences = [[rows[i][t][label] for t, label in enumerate(path)] for i, path in enumerate(paths)]
        return paths, confidences
