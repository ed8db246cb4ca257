"""Inference with a trained checkpoint: raw text in, entities with character offsets out.

Raw text is cut into sentences and GENIA-style tokens (`ner.inference.text`), so the model sees the kind
of words it was trained on; every sentence then goes through the training path unchanged: `word_pieces`,
`encode_sentence` (long sentences windowed as in training, never cut), `collate` and
`NerTagger.decode_batch` (windows merged back into sentences, then decoded by the head). Batches are
sorted by length to keep padding small. A model trained with document context (`data.context`) gets the
same context here: the other sentences of the same document (a raw text, a document's passages, or the
sentences of a pre-tokenized document), never another document's.

    predictor = Predictor.from_checkpoint("outputs/quickstart/checkpoints/last.ckpt")
    predictor.predict("IL-2 gene expression requires NF-kappa B in T cells.")
    # [Entity(type='DNA', start=0, end=9, text='IL-2 gene', score=...), ...]
    predictor.predict([["IL-2", "gene", "expression"]])  # pre-tokenized: word-level tags
    # [['B-DNA', 'I-DNA', 'O']]
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from ner.data.context import context_pieces
from ner.data.windows import collate, encode_sentence, special_tokens, word_pieces
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.inference.onnx import BACKENDS, onnx_session
from ner.inference.text import Token, split_sentences
from ner.model import NerTagger
from ner.tags import entity_chunks

# what torch.load and Lightning raise on a file that is not one of our checkpoints
LOAD_ERRORS = (RuntimeError, KeyError, EOFError, OSError, ValueError, TypeError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Entity:
    """An entity found in raw text: `text == input[start:end]`.

    `score` is the mean over the entity's words of the head's confidence in the label it chose there
    (softmax probability, or CRF posterior marginal): the same number the Hugging Face pipeline reports
    for an entity with `aggregation_strategy="first"`.
    """

    type: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class TaggedSentence:
    """Word-level output for one sentence: a tag and the head's confidence in it for every word."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    scores: tuple[float, ...]


@contextmanager
def one_cpu_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tokenizer_from_files(files: dict[str, bytes]) -> PreTrainedTokenizerBase:
    """Rebuild a tokenizer from the files a checkpoint carries (`NerTagger.on_save_checkpoint`)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / Path(name).name).write_bytes(data)
        return load_tokenizer(folder)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> NerTagger:
    """The model of a checkpoint, in eval mode on `device`; a NerError for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise NerError(f"{path}: checkpoint not found")
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError):
        raise NerError(f"unknown device {str(device)!r}; expected cpu, cuda, cuda:N, ...") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NerError(f"device {device} requested, but CUDA is not available here")
    try:
        model = NerTagger.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as error:
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise NerError(
            f"{path}: not a checkpoint of this project ({type(error).__name__}: {detail})"
        ) from None
    return model.to(device).eval()


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[NerTagger, PreTrainedTokenizerBase]:
    """The model (eval mode, on `device`) and its tokenizer from a checkpoint alone, offline.

    Older checkpoints without tokenizer files fall back to the encoder named in their hyperparameters.
    """
    model = load_model(path, device)
    files = model.tokenizer_files
    return model, tokenizer_from_files(files) if files else load_tokenizer(model.hparams.encoder)


