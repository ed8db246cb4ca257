"""Choosing the development set without touching the test set.

`dev` is one of:
- `scibert`: the 200 training abstracts the SciBERT authors held out (JNLPBA's default);
- `random`: a seeded random fraction of the training file, by document where it has document markers;
- `auto`: `dev.iob2` in the data folder when there is one, else `random`;
- `test`: the test set itself. Only to reproduce the model card's protocol, which selected its epoch on
  the test set; every output of such a run says so;
- `none`: no dev set: the final retrain on every training abstract (the SciBERT dev abstracts included),
  for a fixed number of epochs taken from a dev-selected run (`retrain_from=RUN`, `ner.retrain`);
- anything else: a path to a dev file (relative paths are looked up in the data folder first).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ner.data.reader import Corpus, Sentence
from ner.errors import DataError, NerError

DEV_ON_TEST_WARNING = (
    "model card protocol: checkpoint selected on the TEST set (data.dev=test); test scores are optimistic"
)
MIN_DOCS_FOR_DOC_SPLIT = 10


@dataclass(frozen=True)
class Split:
    """Training and dev sentences, and a one-line description of how dev was chosen (saved in outputs)."""

    train: list[Sentence]
    dev: list[Sentence]
    description: str
    dev_is_test: bool = False

    @property
    def has_dev(self) -> bool:
        """False for `data.dev=none`: no validation loop, the last epoch is kept."""
        return bool(self.dev)


def scibert_dev_ids() -> list[str]:
    """The MEDLINE ids of the SciBERT authors' 200 dev abstracts (shipped with the package)."""
    text = resources.files("ner.data").joinpath("scibert_dev_ids.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def split_by_ids(corpus: Corpus, dev_ids: list[str], name: str) -> Split:
    """Dev = the documents whose ids are listed; every listed id must be in the corpus."""
    if not corpus.has_doc_markers:
        raise DataError(corpus.path, f"data.dev={name} needs ###MEDLINE:<id> abstract markers, found none")
    missing = sorted(set(dev_ids) - set(corpus.doc_ids))
    if missing:
        raise DataError(
            corpus.path,
            f"{len(missing)} of the {len(dev_ids)} {name} dev abstracts are not in the file "
            f"(first: {missing[0]}); is this the JNLPBA training file?",
        )
    wanted = set(dev_ids)
    dev = [s for s in corpus.sentences if s.doc_id in wanted]
    train = [s for s in corpus.sentences if s.doc_id not in wanted]
    return Split(train, dev, f"{name}: {len(dev_ids)} abstracts held out of {corpus.path.name}")


def split_random(corpus: Corpus, fraction: float, seed: int) -> Split:
    """A seeded random dev fraction: whole documents where there are enough, else sentences."""
    if not 0.0 < fraction < 1.0:
        raise NerError(f"data.dev_fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    doc_ids = corpus.doc_ids
    if corpus.has_doc_markers and len(doc_ids) >= MIN_DOCS_FOR_DOC_SPLIT:
        chosen = set(rng.sample(doc_ids, max(1, round(fraction * len(doc_ids)))))
        dev = [s for s in corpus.sentences if s.doc_id in chosen]
        train = [s for s in corpus.sentences if s.doc_id not in chosen]
        unit = f"{len(chosen)} of {len(doc_ids)} documents"
    else:
        n = len(corpus.sentences)
        indices = set(rng.sample(range(n), max(1, round(fraction * n))))
        dev = [s for i, s in enumerate(corpus.sentences) if i in indices]
        train = [s for i, s in enumerate(corpus.sentences) if i not in indices]
        unit = f"{len(dev)} of {n} sentences"
    return Split(train, dev, f"random (seed {seed}): {unit} of {corpus.path.name}")


def make_split(
    train: Corpus,
    test: Corpus,
    dev: str,
    data_dir: Path,
    fraction: float,
    seed: int,
    read_dev,
) -> Split:
    """Apply the `dev` choice (see module docstring); `read_dev(path)` reads a dev file as the run reads."""
    if dev == "auto":
        dev = "dev.iob2" if (data_dir / "dev.iob2").exists() else "random"
    if dev == "scibert":
        split = split_by_ids(train, scibert_dev_ids(), "scibert")
    elif dev == "random":
        split = split_random(train, fraction, seed)
    elif dev == "test":
        split = Split(list(train.sentences), list(test.sentences), DEV_ON_TEST_WARNING, dev_is_test=True)
    elif dev == "none":
        description = f"none: no dev set, trained on train+dev (every sentence of {train.path.name})"
        split = Split(list(train.sentences), [], description)
    else:
        path = Path(dev)
        if not path.is_absolute() and (data_dir / path).exists():
            path = data_dir / path
        dev_corpus = read_dev(path)
        split = Split(list(train.sentences), dev_corpus.sentences, f"file: {path}")
    for name, sentences in (("training", split.train), ("dev", split.dev)):
        if not sentences and not (name == "dev" and dev == "none"):
            raise DataError(train.path, f"the {name} split is empty ({split.description})")
    return split
