"""Tagging throughput: whole PubMed-like documents per second, each inference option against the pipeline.

The documents are the JNLPBA test abstracts (one per `###MEDLINE:` marker, 404; the sample without markers:
five sentences each), rebuilt as raw text: the first sentence is the title, the others the abstract, words
joined by spaces. Every option tags all of them (`Predictor.document_entities`, what `python -m ner tag`
calls); `transformers.pipeline("token-classification")` gets the same weights
(`ner.inference.export.standard_model`) and each document's raw text. Options: torch fp32, torch bf16 (where
the hardware has bf16), ONNX Runtime fp32 and int8 (`ner.inference.onnx`). Each is also run on the test
sentences themselves (`Predictor.tag`): how many words get another tag than torch fp32, and test F1 (with a
trained checkpoint). `python -m ner tag --workers N` then runs on XML/JSONL shards of the same documents
(docs/s from its manifest), and cProfile splits one in-process tag run into phases.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import lightning as L
import torch

from benchmarks.common import ROOT, Workload, machine, timed
from benchmarks.inference import DEVICE, load
from ner.data.reader import read_iob2
from ner.inference.export import standard_model
from ner.inference.onnx import export_onnx, quantize_int8
from ner.inference.predictor import Predictor
from ner.metrics import score_sentences
from ner.tags import types_of

WARMUP_DOCUMENTS = 4
PUBMED_ABSTRACTS = 36_000_000
SENTENCES_PER_DOCUMENT = 5  # a corpus without abstract markers (the shipped sample)
# cProfile phases of one tag run: (phase, [(file suffix, function name), ...]), cumulative seconds summed
PHASES = [
    ("model loading", [("tagging/worker.py", "load_predictor")]),
    ("XML parsing (ner.tagging.pubmed)", [("tagging/pubmed.py", "read_pubmed")]),
    ("our tokenization (ner.inference.text)", [("inference/text.py", "split_sentences")]),
    ("HF tokenizer (word_pieces)", [("data/windows.py", "word_pieces")]),
    ("model forward", [("ner/model.py", "forward"), ("inference/onnx.py", "__call__")]),
    ("decoding (heads)", [("ner/model.py", "decode_batch")]),  # minus the forward it calls (torch)
    (
        "output writing (ner.tagging.outputs)",
        [("tagging/outputs.py", "render"), ("tagging/worker.py", "commit")],
    ),
]


def bf16_supported() -> bool:
    """bf16 autocast pays off on CUDA and on CPUs with AVX512-BF16 or AMX (elsewhere it is 15x slower)."""
    if DEVICE.type == "cuda":
        return torch.cuda.is_bf16_supported()
    flags = set(machine()["cpu_flags"])
    return torch.backends.mkldnn.is_available() and bool(flags & {"avx512_bf16", "amx_bf16"})


def make_documents(corpus: Path, limit: int | None) -> tuple[list[tuple[str, list[str]]], list]:
    """(id, [title, abstract]) of each test abstract, and the test sentences those documents hold."""
    sentences = read_iob2(corpus / "test.iob2").sentences
    groups: dict[object, list] = {}
    for i, sentence in enumerate(sentences):
        key = sentence.document if sentence.document is not None else i // SENTENCES_PER_DOCUMENT
        groups.setdefault(key, []).append(sentence)
    documents, kept = [], []
    for n, group in enumerate(list(groups.values())[:limit]):
        doc_id = re.sub(r"\D", "", group[0].doc_id or "") or str(n + 1)
        text = [" ".join(s.tokens) for s in group]
        documents.append((doc_id, [text[0], " ".join(text[1:])]))
        kept.extend(group)
    return documents, kept


def measure(predictor: Predictor, documents, sentences, reference: dict | None, trained: bool) -> dict:
    """Docs/s over all documents; word tags of the test sentences against torch fp32's, and test F1."""
    passages = [texts for _, texts in documents]
    predictor.document_entities(passages[:WARMUP_DOCUMENTS])
    found, seconds = timed(predictor.document_entities, passages)
    spans = [[(e.type, e.start, e.end) for passage in doc for e in passage] for doc in found]
    tags = [list(t.tags) for t in predictor.tag([list(s.tokens) for s in sentences])]
    result = {
        "documents": len(found),
        "seconds": round(seconds, 3),
        "documents_per_second": round(len(found) / seconds, 2),
        "entities": sum(map(len, spans)),
        "spans": spans,
        "tags": tags,
    }
    if reference is not None:
        pairs = zip(tags, reference["tags"], strict=True)
        result["words_differing_from_torch_fp32"] = sum(
            a != b for x, y in pairs for a, b in zip(x, y, strict=True)
        )
        differing = sum(a != b for a, b in zip(spans, reference["spans"], strict=True))
        result["documents_differing_from_torch_fp32"] = differing
    if trained:
        types = types_of(predictor.labels)
        result["test_f1"] = score_sentences([s.tags for s in sentences], tags, types)["micro"]["f1"]
    return result


