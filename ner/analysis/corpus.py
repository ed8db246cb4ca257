"""Corpus statistics for `notebooks/corpus.ipynb`: sizes, lengths, subword fragmentation, label counts.

The label counts are set against the table of the model card this project reproduces, so a corpus copy
that differs from the one the card was trained on shows up at once.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from ner.analysis.entities import entities, subword_counts
from ner.data.reader import Sentence, read_iob2
from ner.errors import NerError
from ner.tables import Table

# The model card's "number of examples for each class" (train, test); its test I-cell_line reads
# "9,89", taken as 989.
MODEL_CARD_TAG_COUNTS = {
    "O": (382_963, 81_647),
    "B-protein": (30_269, 5_067),
    "I-protein": (24_848, 4_774),
    "B-cell_type": (6_718, 1_921),
    "I-cell_type": (8_748, 2_991),
    "B-DNA": (9_533, 1_056),
    "I-DNA": (15_774, 1_789),
    "B-cell_line": (3_830, 500),
    "I-cell_line": (7_387, 989),
    "B-RNA": (951, 118),
    "I-RNA": (1_530, 187),
}
MODEL_CARD_SENTENCES = (18_546, 3_856)


def read_corpus(folder: str | Path) -> dict[str, list[Sentence]]:
    """The `train`, `test` (and `dev`, when present) files of a corpus folder."""
    folder = Path(folder)
    corpora = {
        name: read_iob2(folder / f"{name}.iob2").sentences
        for name in ("train", "dev", "test")
        if (folder / f"{name}.iob2").is_file()
    }
    if "train" not in corpora or "test" not in corpora:
        raise NerError(f"{folder}: expected train.iob2 and test.iob2")
    return corpora


def summary_table(corpora: dict[str, Sequence[Sentence]]) -> Table:
    """Documents, sentences, words, entities and sentence lengths (words) of each split."""
    rows = []
    for name, sentences in corpora.items():
        lengths = [len(s) for s in sentences]
        rows.append(
            {
                "split": name,
                "documents": len({s.doc_id for s in sentences if s.doc_id is not None}),
                "sentences": len(sentences),
                "words": sum(lengths),
                "entities": sum(len(entities(s.tags)) for s in sentences),
                "mean words/sentence": statistics.fmean(lengths),
                "median": statistics.median(lengths),
                "max": max(lengths),
            }
        )
    return Table("Corpus size", rows)


def fragmentation_table(
    corpora: dict[str, Sequence[Sentence]], tokenizer: PreTrainedTokenizerBase, max_length: int = 128
) -> Table:
    """How the tokenizer cuts the words, and how many sentences need more than one window of `max_length`."""
    budget = max_length - 2  # [CLS] and [SEP] (or the encoder's equivalents)
    rows = []
    for name, sentences in corpora.items():
        counts = subword_counts(sentences, tokenizer)
        words = [c for sentence in counts for c in sentence]
        per_sentence = [sum(sentence) for sentence in counts]
        windowed = sum(n > budget for n in per_sentence)
        rows.append(
            {
                "split": name,
                "subwords/word": statistics.fmean(words),
                "words cut in 2+": sum(c > 1 for c in words) / len(words),
                "words cut in 4+": sum(c > 3 for c in words) / len(words),
                "mean subwords/sentence": statistics.fmean(per_sentence),
                "max": max(per_sentence),
                f"sentences > {max_length} subwords": windowed,
                "share": windowed / len(sentences),
            }
        )
    return Table(f"Subword fragmentation ({tokenizer.name_or_path or 'tokenizer'})", rows)


def tag_counts(sentences: Sequence[Sentence]) -> Counter:
    return Counter(tag for s in sentences for tag in s.tags)


def label_count_table(train: Sequence[Sentence], test: Sequence[Sentence]) -> Table:
    """Tag counts of the corpus against the model card's table (difference relative to the card)."""
    counts = tag_counts(train), tag_counts(test)
    labels = [*MODEL_CARD_TAG_COUNTS, *sorted(set(counts[0]) | set(counts[1]) - set(MODEL_CARD_TAG_COUNTS))]
    rows = []
    for label in labels:
        card = MODEL_CARD_TAG_COUNTS.get(label, (0, 0))
        row = {"label": label}
        for k, split in enumerate(("train", "test")):
            row[split], row[f"card {split}"] = counts[k][label], card[k]
            row[f"{split} diff"] = (counts[k][label] - card[k]) / card[k] if card[k] else None
        rows.append(row)
    sentences = {
        "label": "(sentences)",
        "train": len(train),
        "card train": MODEL_CARD_SENTENCES[0],
        "test": len(test),
        "card test": MODEL_CARD_SENTENCES[1],
    }
    return Table("Tag counts against the model card", [*rows, sentences])


def entity_length_table(corpora: dict[str, Sequence[Sentence]]) -> Table:
    """Entities per type and their mean length in words, per split."""
    rows = []
    for name, sentences in corpora.items():
        by_type: dict[str, list[int]] = {}
        for s in sentences:
            for e in entities(s.tags):
                by_type.setdefault(e.type, []).append(e.end - e.start)
        for entity_type, lengths in sorted(by_type.items()):
            rows.append(
                {
                    "split": name,
                    "type": entity_type,
                    "entities": len(lengths),
                    "mean words": statistics.fmean(lengths),
                    "max words": max(lengths),
                }
            )
    return Table("Entities by type", rows)
