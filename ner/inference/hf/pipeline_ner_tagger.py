"""`pipeline("ner", model=DIR, tokenizer=DIR, trust_remote_code=True)` for an exported CRF tagger.

The standard pipeline would take an argmax per subword, ignoring the transitions. This one groups subwords
into words (the words given with `is_split_into_words=True`, else as the standard pipeline's word
aggregation does: pieces between spaces and punctuation), runs the model's `decode` over each word's first
subword, and reports one entry per word (`aggregation_strategy="none"`) or the grouped
entities (any other strategy: the decoder labels whole words, so they all agree). A word's score is the
posterior probability of its label; an entity's is the mean over its words.
"""

from __future__ import annotations

import torch
from transformers.pipelines.token_classification import AggregationStrategy, TokenClassificationPipeline


class NerTaggerPipeline(TokenClassificationPipeline):
    def check_model_type(self, supported_models) -> None:
        """The model class ships with this pipeline, so it is supported by construction."""

    def postprocess(self, all_outputs, aggregation_strategy=AggregationStrategy.NONE, ignore_labels=None):
        ignore_labels = ["O"] if ignore_labels is None else ignore_labels
        sentence = all_outputs[0]["sentence"]
        word_to_chars_map = all_outputs[0].get("word_to_chars_map")
        entities = []
        for outputs in all_outputs:
            emissions = outputs["logits"][0].float()  # (subwords, labels)
            offsets = outputs["offset_mapping"][0] if outputs["offset_mapping"] is not None else None
            tokens = self.gather_pre_entities(
                sentence,
                outputs["input_ids"][0],
                emissions.numpy(),
                offsets,
                outputs["special_tokens_mask"][0].numpy(),
                AggregationStrategy.FIRST,
                word_ids=outputs.get("word_ids"),
                word_to_chars_map=word_to_chars_map,
            )
            # words: the caller's own when it passed words (`is_split_into_words=True`), else the
            # standard pipeline's (a new word at each piece that is not a `##` continuation)
            word_ids = outputs.get("word_ids")
            words: list[list[dict]] = []
            for token in tokens:
                if word_ids is not None:
                    same_word = bool(words) and word_ids[token["index"]] == word_ids[words[-1][0]["index"]]
                else:
                    same_word = bool(words) and token["is_subword"]
                if same_word:
                    words[-1].append(token)
                else:
                    words.append([token])
            if not words:
                continue
            first = torch.tensor([word[0]["index"] for word in words])
            paths, confidences = self.model.decode(emissions[first].unsqueeze(0))  # (1, words, labels)
            labelled = [
                {
                    "entity": self.model.config.id2label[label],
                    "score": score,
                    "index": word[0]["index"],
                    "word": self.tokenizer.convert_tokens_to_string([token["word"] for token in word]),
                    "start": word[0]["start"],
                    "end": word[-1]["end"],
                }
                for word, label, score in zip(words, paths[0], confidences[0], strict=True)
            ]
            grouped = (
                labelled
                if aggregation_strategy == AggregationStrategy.NONE
                else self.group_entities(labelled)
            )
            entities.extend(e for e in grouped if e.get("entity", e.get("entity_group")) not in ignore_labels)
        if len(all_outputs) > 1:
            entities = self.aggregate_overlapping_entities(entities)
        return entities