def pipeline_rate(model, tokenizer, documents, batch_size: int | None) -> dict:
    """`pipeline("token-classification", aggregation_strategy="first")` on each document's raw text; a
    document longer than the encoder's positions is read in overlapping chunks (the pipeline's `stride`)."""
    from transformers import pipeline

    classifier = standard_model(model.cpu()).to(DEVICE).eval()
    positions = classifier.config.max_position_embeddings
    tokenizer.model_max_length = min(tokenizer.model_max_length, positions)  # the pipeline's chunk size
    pipe = pipeline(
        "token-classification",
        model=classifier,
        tokenizer=tokenizer,
        device=DEVICE,
        aggregation_strategy="first",
        stride=min(64, tokenizer.model_max_length // 4),
    )
    texts = [" ".join(texts) for _, texts in documents]
    options = {} if batch_size is None else {"batch_size": batch_size}
    pipe(texts[:WARMUP_DOCUMENTS], **options)
    outputs, seconds = timed(pipe, texts, **options)
    model.to(DEVICE)
    return {
        "batch_size": batch_size or 1,
        "documents": len(outputs),
        "seconds": round(seconds, 3),
        "documents_per_second": round(len(outputs) / seconds, 2),
    }


def save_checkpoint(model, path: Path) -> Path:
    """A checkpoint of an untrained model, for the tag command (what Lightning saves, minus the trainer)."""
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def write_shards(documents, folder: Path, shards: int) -> dict[str, Path]:
    """The documents as PubMed XML and as JSON lines, `shards` files each (folders `xml/`, `jsonl/`)."""
    parts = [documents[k::shards] for k in range(shards)]
    for fmt in ("xml", "jsonl"):
        (folder / fmt).mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(parts):
        articles = [
            f"<PubmedArticle><MedlineCitation><PMID>{doc_id}</PMID><Article><ArticleTitle>{escape(title)}"
            f"</ArticleTitle><Abstract><AbstractText>{escape(abstract)}</AbstractText></Abstract></Article>"
            "</MedlineCitation></PubmedArticle>"
            for doc_id, (title, abstract) in part
        ]
        xml = '<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n' + "\n".join(articles)
        (folder / "xml" / f"part{k}.xml").write_text(xml + "\n</PubmedArticleSet>\n", encoding="utf-8")
        lines = [json.dumps({"id": i, "title": t, "abstract": a}) for i, (t, a) in part]
        (folder / "jsonl" / f"part{k}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"xml": folder / "xml", "jsonl": folder / "jsonl"}


def tag_arguments(ckpt: Path, shards: Path, out: Path, workers: int, option: dict, batch_size: int) -> list:
    args = [str(shards), "--ckpt", str(ckpt), "--out", str(out), "--workers", str(workers)]
    args += ["--batch-size", str(batch_size), "--format", "jsonl", "--no-progress", "--device", str(DEVICE)]
    if option.get("backend") == "onnx":
        args += ["--backend", "onnx", "--onnx-model", str(option["onnx_model"])]
    return args + ["--precision", option.get("precision", "32")]


def tag_command_run(ckpt, shards, out, workers: int, option: dict, batch_size: int) -> dict:
    """`python -m ner tag --workers N` in a fresh process: docs/s over its wall time (model loading in) and
    over the shards' own seconds in its manifest (tagging only, workers in parallel)."""
    command = [
        sys.executable,
        "-m",
        "ner",
        "tag",
        *tag_arguments(ckpt, shards, out, workers, option, batch_size),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        return {"workers": workers, "error": (result.stderr or result.stdout).strip()[-500:]}
    manifest = json.loads((out / "manifest.json").read_text())
    documents = manifest["totals"]["documents"]
    busy = sum(shard.get("seconds", 0) for shard in manifest["shards"]) / workers
    return {
        "workers": workers,
        "documents": documents,
        "wall_seconds": round(wall, 2),
        "documents_per_second_wall": round(documents / wall, 2),
        "documents_per_second_tagging": round(documents / busy, 2) if busy else None,
    }


def profile_tag_run(ckpt, shards, out, option: dict, batch_size: int) -> dict:
    """cProfile of one in-process `python -m ner tag` run (1 worker): cumulative seconds per phase."""
    from ner.tagging import command

    profiler = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):  # its summary table: the benchmark prints its own
        profiler.enable()
        command.main(tag_arguments(ckpt, shards, out, 1, option, batch_size))
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (calls, prim, tottime, cumtime, callers)
    total = sum(tottime for _, _, tottime, _, _ in stats.values())

    def cumulative(targets) -> float:
        return sum(
            entry[3]
            for (file, _, function), entry in stats.items()
            for suffix, name in targets
            if file.endswith(suffix) and function == name
        )

    phases = {name: cumulative(targets) for name, targets in PHASES}
    if option.get("backend") != "onnx":  # the torch forward runs inside decode_batch
        phases["decoding (heads)"] -= phases["model forward"]
    phases["other (collate, windows, merging, bookkeeping)"] = total - sum(phases.values())
    rows = [
        {"phase": name, "seconds": round(seconds, 3), "share": f"{seconds / total:.1%}"}
        for name, seconds in phases.items()
    ]
    return {"total_seconds": round(total, 3), "rows": rows}


def pubmed_cost(rate: float, cpus: int) -> dict:
    """What 36M abstracts cost at `rate` docs/s measured on `cpus` cores (on a GPU: with that GPU),
    assuming linear scaling over cores."""
    hours = PUBMED_ABSTRACTS / rate / 3600
    return {
        "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "documents_per_second": rate,
        "measured_on_cpus": cpus,
        "hours_on_this_machine": round(hours, 1),
        "cpu_core_hours": round(hours * cpus),
        "hours_on_64_cpus": round(hours * cpus / 64, 1),
        "hours_on_1024_cpus": round(hours * cpus / 1024, 2),
    }


def benchmark(
    work: Workload, corpus: Path, ckpt: str | None, *, n_documents: int | None, batch_size: int, tag_runs: str
) -> dict:
    """Every option and the pipeline on the same documents; tag command runs; a profile; the PubMed cost."""
    trained = ckpt is not None
    documents, sentences = make_documents(corpus, n_documents)
    model, tokenizer = load(work, ckpt)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        onnx_fp32 = export_onnx(model.cpu(), scratch / "model.onnx", source=ckpt)
        export_seconds = time.perf_counter() - started
        onnx_int8 = quantize_int8(onnx_fp32, scratch / "model.int8.onnx")
        model.to(DEVICE)
        options = {"torch fp32": {"precision": "32"}}
        if bf16_supported():
            options["torch bf16"] = {"precision": "bf16"}
        options["onnx fp32"] = {"backend": "onnx", "onnx_model": onnx_fp32}
        options["onnx int8"] = {"backend": "onnx", "onnx_model": onnx_int8}
        baseline = {"unbatched": pipeline_rate(model, tokenizer, documents, None)}
        baseline["batched"] = pipeline_rate(model, tokenizer, documents, batch_size)
        base = max(run["documents_per_second"] for run in baseline.values())
        runs, reference = [], None
        for name, option in options.items():
            model.set_inference_precision(option.get("precision", "32"))
            predictor = Predictor(
                model,
                tokenizer,
                batch_size=batch_size,
                backend=option.get("backend", "torch"),
                onnx_model=option.get("onnx_model"),
            )
            result = measure(predictor, documents, sentences, reference, trained)
            if reference is None:  # torch fp32: the reference itself
                reference = result
                result["words_differing_from_torch_fp32"] = result["documents_differing_from_torch_fp32"] = 0
            runs.append(
                {"option": name, **result, "vs_pipeline": round(result["documents_per_second"] / base, 3)}
            )
        model.set_inference_precision("32")
        for run in runs:
            del run["spans"], run["tags"]
            if trained:
                run["f1_points_vs_torch_fp32"] = round(100 * (run["test_f1"] - runs[0]["test_f1"]), 3)
        # exact paths: float32 throughout (bf16 and int8 may agree on a corpus by luck, not by construction)
        exact = [
            r for r in runs if r["option"].endswith("fp32") and r["words_differing_from_torch_fp32"] == 0
        ]
        best_exact = max(exact, key=lambda r: r["documents_per_second"])
        within = [r for r in runs if trained and abs(r["f1_points_vs_torch_fp32"]) <= 0.2]
        fastest_within = max(within, key=lambda r: r["documents_per_second"]) if within else None
        tag_section = {"available": (ROOT / "ner" / "tagging" / "command.py").is_file(), "runs": []}
        if tag_section["available"]:
            ckpt_path = Path(ckpt) if ckpt else save_checkpoint(model.cpu(), scratch / "untrained.ckpt")
            model.to(DEVICE)
            option = options[best_exact["option"]]
            shards = write_shards(documents, scratch / "shards", 4)
            for k, spec in enumerate(filter(None, tag_runs.split(","))):
                fmt, workers = spec.split(":")
                out = scratch / f"tagged-{k}"
                run = tag_command_run(ckpt_path, shards[fmt], out, int(workers), option, batch_size)
                tag_section["runs"].append({"input": fmt, "option": best_exact["option"], **run})
            tag_section["profile"] = profile_tag_run(
                ckpt_path, shards["xml"], scratch / "profiled", option, batch_size
            )
            tag_section["profile"]["option"] = best_exact["option"]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cost = {r["option"]: pubmed_cost(r["documents_per_second"], cpus) for r in runs}
    return {
        "model": ckpt or "untrained emission layer over the encoder (pass --ckpt for F1 figures)",
        "trained": trained,
        "device": str(DEVICE),
        "documents": len(documents),
        "test_sentences": len(sentences),
        "batch_size": batch_size,
        "onnx_export_seconds": round(export_seconds, 1),
        "pipeline": baseline,
        "options": runs,
        "best_exact": best_exact["option"],
        "best_exact_vs_pipeline": best_exact["vs_pipeline"],
        "fastest_within_0.2_f1_points": fastest_within["option"] if fastest_within else None,
        "tag_command": tag_section,
        "pubmed": cost,
    }
