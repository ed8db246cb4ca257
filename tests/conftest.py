"""Shared fixtures: the real corpus when present (skipped with a reason otherwise), tiny IOB2 writers."""

from __future__ import annotations

import os
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
