"""`python -m ner export`: the Hugging Face folder decodes as the predictor does.

The pipeline tokenizes raw text itself and calls every piece between punctuation and spaces a word
(`IL-2` is three words to it, one to the corpus). Raw-text comparisons therefore use sentences whose
GENIA words are each one such piece; the CRF pipeline also takes pre-split words
(`is_split_into_words=True`), which it groups by word, so those comparisons cover every sentence.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_predictor import best_checkpoint
from transformers import AutoModelForTokenClassification, pipeline

from ner.data.reader import read_iob2
from ner.heads import CRFHead, SoftmaxHead, viterbi
from ner.inference.export import export, main
from ner.inference.hf.configuration_ner_tagger import NerTaggerConfig
from ner.inference.hf.modeling_ner_tagger import NerTaggerForTokenClassification
from ner.inference.predictor import Predictor, load_checkpoint

pytestmark = pytest.mark.slow
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "ner" / "data" / "sample"
SAMPLE = read_iob2(SAMPLE_DIR / "test.iob2").sentences + read_iob2(SAMPLE_DIR / "train.iob2").sentences
LABELS = ["O", "B-DNA", "B-protein", "I-DNA", "I-protein"]


@pytest.fixture(scope="module")
def softmax_predictor(softmax_run) -> Predictor:
    return Predictor.from_checkpoint(best_checkpoint(softmax_run), device="cpu")


@pytest.fixture(scope="module")
def crf_predictor(crf_run) -> Predictor:
    return Predictor.from_checkpoint(best_checkpoint(crf_run), device="cpu")


def atomic_sentences(tokenizer) -> list[tuple[str, ...]]:
    """Sentences whose every word is one piece for the tokenizer's pre-tokenizer (so for the pipeline)."""
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    return [s.tokens for s in SAMPLE if all(len(pre.pre_tokenize_str(w)) == 1 for w in s.tokens)]


def word_level(output: list[dict], words: tuple[str, ...]) -> tuple[list[str], list[float]]:
    """Word tags and scores from a pipeline's `aggregation_strategy="none"` output on `" ".join(words)`."""
    starts, position = {}, 0
    for i, word in enumerate(words):
        starts[position] = i
        position += len(word) + 1
    tags, scores = ["O"] * len(words), [None] * len(words)
    for item in output:
        if item["start"] in starts:  # a word's first subword (other subwords are not decoded)
            tags[starts[item["start"]]], scores[starts[item["start"]]] = item["entity"], float(item["score"])
    return tags, scores


def same_scores(pipeline_scores, predictor_scores, tags) -> bool:
    return all(
        a is None and t == "O" or a == pytest.approx(b, abs=1e-4)
        for a, b, t in zip(pipeline_scores, predictor_scores, tags, strict=True)
    )


def entity_tuples(entities) -> list[tuple]:
    return [
        (e["start"], e["end"], e["entity_group"], pytest.approx(float(e["score"]), abs=1e-4))
        for e in entities
    ]


def valid_bio(tags) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


@pytest.fixture(scope="module")
def softmax_export(softmax_run, tmp_path_factory):
    return export(best_checkpoint(softmax_run), tmp_path_factory.mktemp("exports") / "softmax")


@pytest.fixture(scope="module")
def crf_export(crf_run, tmp_path_factory):
    return export(best_checkpoint(crf_run), tmp_path_factory.mktemp("exports") / "crf")


def test_softmax_export_is_a_standard_token_classifier(softmax_export, softmax_predictor):
    hf = AutoModelForTokenClassification.from_pretrained(softmax_export).eval()
    assert type(hf).__name__ == "BertForTokenClassification"
    assert [hf.config.id2label[i] for i in range(hf.config.num_labels)] == softmax_predictor.labels
    tokenizer, model = softmax_predictor.tokenizer, softmax_predictor.model
    for sentence in SAMPLE[:10]:
        encoding = tokenizer(list(sentence.tokens), is_split_into_words=True, return_tensors="pt")
        word_ids = encoding.word_ids()
        first = torch.tensor([[word_ids.index(w) for w in range(len(sentence))]])
        with torch.no_grad():
            logits = hf(**encoding).logits[0, first[0]]
            emissions = model(encoding["input_ids"], encoding["attention_mask"], first)[0]
        torch.testing.assert_close(logits, emissions, atol=1e-4, rtol=1e-4)


def test_softmax_pipeline_matches_the_predictor(softmax_export, softmax_predictor):
    ner = pipeline("ner", model=str(softmax_export), tokenizer=str(softmax_export), device="cpu")
    sentences = atomic_sentences(softmax_predictor.tokenizer)
    compared = 0
    for words in sentences:
        text = " ".join(words)
        tagged = softmax_predictor.tag([words])[0]
        tags, scores = word_level(ner(text), words)
        assert tags == list(tagged.tags)
        assert same_scores(scores, tagged.scores, tags)
        if valid_bio(tagged.tags):  # then the pipeline's grouping and the official chunks coincide
            expected = [(e.start, e.end, e.type, e.score) for e in softmax_predictor.predict(text)]
            assert entity_tuples(ner(text, aggregation_strategy="first")) == expected
            compared += len(expected)
    assert len(sentences) >= 20 and compared >= 10  # not vacuous


def test_crf_export_needs_remote_code(crf_export):
    assert (crf_export / "modeling_ner_tagger.py").is_file()
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForTokenClassification.from_pretrained(crf_export, trust_remote_code=False)
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("ner", model=str(crf_export), tokenizer=str(crf_export), trust_remote_code=False)


