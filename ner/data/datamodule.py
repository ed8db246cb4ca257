"""The LightningDataModule: reads a corpus folder, splits off dev, tokenizes, windows and batches."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from ner.data.context import context_pieces, dropped_sides
from ner.data.download import ensure_corpus
from ner.data.reader import Corpus, Sentence, read_iob2
from ner.data.samplers import EvalBatchSampler, TrainBatchSampler
from ner.data.schemes import scheme_note
from ner.data.splits import Split, make_split
from ner.data.windows import (
    EncodedSentence,
    collate,
    drop_context,
    encode_sentence,
    special_tokens,
    word_pieces,
)
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.tags import build_labels, repair_bio

log = logging.getLogger(__name__)


def training_targets(sentences: list[Sentence], path: Path) -> list[list[str]]:
    """Gold tags as training targets, with BIO-invalid `I-` tags read as `B-` (and a warning naming them)."""
    targets, fixed = [], []
    for sentence in sentences:
        tags, changed = repair_bio(sentence.tags)
        targets.append(tags)
        fixed.extend(sentence.lines[i] for i in changed)
    if fixed:
        shown = ", ".join(map(str, fixed[:10])) + (" ..." if len(fixed) > 10 else "")
        log.warning(
            "%s: %d I- tags cannot continue an entity (lines %s); trained on as B- tags",
            path,
            len(fixed),
            shown,
        )
    return targets


class EncodedDataset(Dataset):
    """Encoded sentences, indexed by `(index, counted)` pairs from the batch samplers."""

    def __init__(self, sentences: list[EncodedSentence]) -> None:
        self.sentences = sentences

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, key: tuple[int, bool]) -> tuple[EncodedSentence, bool]:
        index, counted = key
        return self.sentences[index], counted


class ContextDropoutDataset(EncodedDataset):
    """Training sentences whose context sides are dropped with probability `p`, drawn from (seed, epoch,
    index) alone (`ner.data.context.dropped_sides`): keys are `(index, counted, epoch)` triples."""

    def __init__(self, sentences: list[EncodedSentence], p: float, seed: int) -> None:
        super().__init__(sentences)
        self.p, self.seed = p, seed

    def __getitem__(self, key: tuple[int, bool, int]) -> tuple[EncodedSentence, bool]:
        index, counted, epoch = key
        left, right = dropped_sides(self.p, self.seed, epoch, index)
        sentence = self.sentences[index]
        return (drop_context(sentence, left, right) if left or right else sentence), counted


class EpochKeySampler(TrainBatchSampler):
    """`TrainBatchSampler` whose keys also carry the epoch, for `ContextDropoutDataset`: the dataset may
    live in a worker process that never sees `set_epoch`, the keys always do."""

    def __iter__(self) -> Iterator[list[tuple[int, bool, int]]]:
        for batch in super().__iter__():
            yield [(index, counted, self.epoch) for index, counted in batch]


class NerDataModule(L.LightningDataModule):
    """IOB2 corpus folder -> train / dev / test dataloaders of windowed, dynamically padded batches.

    Args:
        dir: folder with `train.iob2` and `test.iob2` (and optionally `dev.iob2`).
        tokenizer: the encoder's name or folder (its fast tokenizer is used).
        types: declared entity types, or "auto" to take them from the training file.
        scheme: the files' tagging scheme (`iob2`, `iob1`, `iobes`, `bilou`); all are read as IOB2.
        default_type: the entity type of typeless tags (`B`, `I`, ...); None: typeless tags are an error.
        dev: how to choose the dev set (see `ner.data.splits`).
        dev_fraction: share of the training file held out by `dev=random`.
        max_length: subwords per encoder input, special tokens included; longer sentences are windowed.
        stride: subwords between consecutive window starts (default: half the window).
        batch_size / eval_batch_size: sentences per batch.
        bucket: length-bucketed training batches (less padding) instead of fully random ones.
        context: up to this many subwords of the neighbouring sentences of the same document on each side
            are encoded with every sentence (FLERT-style; `ner.data.context`); 0: none.
        context_dropout: in training, each side's context is dropped with this probability, per sentence
            and epoch; evaluation always has the context.
        download: {split: {url, member}}: `<split>.iob2` is fetched by `prepare_data` when missing.
        seed: for the random dev split and batch order.
    """

    def __init__(
        self,
        dir: str,
        tokenizer: str,
        types: Sequence[str] | str = "auto",
        scheme: str = "iob2",
        default_type: str | None = None,
        dev: str = "auto",
        dev_fraction: float = 0.1,
        max_length: int = 128,
        stride: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        bucket: bool = False,
        context: int = 0,
        context_dropout: float = 0.0,
        num_workers: int = 0,
        download: Mapping[str, Mapping[str, str]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dir, self.tokenizer_name = Path(dir), tokenizer
        self.declared_types = None if types == "auto" else sorted(types)
        self.scheme, self.default_type = scheme, default_type
        self.dev, self.dev_fraction, self.seed = dev, dev_fraction, seed
        self.max_length, self.stride = max_length, stride
        self.batch_size, self.eval_batch_size, self.bucket = batch_size, eval_batch_size, bucket
        self.num_workers, self.download = num_workers, download
        if context < 0 or not 0.0 <= context_dropout <= 1.0:
            raise NerError(
                f"data.context must be >= 0 and data.context_dropout in [0, 1]: got {context}, "
                f"{context_dropout}"
            )
        self.context, self.context_dropout = context, context_dropout
        self._train_corpus: Corpus | None = None
        self.split: Split | None = None
        self.test_corpus: Corpus | None = None
        self.datasets: dict[str, EncodedDataset] = {}
        self._train_loader: StatefulDataLoader | None = None
        self._loader_state: dict | None = None  # from a checkpoint: where the training data continues

    def prepare_data(self) -> None:
        ensure_corpus(self.dir, self.download or {"train": None, "test": None})

    @property
    def train_corpus(self) -> Corpus:
        if self._train_corpus is None:
            self._train_corpus = self._read(self.dir / "train.iob2", self.declared_types)
        return self._train_corpus

    @property
    def labels(self) -> list[str]:
        """Label list: `O`, then sorted `B-`/`I-` labels of the declared (or inferred) types."""
        return build_labels(self.declared_types or self.train_corpus.types)

    @property
    def types(self) -> list[str]:
        return self.declared_types or self.train_corpus.types

    @property
    def scheme_note(self) -> str | None:
        """How every split was read, e.g. "read as IOB1, converted to IOB2" (None for typed IOB2 files)."""
        return scheme_note(self.scheme, self.default_type)

    def _read(self, path: Path, types: Sequence[str] | None) -> Corpus:
        corpus = read_iob2(path, types, scheme=self.scheme, default_type=self.default_type)
        if self.context and not corpus.has_doc_markers:
            log.info("%s: no ###MEDLINE: or -DOCSTART- markers: its sentences get no context", path)
        return corpus

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        read = partial(self._read, types=self.types)
        self.test_corpus = read(self.dir / "test.iob2")
        self.split = make_split(
            self.train_corpus, self.test_corpus, self.dev, self.dir, self.dev_fraction, self.seed, read
        )
        tokenizer = load_tokenizer(self.tokenizer_name)
        self.pad_id = tokenizer.pad_token_id
        label_ids = {label: i for i, label in enumerate(self.labels)}
        # training windows that start inside an entity start it: `I-X` targets there become `B-X`
        begin_of = {
            i: label_ids[f"B-{label[2:]}"] for label, i in label_ids.items() if label.startswith("I-")
        }
        encode = partial(
            encode_sentence,
            specials=special_tokens(tokenizer),
            max_length=self.max_length,
            stride=self.stride,
        )
        for name, sentences in self.sentences.items():
            train = name == "train"
            pieces = word_pieces(tokenizer, [s.tokens for s in sentences])
            tags = (
                training_targets(sentences, self.train_corpus.path) if train else [s.tags for s in sentences]
            )
            ids = [[label_ids[tag] for tag in sentence] for sentence in tags]
            context = context_pieces(pieces, [s.document for s in sentences], self.context)
            encoded = [
                encode(i, p, t, begin_of=begin_of if train else None, context=c)
                for i, (p, t, c) in enumerate(zip(pieces, ids, context, strict=True))
            ]
            if train and self.context > 0 and self.context_dropout > 0:
                self.datasets[name] = ContextDropoutDataset(encoded, self.context_dropout, self.seed)
            else:
                self.datasets[name] = EncodedDataset(encoded)

    @property
    def sentences(self) -> dict[str, list[Sentence]]:
        """The raw sentences of each split, in the order of their encoded indices."""
        return {"train": self.split.train, "dev": self.split.dev, "test": self.test_corpus.sentences}

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: EncodedDataset, sampler, loader: type = DataLoader) -> DataLoader:
        return loader(
            dataset,
            batch_sampler=sampler,
            collate_fn=partial(collate, pad_id=self.pad_id),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Every new iterator draws a seed from this generator. Drawn from the global RNG instead, each
            # validation pass would shift the dropout masks, and a resumed run could not draw the same ones.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """torchdata's loader, which saves its position mid-epoch (and the sampler's epoch)."""
        dataset = self.datasets["train"]
        replicas, rank = self._world()
        lengths = [s.n_subwords for s in dataset.sentences]
        keyed = EpochKeySampler if isinstance(dataset, ContextDropoutDataset) else TrainBatchSampler
        sampler = keyed(lengths, self.batch_size, self.bucket, self.seed, replicas, rank)
        self._train_loader = self._loader(dataset, sampler, StatefulDataLoader)
        if self._loader_state is not None:  # epoch first: the loader draws before Lightning sets it
            sampler.set_epoch(self._loader_state["epoch"])
            self._train_loader.load_state_dict(self._loader_state["train_loader"])
            self._loader_state = None
        return self._train_loader

    # Lightning restores a StatefulDataLoader only if it is built after the checkpoint is loaded; ours is
    # built before, when `configure_optimizers` counts the steps: the data module carries its state instead.
    def state_dict(self) -> dict:
        if self._train_loader is None:
            return {}
        trainer = self.trainer
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready >= trainer.num_training_batches:
            return {}  # every batch of the epoch drawn: the next epoch starts afresh (tests/test_resume.py)
        epoch = self._train_loader.batch_sampler.epoch
        return {"train_loader": self._train_loader.state_dict(), "epoch": epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self._loader_state = state_dict if "train_loader" in state_dict else None  # older checkpoints: none

    def eval_dataloader(self, split: str) -> DataLoader:
        dataset = self.datasets[split]
        replicas, rank = self._world()
        lengths = [s.n_subwords for s in dataset.sentences]
        return self._loader(dataset, EvalBatchSampler(lengths, self.eval_batch_size, replicas, rank))

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("dev")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")
