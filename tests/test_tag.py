"""`python -m ner tag` on small shards the tests write: outputs against the manifest and against the
predictor itself, resume after a crash or a kill, failed shards, workers and SLURM-style partitions.

Most runs call `command.main` in this process with one predictor loaded per module (patched in for
`load_predictor`); the kill tests and `--workers 2` start real processes that load the checkpoint."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ner.tagging import command
from ner.tagging.manifest import read_status, status_path
from ner.tagging.shards import Shard, name_shards, select, slurm_partition

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "IL-2 gene expression requires NF-kappa B in T cells.",
    "The glucocorticoid receptor binds DNA in human monocytes.",
    "STAT3 is activated by IL-6 in B cells.",
    "CD4 T cells express the IL-2 receptor alpha chain.",
]


def pubmed_xml(pmids: list[str], extra: str = "") -> str:
    """A PubmedArticleSet: article k has title SENTENCES[k % 4] and abstract SENTENCES[(k + 1) % 4]."""
    articles = [
        f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>{SENTENCES[k % 4]}"
        f"</ArticleTitle><Abstract><AbstractText>{SENTENCES[(k + 1) % 4]}</AbstractText></Abstract>"
        "</Article></MedlineCitation></PubmedArticle>"
        for k, pmid in enumerate(pmids)
    ]
    return (
        '<?xml version="1.0"?>\n<PubmedArticleSet>\n'
        + "\n".join(articles)
        + extra
        + "\n</PubmedArticleSet>\n"
    )


def xml_texts(pmids: list[str]) -> dict[str, list[str]]:
    return {pmid: [SENTENCES[k % 4], SENTENCES[(k + 1) % 4]] for k, pmid in enumerate(pmids)}


def write_shards(folder: Path, n: int, docs: int) -> dict[str, list[str]]:
    """n XML shards of `docs` articles each, `folder/s<i>.xml`; the passage texts of every document."""
    texts = {}
    for i in range(n):
        pmids = [f"{i + 1}{j:03d}" for j in range(docs)]
        (folder / f"s{i}.xml").write_text(pubmed_xml(pmids), encoding="utf-8")
        texts |= xml_texts(pmids)
    return texts


@pytest.fixture(scope="module")
def ckpt(softmax_run) -> str:
    return str(softmax_run / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def predictor(ckpt):
    from ner.inference.predictor import Predictor

    return Predictor.from_checkpoint(ckpt, device="cpu")


@pytest.fixture
def tag(monkeypatch, predictor, ckpt):
    """tag(out, *args, inputs...) -> exit status of `python -m ner tag` run here; `tag.shards` lists the
    shards each run tagged (in order)."""
    monkeypatch.setattr(command, "load_predictor", lambda options, device: predictor)
    tagged: list[list[str]] = []
    real = command.tag_shard

    def spy(shard, *args, **kwargs):
        tagged[-1].append(shard.name)
        return real(shard, *args, **kwargs)

    monkeypatch.setattr(command, "tag_shard", spy)
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(name, raising=False)

    def run(out: Path, *args: str) -> int:
        tagged.append([])
        return command.main(["--ckpt", ckpt, "--out", str(out), "--no-progress", *args])

    run.shards = tagged
    return run


def jsonl_documents(out: Path) -> list[dict]:
    return [
        json.loads(line) for path in sorted(out.rglob("*.jsonl")) for line in path.read_text().splitlines()
    ]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def entity_tuples(passages) -> list[list[tuple]]:
    return [[(e["type"], e["start"], e["end"], e["text"]) for e in p["entities"]] for p in passages]


def test_every_format_holds_what_the_predictor_finds_and_the_manifest_counts(tmp_path, tag, predictor):
    import bioc
    from bioc import biocxml

    (tmp_path / "in" / "a").mkdir(parents=True)
    (tmp_path / "in" / "b").mkdir()
    no_pmid = "<PubmedArticle><MedlineCitation><Article><ArticleTitle>x</ArticleTitle></Article>"
    no_pmid += "</MedlineCitation></PubmedArticle>\n<DeleteCitation><PMID>77</PMID></DeleteCitation>"
    (tmp_path / "in" / "a" / "p.xml").write_text(pubmed_xml(["11", "12"], no_pmid))
    (tmp_path / "in" / "b" / "p.xml").write_text(pubmed_xml(["21"]))  # same file name: its own output
    lines = [
        json.dumps({"id": "j1", "text": SENTENCES[2]}),
        "{not json",
        json.dumps({"id": "j2", "text": ""}),
    ]
    (tmp_path / "in" / "b" / "j.jsonl").write_text("\n".join(lines) + "\n")
    texts = xml_texts(["11", "12"]) | xml_texts(["21"]) | {"j1": [SENTENCES[2]]}
    out = tmp_path / "out"

    assert tag(out, "--format", "bioc,jsonl,pubtator", str(tmp_path / "in")) == 0
    documents = {d["id"]: d for d in jsonl_documents(out)}
    assert sorted(documents) == sorted(texts)
    found = predictor.document_entities([texts[i] for i in sorted(texts)])
    for doc_id, expected in zip(sorted(texts), found, strict=True):
        passages = documents[doc_id]["passages"]
        assert [p["text"] for p in passages] == texts[doc_id]
        assert entity_tuples(passages) == [[(e.type, e.start, e.end, e.text) for e in p] for p in expected]
    assert sum(len(p["entities"]) for d in documents.values() for p in d["passages"]) > 5  # not vacuous

    shards = {s["name"]: s for s in manifest(out)["shards"]}
    assert sorted(shards) == ["a/p", "b/j", "b/p"] and manifest(out)["complete"]
    for name, shard in shards.items():
        jsonl = [json.loads(line) for line in (out / f"{name}.jsonl").read_text().splitlines()]
        pubtator = [b for b in (out / f"{name}.pubtator").read_text().split("\n\n") if b.strip()]
        collection = biocxml.load(open(out / f"{name}.bioc.xml"))
        assert shard["status"] == "done" and shard["documents"] == len(jsonl) == len(pubtator)
        assert len(collection.documents) == shard["documents"]
        mentions = sum(len(block.splitlines()) - 2 for block in pubtator)
        annotations = sum(len(p.annotations) for d in collection.documents for p in d.passages)
        assert (
            shard["entities"]
            == mentions
            == annotations
            == sum(len(t) for d in jsonl for t in entity_tuples(d["passages"]))
        )
        assert [d.id for d in collection.documents] == [d["id"] for d in jsonl]
        assert isinstance(collection, bioc.BioCCollection)
    assert shards["a/p"]["deleted"] == ["77"] and shards["b/p"]["deleted"] == []
    (missing_pmid,) = shards["a/p"]["bad_records"]
    assert "p.xml: article 3" in missing_pmid["where"] and missing_pmid["id"] is None
    bad = {r["where"].rsplit("/", 1)[1]: r for r in shards["b/j"]["bad_records"]}
    assert sorted(bad) == ["j.jsonl:2", "j.jsonl:3"] and bad["j.jsonl:3"]["id"] == "j2"
    totals = manifest(out)["totals"]
    assert totals["documents"] == 4 and totals["bad_records"] == 3 and totals["deleted"] == 1


def test_a_rerun_skips_finished_shards_and_redoes_missing_truncated_or_crashed_ones(tmp_path, tag):
    (tmp_path / "in").mkdir()
    write_shards(tmp_path / "in", 4, 2)
    out = tmp_path / "out"
    assert tag(out, "--format", "jsonl,pubtator", str(tmp_path / "in")) == 0
    first = {p: p.read_bytes() for p in out.rglob("*") if p.suffix in (".jsonl", ".pubtator")}
    assert tag(out, "--format", "pubtator,jsonl", str(tmp_path / "in")) == 0  # same formats, other order
    assert tag.shards == [["s0", "s1", "s2", "s3"], []]

    (out / "s0.pubtator").unlink()  # an output deleted
    (out / "s1.jsonl").write_bytes(first[out / "s1.jsonl"][:-10])  # an output cut short
    leftover = out / ".s2.jsonl.abc123.tmp"  # a run killed while tagging s2: status running, a temp file
    leftover.write_text("{half a line")
    crashed = read_status(out, "s2") | {"status": "running"}
    status_path(out, "s2").write_text(json.dumps(crashed))
    assert tag(out, "--format", "jsonl,pubtator", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s0", "s1", "s2"]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.suffix in (".jsonl", ".pubtator")} == first
    assert not leftover.exists() and manifest(out)["complete"]


def test_another_model_or_other_formats_invalidate_finished_shards(tmp_path, tag, ckpt):
    (tmp_path / "in").mkdir()
    write_shards(tmp_path / "in", 2, 1)
    out = tmp_path / "out"
    assert tag(out, "--format", "jsonl,pubtator", str(tmp_path / "in")) == 0
    assert tag(out, "--format", "jsonl", str(tmp_path / "in")) == 0  # formats changed: tagged again
    assert tag.shards[-1] == ["s0", "s1"]
    assert not list(out.rglob("*.pubtator"))  # no stale output of a format no longer asked for
    other = tmp_path / "other.ckpt"
    other.symlink_to(ckpt)  # another checkpoint path: another model, as far as the run can tell
    assert tag(out, "--ckpt", str(other), str(tmp_path / "in")) == 0  # the last --ckpt wins
    assert tag.shards[-1] == ["s0", "s1"]
    assert tag(out, "--format", "jsonl", "--max-length", "64", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s0", "s1"]
    assert tag(out, "--format", "jsonl", "--max-length", "64", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == []
    (tmp_path / "in" / "s1.xml").write_text(pubmed_xml(["9000"]))  # an input rewritten
    assert tag(out, "--format", "jsonl", "--max-length", "64", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s1"]
    assert [d["id"] for d in jsonl_documents(out)] == ["1000", "9000"]


def test_an_unreadable_shard_fails_with_its_reason_and_the_others_finish(tmp_path, tag, capsys):
    (tmp_path / "in").mkdir()
    write_shards(tmp_path / "in", 2, 1)
    data = gzip.compress(pubmed_xml([str(n) for n in range(500, 540)]).encode())
    (tmp_path / "in" / "broken.xml.gz").write_bytes(data[: len(data) // 2])  # a truncated download
    out = tmp_path / "out"
    assert tag(out, "--format", "jsonl,bioc", str(tmp_path / "in")) == 1
    shards = {s["name"]: s for s in manifest(out)["shards"]}
    assert shards["s0"]["status"] == shards["s1"]["status"] == "done"
    broken = shards["broken"]
    assert broken["status"] == "failed" and "broken.xml.gz" in broken["reason"] and broken["outputs"] == {}
    assert not list(out.glob("broken*")) and not list(out.glob(".broken*"))  # partial output discarded
    assert "failed: broken" in capsys.readouterr().out
    assert tag(out, "--format", "jsonl,bioc", str(tmp_path / "in")) == 1  # failed shards are retried
    assert tag.shards[-1] == ["broken"]


def test_shard_partitions_together_tag_everything_once(tmp_path, tag):
    (tmp_path / "in").mkdir()
    texts = write_shards(tmp_path / "in", 5, 1)
    out = tmp_path / "out"
    assert tag(out, "--shard-index", "1", "--shard-count", "2", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s1", "s3"] and not manifest(out)["complete"]
    assert [s["status"] for s in manifest(out)["shards"]] == ["pending", "done", "pending", "done", "pending"]
    assert tag(out, "--shard-index", "0", "--shard-count", "2", str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s0", "s2", "s4"] and manifest(out)["complete"]
    assert sorted(d["id"] for d in jsonl_documents(out)) == sorted(texts)


def test_two_workers_write_the_same_files_as_one(tmp_path, tag, ckpt):
    (tmp_path / "in").mkdir()
    write_shards(tmp_path / "in", 3, 2)
    one, two = tmp_path / "one", tmp_path / "two"
    assert tag(one, "--format", "jsonl,pubtator,bioc", str(tmp_path / "in")) == 0
    argv = ["--ckpt", ckpt, "--out", str(two), "--format", "jsonl,pubtator,bioc", "--workers", "2"]
    assert command.main([*argv, "--device", "cpu", "--no-progress", str(tmp_path / "in")]) == 0
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and p.parent == one)
    files = [f for f in files if f.name not in ("manifest.json", ".lock")]
    assert len(files) == 9
    for name in files:
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    assert manifest(two)["totals"] == manifest(one)["totals"]


def start(ckpt: str, out: Path, inputs: Path, delay: float) -> subprocess.Popen:
    env = dict(os.environ, NER_TAG_TEST_DELAY=str(delay), OMP_NUM_THREADS="1")
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "ner", "tag", "--ckpt", ckpt, "--out", str(out), str(inputs)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(process: subprocess.Popen, out: Path, done: int) -> None:
    """Until `done` shards are done and the next one is running (status files say so), so that a signal
    lands while a shard is in flight; fails if the process ends first."""
    deadline = time.monotonic() + 300
    while True:
        states = [p.read_text() for p in (out / "shards").glob("*.status.json")]
        if sum('"status": "done"' in s for s in states) >= done and any(
            '"status": "running"' in s for s in states
        ):
            return
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "no shard finished"
        time.sleep(0.05)


def test_a_run_stopped_or_killed_mid_shard_resumes_with_every_document_once(tmp_path, tag, ckpt):
    (tmp_path / "in").mkdir()
    texts = write_shards(tmp_path / "in", 4, 4)
    out = tmp_path / "out"
    # SIGTERM (SLURM's time limit): the shard in flight is abandoned, marked interrupted, exit 128 + 15
    process = start(ckpt, out, tmp_path / "in", delay=0.3)
    wait_for(process, out, done=1)
    process.send_signal(signal.SIGTERM)
    log = process.communicate(timeout=60)[0]
    assert process.returncode == 128 + signal.SIGTERM, log[-3000:]
    states = {s["name"]: s["status"] for s in manifest(out)["shards"]}
    assert states == {"s0": "done", "s1": "interrupted", "s2": "pending", "s3": "pending"}
    assert not list(out.glob(".*.tmp")) and "run the command again" in log
    # SIGKILL: nothing can be cleaned up; the shard in flight stays `running`, its output never in place
    process = start(ckpt, out, tmp_path / "in", delay=0.3)
    wait_for(process, out, done=2)
    process.kill()
    process.communicate(timeout=60)
    states = {s["name"]: s["status"] for s in manifest(out)["shards"]}
    (running,) = [
        name for name in ("s1", "s2", "s3") if (read_status(out, name) or {}).get("status") == "running"
    ]
    assert not (out / f"{running}.jsonl").exists() and states[running] in ("pending", "interrupted")
    assert tag(out, str(tmp_path / "in")) == 0
    assert tag.shards[-1] == ["s2", "s3"]
    ids = [d["id"] for d in jsonl_documents(out)]
    assert sorted(ids) == sorted(texts)  # every document exactly once
    assert manifest(out)["complete"] and not list(out.glob(".*.tmp"))


def test_usage_errors_exit_2_with_a_message(tmp_path, tag, capsys):
    (tmp_path / "in").mkdir()
    write_shards(tmp_path / "in", 1, 1)
    for args, message in [
        (["--format", "jsonl,html", str(tmp_path / "in")], "--format 'jsonl,html'"),
        ([str(tmp_path / "nothing-*.xml")], "matches no file"),
        (["--shard-index", "2", "--shard-count", "2", str(tmp_path / "in")], "0 <= index < count"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            tag(tmp_path / "out", *args)
        assert stopped.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    with pytest.raises(SystemExit) as stopped:
        command.main(
            ["--ckpt", str(tmp_path / "no.ckpt"), "--out", str(tmp_path / "o"), str(tmp_path / "in")]
        )
    assert stopped.value.code == 2 and "file not found" in capsys.readouterr().err


def test_outputs_inside_an_input_folder_are_never_inputs(tmp_path, tag):
    write_shards(tmp_path, 1, 1)
    assert tag(tmp_path / "out", str(tmp_path)) == 0
    assert tag(tmp_path / "out", str(tmp_path)) == 0  # out/s0.jsonl is a shard's output, not a shard
    assert tag.shards == [["s0"], []] and [s["name"] for s in manifest(tmp_path / "out")["shards"]] == ["s0"]


def test_model_options_reach_the_predictor(tmp_path, monkeypatch, predictor, ckpt):
    from ner.inference.predictor import Predictor
    from ner.tagging.worker import Options, load_predictor

    loaded = []
    monkeypatch.setattr(
        command, "load_predictor", lambda options, device: loaded.append(options) or predictor
    )
    write_shards(tmp_path, 1, 1)
    (tmp_path / "model.onnx").write_bytes(b"not read: the predictor is patched")
    argv = ["--ckpt", ckpt, "--out", str(tmp_path / "out"), "--backend", "onnx", "--precision", "bf16"]
    argv += ["--onnx-model", str(tmp_path / "model.onnx"), "--batch-size", "8", "--max-length", "64"]
    assert command.main([*argv, "--device", "cpu", "--no-progress", str(tmp_path / "s0.xml")]) == 0
    assert loaded == [Options(ckpt, "cpu", "onnx", str(tmp_path / "model.onnx"), "bf16", 8, 64)]

    calls = []
    monkeypatch.setattr(Predictor, "from_checkpoint", lambda *args, **kwargs: calls.append((args, kwargs)))
    load_predictor(loaded[0], "cuda:1")
    options = {"precision": "bf16", "backend": "onnx", "onnx_model": str(tmp_path / "model.onnx")}
    assert calls == [((ckpt,), {"device": "cuda:1", **options, "batch_size": 8, "max_length": 64})]


def test_output_names_are_unique_and_partitions_follow_slurm_arrays(tmp_path):
    paths = [tmp_path / "x" / "a.xml.gz", tmp_path / "y" / "a.xml", tmp_path / "y" / "b.txt"]
    paths += [tmp_path / "y" / "b.jsonl"]
    assert [s.name for s in name_shards(paths)] == ["x/a", "y/a", "y/b.txt", "y/b.jsonl"]
    assert [s.name for s in name_shards([tmp_path / "one.xml"])] == ["one"]
    shards = [Shard(Path(f"/{i}"), str(i)) for i in range(7)]
    assert [s.name for s in select(shards, 2, 3)] == ["2", "5"]
    environ = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    assert slurm_partition(environ | {"SLURM_ARRAY_TASK_STEP": "2"}) == (3, 4)
    assert slurm_partition({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}) == (0, 2)
    assert slurm_partition({}) is None
