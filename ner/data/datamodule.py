"""The LightningDataModule: reads a corpus folder, splits off dev, tokenizes, windows and batches."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ner.data.download import ensure_corpus
from ner.tags import build_labels, repair_bio
from ner.data.reader import Corpus, Sentence, read_iob2
from ner.data.samplers import EvalBatchSampler, TrainBatchSampler
from ner.data.splits import Split, make_split
from ner.data.windows import EncodedSentence, collate, encode_sentence, special_tokens, word_pieces
from ner.encoders import load_tokenizer

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
            "%s: %d I- tags cannot continue an entity (lines %s); trained on as B- tags", path, len(fixed), shown
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


class ResumableLoader(DataLoader):
    """The training loader, declared resumable to Lightning (which otherwise warns on a mid-epoch resume).

    The position inside the epoch is saved and restored by `NerDataModule.state_dict` / `load_state_dict`,
    not here: Lightning hands a loader its saved state only if the loader is built after the checkpoint is
    loaded, and ours is built before, when `configure_optimizers` counts the training steps.
    """

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class NerDataModule(L.LightningDataModule):
    """IOB2 corpus folder -> train / dev / test dataloaders of windowed, dynamically padded batches.

    Args:
        dir: folder with `train.iob2` and `test.iob2` (and optionally `dev.iob2`).
        tokenizer: the encoder's name or folder (its fast tokenizer is used).
        types: declared entity types, or "auto" to take them from the training file.
        dev: how to choose the dev set (see `ner.data.splits`).
        dev_fraction: share of the training file held out by `dev=random`.
        max_length: subwords per encoder input, special tokens included; longer sentences are windowed.
        stride: subwords between consecutive window starts (default: half the window).
        batch_size / eval_batch_size: sentences per batch.
        bucket: length-bucketed training batches (less padding) instead of fully random ones.
        download: {split: {url, member}}: `<split>.iob2` is fetched by `prepare_data` when missing.
        seed: for the random dev split and batch order.
    """

    def __init__(
        self,
        dir: str,
        tokenizer: str,
        types: Sequence[str] | str = "auto",
        dev: str = "auto",
        dev_fraction: float = 0.1,
        max_length: int = 128,
        stride: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 64,
        bucket: bool = False,
        num_workers: int = 0,
        download: Mapping[str, Mapping[str, str]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dir, self.tokenizer_name = Path(dir), tokenizer
        self.declared_types = None if types == "auto" else sorted(types)
        self.dev, self.dev_fraction, self.seed = dev, dev_fraction, seed
        self.max_length, self.stride = max_length, stride
        self.batch_size, self.eval_batch_size, self.bucket = batch_size, eval_batch_size, bucket
        self.num_workers, self.download = num_workers, download
        self._train_corpus: Corpus | None = None
        self.split: Split | None = None
        self.test_corpus: Corpus | None = None
        self.datasets: dict[str, EncodedDataset] = {}
        self._train_sampler: TrainBatchSampler | None = None
        self._resume: dict[str, int] | None = None  # where a resumed run continues the training data

    def prepare_data(self) -> None:
        ensure_corpus(self.dir, self.download or {"train": None, "test": None})

    @property
    def train_corpus(self) -> Corpus:
        if self._train_corpus is None:
            self._train_corpus = read_iob2(self.dir / "train.iob2", self.declared_types)
        return self._train_corpus

    @property
    def labels(self) -> list[str]:
        """Label list: `O`, then sorted `B-`/`I-` labels of the declared (or inferred) types."""
        return build_labels(self.declared_types or self.train_corpus.types)

    @property
    def types(self) -> list[str]:
        return self.declared_types or self.train_corpus.types

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        read = partial(read_iob2, types=self.types)
        self.test_corpus = read(self.dir / "test.iob2")
        self.split = make_split(
            self.train_corpus, self.test_corpus, self.dev, self.dir, self.dev_fraction, self.seed, read
        )
        tokenizer = load_tokenizer(self.tokenizer_name)
        self.pad_id = tokenizer.pad_token_id
        label_ids = {label: i for i, label in enumerate(self.labels)}
        specials = special_tokens(tokenizer)
        for name, sentences in self.sentences.items():
            pieces = word_pieces(tokenizer, [s.tokens for s in sentences])
            tags = training_targets(sentences, self.train_corpus.path) if name == "train" else [s.tags for s in sentences]
            encoded = [
                encode_sentence(i, p, [label_ids[t] for t in t_], specials, self.max_length, self.stride)
                for i, (p, t_) in enumerate(zip(pieces, tags))
            ]
            self.datasets[name] = EncodedDataset(encoded)

    @property
    def sentences(self) -> dict[str, list[Sentence]]:
        """The raw sentences of each split, in the order of their encoded indices."""
        return {"train": self.split.train, "dev": self.split.dev, "test": self.test_corpus.sentences}

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _loader(self, dataset: EncodedDataset, sampler, loader: type = DataLoader, **kwargs) -> DataLoader:
        return loader(
            dataset,
            batch_sampler=sampler,
            collate_fn=partial(collate, pad_id=self.pad_id),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # Every new iterator draws a seed from this generator. Drawn from the global RNG instead, each
            # validation pass would shift the dropout masks, and a resumed run could not draw the same ones.
            generator=torch.Generator().manual_seed(self.seed),
            **kwargs,
        )

    def train_dataloader(self) -> ResumableLoader:
        dataset = self.datasets["train"]
        replicas, rank = self._world()
        lengths = [s.n_subwords for s in dataset.sentences]
        sampler = TrainBatchSampler(lengths, self.batch_size, self.bucket, self.seed, replicas, rank)
        if self._resume is not None:  # set before Lightning sets it: loader workers may start drawing at once
            sampler.set_epoch(self._resume["epoch"])
            sampler.resume(self._resume["epoch"], self._resume["batches_done"])
        self._train_sampler = sampler
        return self._loader(dataset, sampler, ResumableLoader)

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: the epoch the training data continues with, and how many of its batches
        were trained on (`processed` counts the batch whose end a mid-epoch checkpoint is written at)."""
        trainer = self.trainer
        if self._train_sampler is None or trainer is None:
            return {}
        epoch, done = self._train_sampler.epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done >= trainer.num_training_batches:  # written at the end of the epoch: the next one follows
            epoch, done = epoch + 1, 0
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume = dict(state_dict) or None

    def eval_dataloader(self, split: str) -> DataLoader:
        dataset = self.datasets[split]
        replicas, rank = self._world()
        lengths = [s.n_subwords for s in dataset.sentences]
        return self._loader(dataset, EvalBatchSampler(lengths, self.eval_batch_size, replicas, rank))

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("dev")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")
