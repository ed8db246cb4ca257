"""Writing a run's outputs atomically: a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ner.data.reader import ABSTRACT_MARKER, Corpus, Sentence


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


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
