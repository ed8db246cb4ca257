"""train.sbatch and the submitit launcher against a real SLURM (tests/slurm/cluster.sh; CI: .ci/slurm.sh).

- train.sbatch trains the quickstart configuration to the end;
- a job sent SIGUSR1 (`scancel --signal=USR1 --batch`) checkpoints, requeues itself, starts again about
  `cred_expire` seconds later and finishes from its checkpoint with the uninterrupted job's metrics;
- the study's sweep (`-m ablation=heads hydra/launcher=slurm`) trains a two-run grid as one array job, and
  the comparison of what the runs measured is written after it;
- the submitit launcher config runs a two-point Hydra sweep.

Marked `slurm`, and skipped, with the reason, when no cluster answers `scontrol ping`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_CONF = Path(os.environ.get("NER_SLURM_DIR", "/tmp/ner-slurm")) / "slurm.conf"
# Short, deterministic runs on the sample: 2 epochs x 5 batches. One CPU per job: two jobs run at once.
QUICK = [
    "experiment=quickstart",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "++trainer.limit_train_batches=5",
]
RESOURCES = ["--cpus-per-task=1", "--time=30"]
FINISHED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
}

pytestmark = pytest.mark.slurm


class Slurm:
    """sbatch / scontrol against the cluster of `env["SLURM_CONF"]`, with job logs and runs under `tmp`."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp = env, tmp

    def command(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def submit(self, script: str, *args: str, options: tuple[str, ...] = ()) -> str:
        out = self.command(
            "sbatch", "--parsable", f"--output={self.tmp}/%x-%j.log", *RESOURCES, *options, script, *args
        )
        return out.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, StartTime, ...)."""
        text = self.command("scontrol", "show", "job", "--oneliner", job_id)
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait(self, job_id: str, timeout: float = 600, until=None) -> dict[str, str]:
        """Poll until `until(job)` holds (default: the job has finished); the last state seen."""
        until = until or (lambda job: job["JobState"] in FINISHED)
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if until(job):
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job['JobState']} after {timeout:.0f}s"
            time.sleep(2)

    def log(self, name: str, job_id: str) -> str:
        path = self.tmp / f"{name}-{job_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def cluster_env() -> dict[str, str] | str:
    """The environment to reach a running cluster, or why there is none."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and CLUSTER_CONF.exists():
        env["SLURM_CONF"] = str(CLUSTER_CONF)
    if not shutil.which("sbatch"):
        return "SLURM is not installed (apt-get install slurm-wlm munge)"
    ping = subprocess.run(["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=30)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no SLURM controller answers `scontrol ping`"
    return env


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> Slurm:
    env = cluster_env()
    if isinstance(env, str):
        pytest.skip(f"{env}: start the test cluster with `tests/slurm/cluster.sh start` (CI: .ci/slurm.sh)")
    return Slurm(env, tmp_path_factory.mktemp("slurm"))


@pytest.fixture(scope="module")
def reference(slurm) -> tuple[str, Path]:
    """An uninterrupted train.sbatch run, submitted first so that it runs beside the requeue test's job."""
    run_dir = slurm.tmp / "reference"
    return slurm.submit("experiments/slurm/train.sbatch", *QUICK, f"hydra.run.dir={run_dir}"), run_dir


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_preempted_job_requeues_and_finishes_like_an_uninterrupted_one(slurm, reference):
    run_dir = slurm.tmp / "preempted"
    job_id = slurm.submit(
        "experiments/slurm/train.sbatch", *QUICK, "++checkpoint_every_n_steps=2", f"hydra.run.dir={run_dir}"
    )
    # Mid-epoch: once the first periodic checkpoint (step 2) is there, training is under way.
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert slurm.job(job_id)["JobState"] in ("PENDING", "RUNNING"), slurm.log("ner-train", job_id)
        assert time.monotonic() < deadline, "the job never wrote a checkpoint"
        time.sleep(1)
    slurm.command("scancel", "--signal=USR1", "--batch", job_id)

    # SLURM holds a requeued job back for `cred_expire` seconds (30 in tests/slurm, 120 by default).
    job = slurm.wait(job_id, timeout=900, until=lambda j: j["JobState"] in FINISHED and j["Restarts"] != "0")
    log = slurm.log("ner-train", job_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert job["Restarts"] == "1", log[-3000:]
    stopped = re.search(r"SIGUSR1: stopped at epoch (\d+), step (\d+)", log)
    assert stopped and 2 < int(stopped[2]) < 10, log[-3000:]
    assert f"requeued SLURM job {job_id}" in log and "start 2," in log
    assert "Restoring states from the checkpoint path at" in log.split("start 2,")[1]

    reference_id, reference_dir = reference
    first = slurm.wait(reference_id)
    assert first["JobState"] == "COMPLETED", slurm.log("ner-train", reference_id)[-3000:]
    ours, theirs = metrics(run_dir), metrics(reference_dir)
    for key in ("dev", "test", "best_epoch", "best_checkpoint"):
        assert ours[key] == theirs[key], key
    assert [e["dev_f1"] for e in ours["epochs"]] == [e["dev_f1"] for e in theirs["epochs"]]


def test_train_sbatch_runs_to_the_end(slurm, reference):
    job_id, run_dir = reference
    job = slurm.wait(job_id)
    log = slurm.log("ner-train", job_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert "1 node(s) x 1 task(s)" in log and "Initializing distributed: GLOBAL_RANK: 0, MEMBER: 1/1" in log
    saved = metrics(run_dir)
    assert len(saved["epochs"]) == 2 and saved["test"]["micro"]["n_gold"] == 76
    for name in ("predictions/dev.iob2", "predictions/test.iob2", "config.yaml", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name


def test_the_study_sweep_runs_as_an_array_and_compares_after_it(slurm):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    study = slurm.tmp / "study"
    cmd = [
        sys.executable,
        "experiments/run.py",
        "-m",
        "ablation=heads",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=30",
        f"hydra.sweep.dir={study}",
        "model=minilm",
        "data=sample",
        "seed=1",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2",
        "study.protocol=honest",
        "study.resamples=200",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=slurm.env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    tasks = sorted(p.name for p in (study / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1, tasks  # one array, two tasks

    compared = study / "comparison" / "comparison.json"
    comparison = json.loads(compared.read_text())
    for arm, run in (("softmax", "softmax-seed1"), ("crf", "crf-seed1")):
        measured = metrics(study / "runs" / run)
        assert comparison["arms"][arm]["metrics"]["test_f1"]["values"] == [measured["test"]["micro"]["f1"]]
        assert comparison["arms"][arm]["metrics"]["dev_f1"]["values"] == [measured["dev"]["micro"]["f1"]]
        assert (study / "runs" / run / "eval" / f"{arm}.json").is_file()  # evaluated in its job
        assert compared.stat().st_mtime >= (study / "runs" / run / "metrics.json").stat().st_mtime
    assert "softmax-viterbi" in comparison["arms"]


def test_submitit_launcher_runs_a_sweep(slurm):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher")
    sweep = slurm.tmp / "sweep"
    cmd = [
        sys.executable,
        "experiments/run.py",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.timeout_min=30",
        f"hydra.sweep.dir={sweep}",
        "experiment=quickstart",
        "progress_bar=false",
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2",
        "seed=1,2",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=slurm.env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert [metrics(sweep / str(i))["seed"] for i in (0, 1)] == [1, 2]


# ---- experiments/slurm/tag.sbatch: `python -m ner tag` as an array job over shards -----------------------


def write_tag_shards(folder: Path, shards: int, documents: int) -> set[str]:
    """`shards` small PubMed XML files `s<i>.xml` of `documents` articles each; all their PMIDs."""
    folder.mkdir(parents=True)
    pmids = set()
    for i in range(shards):
        articles = []
        for j in range(documents):
            pmid = f"{i + 1}{j:03d}"
            pmids.add(pmid)
            articles.append(
                f"<PubmedArticle><MedlineCitation><PMID>{pmid}</PMID><Article><ArticleTitle>IL-2 gene "
                "expression requires NF-kappa B in T cells.</ArticleTitle></Article></MedlineCitation>"
                "</PubmedArticle>"
            )
        (folder / f"s{i}.xml").write_text(f"<PubmedArticleSet>{''.join(articles)}</PubmedArticleSet>\n")
    return pmids


def array_tasks(slurm: Slurm, job_id: str) -> dict[str, dict[str, str]]:
    """The array's tasks by task id, as `scontrol show job` lists them (a pending range is one entry)."""
    text = slurm.command("scontrol", "show", "job", "--oneliner", job_id)
    tasks = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in text.splitlines() if line.strip()]
    return {task["ArrayTaskId"]: task for task in tasks}


def wait_for_array(slurm: Slurm, job_id: str, n: int, until=None, timeout: float = 600) -> dict:
    """Poll until all `n` tasks have finished (or `until(tasks)` holds); the tasks last seen."""
    until = until or (
        lambda tasks: len(tasks) == n and all(t["JobState"] in FINISHED for t in tasks.values())
    )
    deadline = time.monotonic() + timeout
    while True:
        tasks = array_tasks(slurm, job_id)
        if until(tasks):
            return tasks
        assert time.monotonic() < deadline, f"array {job_id} not finished after {timeout:.0f}s: {tasks}"
        time.sleep(1)


def tagged_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for path in sorted(out.glob("*.jsonl")) for line in path.open()]


def shard_state(out: Path, name: str) -> str | None:
    path = out / "shards" / f"{name}.status.json"
    try:
        return json.loads(path.read_text())["status"]
    except (OSError, ValueError):
        return None


def test_tag_array_tags_every_shard_once(slurm, softmax_run):
    pmids = write_tag_shards(slurm.tmp / "tag-in", shards=4, documents=3)
    out, ckpt = slurm.tmp / "tag-out", softmax_run / "checkpoints" / "last.ckpt"
    args = ("--ckpt", str(ckpt), "--out", str(out), "--format", "jsonl,pubtator", str(slurm.tmp / "tag-in"))
    job_id = slurm.submit("experiments/slurm/tag.sbatch", *args, options=("--array=0-1",))
    tasks = wait_for_array(slurm, job_id, 2)
    logs = {i: slurm.log("ner-tag", t["JobId"]) for i, t in tasks.items()}
    for i, task in tasks.items():
        assert task["JobState"] == "COMPLETED" and task["ExitCode"] == "0:0", logs[i][-3000:]
    assert "done s0:" in logs["0"] and "done s2:" in logs["0"] and "done s1:" not in logs["0"]
    assert "done s1:" in logs["1"] and "done s3:" in logs["1"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["documents"] == len(pmids)
    ids = tagged_ids(out)
    assert sorted(ids) == sorted(pmids) and len(list(out.glob("*.pubtator"))) == 4


def test_tag_array_finishes_after_a_cancelled_and_a_requeued_task(slurm, softmax_run):
    """Task 0 is cancelled (`scancel`) and task 1 sent the time-limit signal while a shard is in flight;
    task 1 requeues itself and finishes, the array submitted again finishes task 0's shards."""
    pmids = write_tag_shards(slurm.tmp / "tag-in-2", shards=4, documents=4)
    out, ckpt = slurm.tmp / "tag-out-2", softmax_run / "checkpoints" / "last.ckpt"
    args = ("--ckpt", str(ckpt), "--out", str(out), str(slurm.tmp / "tag-in-2"))
    slow = Slurm({**slurm.env, "NER_TAG_TEST_DELAY": "1"}, slurm.tmp)  # a test hook: 1 s per document
    job_id = slow.submit("experiments/slurm/tag.sbatch", *args, options=("--array=0-1",))
    # task 0 takes s0 and s2, task 1 s1 and s3: each is stopped once its first shard is done
    pending = {
        "0": ("s0", "s2", ("scancel", f"{job_id}_0")),
        "1": ("s1", "s3", ("scancel", "--signal=USR1", "--batch", f"{job_id}_1")),
    }
    deadline = time.monotonic() + 600
    while pending:
        for task, (first, second, stop) in list(pending.items()):
            if shard_state(out, first) == "done" and shard_state(out, second) == "running":
                slurm.command(*stop)
                del pending[task]
        assert time.monotonic() < deadline, f"no shard in flight to stop: {array_tasks(slurm, job_id)}"
        time.sleep(0.2)

    def requeued_and_finished(tasks):
        return tasks["1"]["JobState"] in FINISHED and tasks["1"]["Restarts"] != "0"

    tasks = wait_for_array(slurm, job_id, 2, until=requeued_and_finished, timeout=900)
    log = slurm.log("ner-tag", tasks["1"]["JobId"])
    assert tasks["1"]["JobState"] == "COMPLETED" and tasks["1"]["Restarts"] == "1", log[-3000:]
    assert f"requeued SLURM job {job_id}_1" in log and "stopped by SIGUSR1" in log
    assert "start 2," in log and "tagging s3 again: interrupted" in log.split("start 2,")[1]
    # the requeue took task 1 alone: the cancelled task stays cancelled, its shard in flight undone
    assert tasks["0"]["JobState"] == "CANCELLED" and tasks["0"]["Restarts"] == "0", tasks["0"]
    assert shard_state(out, "s2") == "interrupted" and not (out / "s2.jsonl").exists()

    again = slurm.submit("experiments/slurm/tag.sbatch", *args, options=("--array=0-1",))
    tasks = wait_for_array(slurm, again, 2)
    logs = {i: slurm.log("ner-tag", t["JobId"]) for i, t in tasks.items()}
    for i, task in tasks.items():
        assert task["JobState"] == "COMPLETED" and task["ExitCode"] == "0:0", logs[i][-3000:]
    assert "1 already done, 1 to tag" in logs["0"] and "2 already done, 0 to tag" in logs["1"]
    ids = tagged_ids(out)
    assert sorted(ids) == sorted(pmids)  # every document exactly once
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["totals"]["documents"] == len(pmids)
    assert not list(out.glob(".*.tmp"))
