"""Prediction files: `token<TAB>gold<TAB>pred`, laid out like the corpus file they predict."""

from __future__ import annotations

from collections.abc import Sequence

from ner.data.reader import ABSTRACT_MARKER, Corpus, Sentence


def corpus_predictions(corpus: Corpus, predictions: Sequence[Sequence[str]]) -> str:
    """`token<TAB>gold<TAB>pred`, line for line the source file: markers and blank lines stay in place."""
    if len(predictions) != len(corpus.sentences):
        raise ValueError(
            f"{len(predictions)} predicted sentences for {len(corpus.sentences)} in {corpus.path}"
        )
    by_line: dict[int, str] = {}
    for sentence, tags in zip(corpus.sentences, predictions, strict=True):
        _check_length(sentence, tags)
        for token, gold, pred, line in zip(sentence.tokens, sentence.tags, tags, sentence.lines, strict=True):
            by_line[line] = f"{token}\t{gold}\t{pred}"
    lines = [by_line.get(number, raw) for number, raw in enumerate(corpus.raw_lines, start=1)]
    return "\n".join(lines) + "\n"


def sentence_predictions(sentences: Sequence[Sentence], predictions: Sequence[Sequence[str]]) -> str:
    """`token<TAB>gold<TAB>pred` for sentences taken out of a file (e.g. dev), abstract markers kept."""
    out, doc = [], None
    for sentence, tags in zip(sentences, predictions, strict=True):
        _check_length(sentence, tags)
        if sentence.doc_id is not None and sentence.doc_id != doc:
            doc = sentence.doc_id
            out += [f"{ABSTRACT_MARKER}{doc}", ""]
        out += [f"{t}\t{g}\t{p}" for t, g, p in zip(sentence.tokens, sentence.tags, tags, strict=True)] + [""]
    return "\n".join(out) + "\n"


def _check_length(sentence: Sentence, tags: Sequence[str]) -> None:
    if len(tags) != len(sentence.tokens):
        raise ValueError(
            f"{len(tags)} predicted tags for {len(sentence.tokens)} words (line {sentence.lines[0]})"
        )