class Predictor:
    """Tags pre-tokenized sentences and finds entities in raw text with a trained `NerTagger`.

    Args:
        model / tokenizer: from `load_checkpoint` (or `Predictor.from_checkpoint`).
        max_length: subwords per window, special tokens included (default: the model's training value,
            `data.max_length`, stored in the checkpoint). Longer sentences are windowed as in training.
        stride: subwords between window starts (default: the training value, `data.stride`).
        context: subwords of a document's neighbouring sentences given to each sentence on each side
            (default: the training value, `data.context`; 0 for older checkpoints). The documents are the
            texts of `entities`, the documents of `document_entities` and `tag_documents`, and `tag`'s
            `documents` groups; lone sentences get none.
        batch_size: sentences per forward pass.
        backend: "torch" (the default) or "onnx": the encoder and emission layer run as an ONNX graph in
            ONNX Runtime (`ner.inference.onnx`); windows, merging and the head's decoding stay the same code.
        onnx_model: the graph (`python -m ner export --onnx`), checked to come from `model`'s weights;
            None with backend "onnx": exported to a temporary folder first (a note on stderr).
    """

    def __init__(
        self,
        model: NerTagger,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int | None = None,
        stride: int | None = None,
        batch_size: int = 32,
        context: int | None = None,
        backend: str = "torch",
        onnx_model: str | Path | None = None,
    ) -> None:
        hparams = model.hparams  # checkpoints older than these keys were trained with the defaults
        max_length = hparams.get("max_length", 128) if max_length is None else max_length
        stride = hparams.get("stride") if stride is None else stride
        positions = getattr(model.encoder.config, "max_position_embeddings", None)
        if positions is not None and max_length > positions:
            raise NerError(f"max_length={max_length} exceeds the encoder's {positions} positions")
        self.specials = special_tokens(tokenizer)
        if max_length - sum(len(ids) for ids in self.specials) < 1:
            raise NerError(f"max_length={max_length} leaves no room for words after the special tokens")
        if batch_size < 1 or (stride is not None and stride < 1):
            raise NerError(f"batch_size and stride must be positive, got {batch_size} and {stride}")
        context = hparams.get("context", 0) if context is None else context
        if context < 0:
            raise NerError(f"context must be >= 0, got {context}")
        self.context = context
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels = list(model.labels)
        self.max_length, self.stride, self.batch_size = max_length, stride, batch_size
        if backend not in BACKENDS:
            raise NerError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")
        if onnx_model is not None and backend != "onnx":
            raise NerError("an ONNX model (--onnx-model) runs with backend 'onnx' (--backend onnx)")
        if backend == "onnx" and model.inference_precision != "32":
            raise NerError("precision applies to the torch backend; for ONNX int8 pass model.int8.onnx")
        self.backend = backend
        self.onnx = onnx_session(model, onnx_model, model.device) if backend == "onnx" else None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        precision: str = "32",
        backend: str = "torch",
        onnx_model: str | Path | None = None,
        **options,
    ) -> Predictor:
        """Load a checkpoint (`device`: default CUDA when available); `options` go to the constructor.

        `precision`: "32" (exact, the default), "bf16" or "int8" (CPU): faster, approximate inference, see
        `NerTagger.set_inference_precision` and the benchmark figures in the README. `backend="onnx"`
        (with `onnx_model=PATH`, or exported on the fly) runs the encoder in ONNX Runtime: see `__init__`.
        """
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, *rest = load_checkpoint(path, device)
        model.set_inference_precision(precision)
        return cls(model, *rest, backend=backend, onnx_model=onnx_model, **options)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def tag(
        self,
        sentences: Sequence[Sequence[str]],
        progress: bool = False,
        documents: Sequence[Hashable] | None = None,
    ) -> list[TaggedSentence]:
        """Word-level tags and confidences of pre-tokenized sentences, in input order.

        `documents[i]`: the document of sentence i; consecutive sentences of one document are each other's
        context (`context`). None: every sentence stands alone, as without context.
        """
        sentences = [tuple(s) for s in sentences]
        for i, sentence in enumerate(sentences):
            if not all(isinstance(word, str) and word.strip() for word in sentence):
                raise NerError(f"sentence {i}: every word must be a non-empty string, got {list(sentence)!r}")
        if documents is not None and len(documents) != len(sentences):
            raise NerError(f"{len(sentences)} sentences but {len(documents)} documents entries")
        results = [TaggedSentence(s, (), ()) for s in sentences]
        todo = [i for i, s in enumerate(sentences) if s]
        pieces = word_pieces(self.tokenizer, [sentences[i] for i in todo]) if todo else []
        groups = [None if documents is None else documents[i] for i in todo]
        context = context_pieces(pieces, groups, self.context)
        encoded = [
            encode_sentence(i, p, [0] * len(p), self.specials, self.max_length, self.stride, context=c)
            for i, p, c in zip(todo, pieces, context, strict=True)
        ]
        encoded.sort(key=lambda e: e.n_subwords)  # similar lengths together: little padding
        batches = [encoded[k : k + self.batch_size] for k in range(0, len(encoded), self.batch_size)]
        with Progress(console=Console(stderr=True), transient=True, disable=not progress) as bar:
            task = bar.add_task("tagging", total=sum(len(b) for b in batches))
            for batch in batches:
                tags, scores = self._run(batch)
                for item, item_tags, item_scores in zip(batch, tags, scores, strict=True):
                    labels = tuple(self.labels[t] for t in item_tags)
                    results[item.index] = TaggedSentence(sentences[item.index], labels, tuple(item_scores))
                bar.advance(task, len(batch))
        return results

    @torch.inference_mode()
    def _run(self, items) -> tuple[list[list[int]], list[list[float]]]:
        batch = collate([(item, True) for item in items], self.tokenizer.pad_token_id)
        if self.onnx is not None:  # the encoder in ONNX Runtime; windows merged and decoded as below
            windows = self.onnx(batch)
        else:
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            windows = self.model(batch["input_ids"], batch["attention_mask"], batch["word_index"])
        # Decoding runs many tiny ops on (sentences, words, labels) tensors, where intra-op threads only
        # cost: on a busy 2-core CPU a CRF logsumexp over (32, 11, 11) took 16 ms on 2 threads, 32 µs on 1.
        with one_cpu_thread() if self.device.type == "cpu" else nullcontext():
            return self.model.decode_batch(batch, window_emissions=windows)

    def entities(self, texts: Sequence[str], progress: bool = False) -> list[list[Entity]]:
        """Entities of each raw text, with character offsets into that text (each text is one document)."""
        return [passages[0] for passages in self.document_entities([[text] for text in texts], progress)]

    def document_entities(
        self, documents: Sequence[Sequence[str]], progress: bool = False
    ) -> list[list[list[Entity]]]:
        """Entities per document, per passage, with offsets into that passage.

        `documents[d]` holds the passage texts of document d (e.g. a PubMed title and abstract). The
        sentences of all passages of a document are each other's context when the model was trained with
        `data.context > 0`.
        """
        for d, passages in enumerate(documents):
            if isinstance(passages, str) or not all(isinstance(p, str) for p in passages):
                raise NerError(f"document {d}: expected a list of passage strings, got {passages!r}")
        # (document, passage, sentence) -> tokens with offsets into their passage
        split = [[split_sentences(text) for text in passages] for passages in documents]
        flat = [[t.text for t in s] for passages in split for sentences in passages for s in sentences]
        of = [d for d, passages in enumerate(split) for sentences in passages for _ in sentences]
        tagged = iter(self.tag(flat, progress=progress, documents=of))
        results = []
        for passages, texts in zip(split, documents, strict=True):
            found = []
            for sentences, text in zip(passages, texts, strict=True):
                found.append([e for sentence in sentences for e in _entities(text, sentence, next(tagged))])
            results.append(found)
        return results

    def tag_documents(
        self, documents: Sequence[Sequence[Sequence[str]]], progress: bool = False
    ) -> list[list[TaggedSentence]]:
        """`tag` for pre-tokenized documents: `documents[d]` holds the word lists of document d's sentences,
        in reading order, each other's context; the results have the same shape."""
        flat = [sentence for sentences in documents for sentence in sentences]
        of = [d for d, sentences in enumerate(documents) for _ in sentences]
        tagged = iter(self.tag(flat, progress, documents=of))
        return [[next(tagged) for _ in sentences] for sentences in documents]

    def predict(self, inputs: str | Sequence[str] | Sequence[Sequence[str]], progress: bool = False):
        """Raw text -> entities; pre-tokenized sentences -> word-level tags.

        - one string: `list[Entity]` for it;
        - a list of strings (documents): `list[list[Entity]]`;
        - a list of word lists (sentences): `list[list[str]]`, one tag per word.
        """
        if isinstance(inputs, str):
            return self.entities([inputs], progress)[0]
        inputs = list(inputs)
        if all(isinstance(item, str) for item in inputs):
            return self.entities(inputs, progress)
        if all(isinstance(item, (list, tuple)) for item in inputs):
            return [list(t.tags) for t in self.tag(inputs, progress)]
        raise NerError("predict() takes a string, a list of strings, or a list of word lists")


def _entities(text: str, tokens: Sequence[Token], tagged: TaggedSentence) -> list[Entity]:
    """Entities as the official scorer reads the tags: chunks begun by `B-` (an `I-` continues any chunk)."""
    found = []
    for chunk in entity_chunks(tagged.tags):
        if not chunk.begun_by_b:
            continue  # a stray `I-` after `O`: the official scorer counts no entity, neither do we
        start, end = tokens[chunk.start].start, tokens[chunk.end - 1].end
        scores = tagged.scores[chunk.start : chunk.end]
        found.append(Entity(chunk.type, start, end, text[start:end], sum(scores) / len(scores)))
    return found
