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
