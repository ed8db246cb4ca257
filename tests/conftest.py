"""Shared fixtures: the real corpus when present (skipped with a reason otherwise), tiny IOB2 writers, and
quickstart runs of both heads trained once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "jnlpba"


def corpus_dir() -> Path | None:
    """The JNLPBA folder from NER_JNLPBA_DIR, else ../shared/data/jnlpba; None when absent."""
    path = Path(os.environ.get("NER_JNLPBA_DIR", DEFAULT_CORPUS))
    return path if (path / "train.iob2").exists() and (path / "test.iob2").exists() else None


@pytest.fixture
def jnlpba_dir() -> Path:
    path = corpus_dir()
    if path is None:
        pytest.skip("JNLPBA corpus not found: set NER_JNLPBA_DIR or put it at ../shared/data/jnlpba")
    return path


@pytest.fixture
def write(tmp_path):
    """write(name, lines) -> path: a small file in tmp_path from a list of lines (joined with newlines)."""

    def _write(name: str, lines: list[str], trailing_newline: bool = True) -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""), encoding="utf-8")
        return path

    return _write


def marker(doc_id: str) -> str:
    """An abstract marker line, built in code (a tracked line starting with it looks like corpus data)."""
    return "###" + "MEDLINE:" + doc_id


def pytest_configure(config: pytest.Config) -> None:
    # tests/test_slurm.py: skipped, with the reason, unless a SLURM cluster answers (see .ci/slurm.sh).
    config.addinivalue_line(
        "markers",
        "slurm: submits jobs to a real SLURM (tests/slurm/cluster.sh start); skipped where none runs",
    )


def quickstart_run(tmp_path_factory: pytest.TempPathFactory, head: str) -> Path:
    """A finished quickstart run (4 epochs on the shipped sample, ~25 s on an idle CPU), trained once per
    session; set NER_TEST_RUNS to a folder to keep the runs between sessions.

    Fewer epochs leave the model predicting nothing but `O`, which would make every comparison vacuous.
    """
    root = Path(os.environ.get("NER_TEST_RUNS") or tmp_path_factory.getbasetemp())
    out = root / f"quickstart-{head}"
    console = root / f"quickstart-{head}.log"  # what the run printed (stdout, then stderr)
    if not (out / "metrics.json").is_file() or not console.is_file():
        command = [
            sys.executable,
            "experiments/run.py",
            "experiment=quickstart",
            f"head={head}",
            "progress_bar=false",
            f"hydra.run.dir={out}",
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        console.write_text(result.stdout + result.stderr)
    return out


@pytest.fixture(scope="session")
def quickstart_console(tmp_path_factory) -> str:
    """Everything the softmax quickstart printed."""
    out = quickstart_run(tmp_path_factory, "softmax")
    return out.with_name(out.name + ".log").read_text()


@pytest.fixture(scope="session", autouse=True)
def hf_modules_cache(tmp_path_factory):
    """Exported folders' remote code is copied into HF_MODULES_CACHE before it is imported: a temp folder,
    set once per session (transformers imports `transformers_modules` from the first cache it sees)."""
    from transformers import dynamic_module_utils

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path_factory.mktemp("hf_modules")))
        yield


@pytest.fixture(scope="session")
def softmax_run(tmp_path_factory) -> Path:
    return quickstart_run(tmp_path_factory, "softmax")


@pytest.fixture(scope="session")
def crf_run(tmp_path_factory) -> Path:
    return quickstart_run(tmp_path_factory, "crf")