def test_crf_pipeline_decodes_with_the_transitions(crf_export, crf_predictor):
    ner = pipeline(
        "ner", model=str(crf_export), tokenizer=str(crf_export), trust_remote_code=True, device="cpu"
    )
    assert type(ner.model).__name__ == "NerTaggerForTokenClassification"
    # pre-split GENIA words: every sentence, word for word
    sentences = [list(s.tokens) for s in SAMPLE[:40]]
    outputs = ner(sentences, is_split_into_words=True)
    for words, output, tagged in zip(sentences, outputs, crf_predictor.tag(sentences), strict=True):
        tags, scores = word_level(output, tuple(words))
        assert tags == list(tagged.tags)
        assert same_scores(scores, tagged.scores, tags)
    assert any(tag != "O" for t in crf_predictor.tag(sentences) for tag in t.tags)
    # raw text, as in the model card
    for words in atomic_sentences(crf_predictor.tokenizer):
        text = " ".join(words)
        expected = [(e.start, e.end, e.type, e.score) for e in crf_predictor.predict(text)]
        assert entity_tuples(ner(text, aggregation_strategy="first")) == expected


def test_constrained_softmax_exports_its_decoder(softmax_run, tmp_path):
    checkpoint = torch.load(best_checkpoint(softmax_run), map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["head_options"] = {"decode": "viterbi"}
    path = tmp_path / "viterbi.ckpt"
    torch.save(checkpoint, path)
    predictor = Predictor.from_checkpoint(path, device="cpu")
    assert predictor.model.head.export_decoder().kind == "softmax_viterbi"
    out = export(path, tmp_path / "viterbi-export")
    ner = pipeline("ner", model=str(out), tokenizer=str(out), trust_remote_code=True, device="cpu")
    sentences = [list(s.tokens) for s in SAMPLE[:12]]
    outputs = ner(sentences, is_split_into_words=True)
    for words, output, tagged in zip(sentences, outputs, predictor.tag(sentences), strict=True):
        assert word_level(output, tuple(words))[0] == list(tagged.tags)


@pytest.mark.parametrize("decoder", ["crf", "softmax_viterbi"])
def test_exported_decoding_equals_the_heads(decoder):
    """The shipped model decodes with what `Head.export_decoder` gives it exactly as the head does."""
    torch.manual_seed(0)
    encoder = {
        "model_type": "bert",
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "vocab_size": 30,
    }
    if decoder == "crf":
        head = CRFHead(LABELS)
        with torch.no_grad():
            for p in head.parameters():
                p.uniform_(-2, 2)
    else:
        head = SoftmaxHead(LABELS, decode="viterbi")
    exported = head.export_decoder()
    assert exported.kind == decoder
    config = NerTaggerConfig(encoder=encoder, decoder=exported.kind, id2label=dict(enumerate(LABELS)))
    hf = NerTaggerForTokenClassification(config)
    with torch.no_grad():
        for target, value in zip(
            (hf.start_transitions, hf.end_transitions, hf.transitions),
            (exported.start, exported.end, exported.transitions),
            strict=True,
        ):
            target.copy_(value)
    emissions = torch.randn(6, 9, len(LABELS)) * 3
    mask = torch.arange(9).expand(6, 9) < torch.tensor([[9], [1], [4], [7], [2], [9]])
    paths, confidences = hf.decode(emissions, mask)
    assert paths == head.decode(emissions, mask)
    expected = head.scores(emissions, mask, paths)
    assert all(
        a == pytest.approx(b, abs=1e-5)
        for x, y in zip(confidences, expected, strict=True)
        for a, b in zip(x, y, strict=True)
    )


def test_export_ships_the_heads_own_decoding_code(crf_export):
    """The folder's decoder is the heads' viterbi.py itself, and the folder works without the ner package."""
    assert (crf_export / "viterbi.py").read_bytes() == Path(viterbi.__file__).read_bytes()
    assert "from .viterbi import" in (crf_export / "modeling_ner_tagger.py").read_text()
    script = (
        "import sys; sys.modules['ner'] = None  # any import of the ner package now fails\n"
        "import torch; from transformers import AutoModelForTokenClassification as Auto\n"
        f"model = Auto.from_pretrained({str(crf_export)!r}, trust_remote_code=True)\n"
        "paths, scores = model.decode(torch.randn(1, 5, model.config.num_labels))\n"
        "assert type(model).__module__.endswith('modeling_ner_tagger') and len(paths[0]) == 5\n"
        "assert any(m.startswith('transformers_modules') and m.endswith('.viterbi') for m in sys.modules)\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(crf_export.parent / "modules")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]


def test_each_head_exports_its_decoder(softmax_run, crf_run):
    assert load_checkpoint(best_checkpoint(softmax_run))[0].head.export_decoder() is None
    assert load_checkpoint(best_checkpoint(crf_run))[0].head.export_decoder().kind == "crf"


def test_cli_refuses_a_non_empty_folder_and_a_missing_checkpoint(tmp_path, capsys, softmax_run):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    for argv, message in (
        (
            ["--ckpt", str(best_checkpoint(softmax_run)), "--out", str(tmp_path / "busy")],
            "not an empty folder",
        ),
        (["--ckpt", str(tmp_path / "absent.ckpt"), "--out", str(tmp_path / "new")], "checkpoint not found"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_model_card_in_the_folder(crf_export, softmax_export):
    assert "trust_remote_code=True" in (crf_export / "README.md").read_text()
    assert "trust_remote_code" not in (softmax_export / "README.md").read_text()
    assert "F1" in (softmax_export / "README.md").read_text()
