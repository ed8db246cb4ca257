"""Configuration of an exported tagger whose decoding needs more than an argmax (CRF, constrained softmax).

Shipped inside the exported folder and loaded with `trust_remote_code=True`; it imports nothing from
the `ner` package, so the folder works wherever `transformers` and `torch` are installed.
"""

from __future__ import annotations

from transformers import PretrainedConfig

DECODERS = ("crf", "softmax_viterbi")


class NerTaggerConfig(PretrainedConfig):
    """`encoder`: the encoder's own configuration (a dict with its `model_type`); `decoder`: how word
    labels are chosen, `crf` (Viterbi over emissions + learned transitions) or `softmax_viterbi`
    (the best BIO-valid sequence of softmax log-probabilities)."""

    model_type = "ner_tagger"

    def __init__(self, encoder: dict | None = None, decoder: str = "crf", **kwargs) -> None:
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")
        self.encoder = dict(encoder or {})
        self.decoder = decoder
        super().__init__(**kwargs)
