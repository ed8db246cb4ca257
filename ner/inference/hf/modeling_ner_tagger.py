"""An exported tagger that decodes with its transitions: encoder -> linear emissions -> Viterbi over words.

Shipped inside the exported folder and loaded with `trust_remote_code=True`, next to a copy of the heads'
own decoding code (`ner/heads/viterbi.py`, which needs only torch): the folder decodes exactly as the
training code does and imports nothing from the `ner` package. `forward` returns the emissions of every
subword as `logits` (what the training code calls emissions); `decode` turns the emissions of each word's
first subword into labels, either with the CRF's learned transitions or with the BIO constraints over
softmax log-probabilities. The pipeline in
`pipeline_ner_tagger.py` calls `decode`, so `pipeline("ner", ...)` gives the head's own decoding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import TokenClassifierOutput

from .configuration_ner_tagger import NerTaggerConfig

try:  # in an exported folder: the copy of ner/heads/viterbi.py that `python -m ner export` puts beside this
    from .viterbi import marginals, path_scores, viterbi_decode
except ImportError:  # imported from the ner package itself (the export builds the model with this class)
    from ner.heads.viterbi import marginals, path_scores, viterbi_decode

NO_POOLER_TYPES = ("bert", "roberta", "xlm-roberta", "electra")


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
            paths = viterbi_decode(emissions, mask, transitions, start, end)
            probabilities = marginals(emissions, mask, transitions, start, end)
        else:  # softmax_viterbi: best BIO-valid sequence of per-word log-probabilities
            paths = viterbi_decode(emissions.log_softmax(-1), mask, transitions, start, end)
            probabilities = emissions.softmax(-1)
        return paths, path_scores(probabilities, mask, paths)
