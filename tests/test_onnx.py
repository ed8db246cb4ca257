"""The ONNX Runtime backend (`ner.inference.onnx`): `export --onnx`, `Predictor(backend="onnx")` and
`predict --backend onnx` give the torch backend's tags, for both heads, long sentences included.

The reference is the torch model itself: its window emissions and the tags `Predictor` decodes from them.
The quickstart runs are conftest's session fixtures; each head's graph is exported once per module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ner.data.reader import read_iob2
from ner.data.windows import collate, encode_sentence, word_pieces
from ner.errors import NerError
from ner.inference import export, predict
from ner.inference.onnx import FILE, INT8_FILE, OPSET, OnnxEmissions, fingerprint, read_metadata
from ner.inference.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = read_iob2(ROOT / "ner" / "data" / "sample" / "test.iob2").sentences


def best_checkpoint(run: Path) -> Path:
    return run / "checkpoints" / json.loads((run / "metrics.json").read_text())["best_checkpoint"]


def sentences_with_a_long_one(predictor: Predictor) -> list[list[str]]:
    """A dozen sample sentences and one of more than two windows (the longest sample sentences joined)."""
    words = [list(s.tokens) for s in SAMPLE[:12]]
    long: list[str] = []
    for sentence in sorted(SAMPLE, key=len, reverse=True):
        long += sentence.tokens
        if sum(map(len, word_pieces(predictor.tokenizer, [long])[0])) > 2 * predictor.max_length:
            break
    return [*words, long]


def window_batch(predictor: Predictor, sentences: list[list[str]]) -> dict:
    """One collated batch of every window of `sentences`, as `Predictor` builds it."""
    encoded = [
        encode_sentence(i, p, [0] * len(p), predictor.specials, predictor.max_length, predictor.stride)
        for i, p in enumerate(word_pieces(predictor.tokenizer, sentences))
    ]
    assert len(encoded[-1].windows) > 2  # the long sentence really is windowed
    return collate([(e, True) for e in encoded], predictor.tokenizer.pad_token_id)


@pytest.fixture(scope="module")
def exported(softmax_run, crf_run, tmp_path_factory) -> dict[str, Path]:
    """`python -m ner export --onnx` of both runs' checkpoints (with `--int8` for the softmax one)."""
    folders = {}
    for head, run, extra in (("softmax", softmax_run, ["--int8"]), ("crf", crf_run, [])):
        out = tmp_path_factory.mktemp(f"onnx-{head}")
        assert export.main(["--ckpt", str(best_checkpoint(run)), "--out", str(out), "--onnx", *extra]) == 0
        folders[head] = out
    return folders


@pytest.fixture(scope="module")
def torch_predictors(softmax_run, crf_run) -> dict[str, Predictor]:
    runs = {"softmax": softmax_run, "crf": crf_run}
    return {head: Predictor.from_checkpoint(best_checkpoint(run), device="cpu") for head, run in runs.items()}


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_onnx_gives_the_torch_emissions_and_tags(head, exported, torch_predictors):
    reference = torch_predictors[head]
    onnx = Predictor(reference.model, reference.tokenizer, backend="onnx", onnx_model=exported[head] / FILE)
    sentences = sentences_with_a_long_one(reference)
    batch = window_batch(reference, sentences)
    with torch.inference_mode():
        expected = reference.model._emissions(batch)  # (windows, words, labels)
    got = onnx.onnx(batch)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    torch_tags, onnx_tags = reference.tag(sentences), onnx.tag(sentences)
    assert [t.tags for t in onnx_tags] == [t.tags for t in torch_tags]
    assert len(onnx_tags[-1].tags) == len(sentences[-1])
    assert any(tag != "O" for t in torch_tags for tag in t.tags)  # a model that tags something
    for a, b in zip(torch_tags, onnx_tags, strict=True):  # CRF marginals: sums over a long sentence
        assert b.scores == pytest.approx(a.scores, abs=1e-3)


def test_export_records_the_checkpoint_and_int8_is_smaller_and_close(exported, torch_predictors, softmax_run):
    reference = torch_predictors["softmax"]
    folder = exported["softmax"]
    assert (folder / "config.json").is_file()  # the Hugging Face folder is still written beside the graph
    metadata, int8 = read_metadata(folder / FILE), read_metadata(folder / INT8_FILE)
    assert metadata["fingerprint"] == int8["fingerprint"] == fingerprint(reference.model)
    assert json.loads(metadata["labels"]) == reference.labels
    assert metadata["checkpoint"] == str(best_checkpoint(softmax_run).resolve())
    assert metadata["quantization"] == "none" and int8["quantization"].startswith("int8")
    assert (folder / INT8_FILE).stat().st_size < 0.5 * (folder / FILE).stat().st_size  # int8 weights
    quantized = Predictor(reference.model, reference.tokenizer, backend="onnx", onnx_model=folder / INT8_FILE)
    assert quantized.onnx.quantized
    sentences = sentences_with_a_long_one(reference)
    batch = window_batch(reference, sentences)
    with torch.inference_mode():
        expected = reference.model._emissions(batch)
    error = (quantized.onnx(batch) - expected).norm() / expected.norm()
    assert 0 < error < 0.2  # approximate, not exact: why it is an option with a measured F1 cost
    tags = quantized.tag(sentences)
    assert [len(t.tags) for t in tags] == [len(s) for s in sentences]


def test_the_graph_is_the_torchscript_export_and_the_session_does_not_spin(exported, torch_predictors):
    """The export path `export_onnx` documents (TorchScript exporter, opset OPSET, dynamic axes) and the
    session options it promises: pool threads that sleep between runs, so torch's decoding gets the cores."""
    import onnx

    proto = onnx.load_model(exported["crf"] / FILE)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {
        "input_ids": ["windows", "subwords"],
        "attention_mask": ["windows", "subwords"],
        "word_index": ["windows", "words"],
    }
    session = OnnxEmissions(exported["crf"] / FILE, torch_predictors["crf"].model).session
    options = session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == torch.get_num_threads()


def test_a_graph_from_other_weights_or_no_graph_is_refused(exported, torch_predictors, tmp_path):
    crf = torch_predictors["crf"]
    with pytest.raises(NerError, match="exported from other weights"):
        OnnxEmissions(exported["softmax"] / FILE, crf.model)
    with pytest.raises(NerError, match="not an ONNX model"):
        OnnxEmissions(ROOT / "README.md", crf.model)
    with pytest.raises(NerError, match="ONNX model not found"):
        OnnxEmissions(tmp_path / "absent.onnx", crf.model)
    foreign = tmp_path / "foreign.onnx"  # a valid ONNX model, not ours
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value], [value])
    graph.output[0].name = "y"
    onnx.save_model(helper.make_model(graph), foreign)
    with pytest.raises(NerError, match="not one exported by"):
        OnnxEmissions(foreign, crf.model)
    for options, message in (
        ({"backend": "tensorrt"}, "unknown backend"),
        ({"onnx_model": exported["crf"] / FILE}, "backend 'onnx'"),
    ):
        with pytest.raises(NerError, match=message):
            Predictor(crf.model, crf.tokenizer, **options)


def test_cli_predict_backend_onnx(exported, softmax_run, tmp_path, capsys):
    """`predict --backend onnx`: with `--onnx-model`, and exported on the fly (a note on stderr) without."""
    ckpt = str(best_checkpoint(softmax_run))
    source = tmp_path / "abstracts.txt"
    text = [" ".join(s.tokens) for s in SAMPLE[:6]]
    source.write_text("\n".join(text) + "\n", encoding="utf-8")
    outputs = {}
    for name, options in (
        ("torch", []),
        ("onnx", ["--backend", "onnx", "--onnx-model", str(exported["softmax"] / FILE)]),
        ("fly", ["--backend", "onnx"]),
    ):
        out = tmp_path / f"{name}.jsonl"
        assert predict.main(["--ckpt", ckpt, str(source), "-o", str(out), "--device", "cpu", *options]) == 0
        records = [json.loads(line) for line in out.read_text().splitlines()]
        outputs[name] = [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records]
        assert ("exporting the checkpoint's graph" in capsys.readouterr().err) == (name == "fly")
    assert outputs["onnx"] == outputs["fly"] == outputs["torch"]
    assert any(outputs["torch"])
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--ckpt", ckpt, str(source), "--backend", "onnx", "--precision", "bf16"])
    assert exit_info.value.code == 2 and "torch backend" in capsys.readouterr().err


def test_tagging_benchmark_documents_and_shards(tmp_path):
    """`benchmarks/tagging.py`: the sample (no abstract markers) makes documents of five sentences, and the
    XML and JSONL shards it writes for `python -m ner tag` read back as exactly those documents."""
    from benchmarks.tagging import make_documents, write_shards
    from ner.tagging.inputs import Document, read_shard

    documents, sentences = make_documents(ROOT / "ner" / "data" / "sample", limit=4)
    assert len(documents) == 4 and len(sentences) == 20
    assert documents[1][1][0] == " ".join(SAMPLE[5].tokens)  # the title: a document's first sentence
    folders = write_shards(documents, tmp_path, shards=3)
    for fmt, folder in folders.items():
        read = [r for path in sorted(folder.iterdir()) for r in read_shard(path)]
        assert all(isinstance(r, Document) for r in read), fmt
        got = sorted((r.id, tuple(p.text for p in r.passages)) for r in read)
        assert got == sorted((i, tuple(texts)) for i, texts in documents), fmt
