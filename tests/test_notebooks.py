"""The notebooks are stored without outputs and run headless, top to bottom, on quickstart runs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(name: str, parameters: str) -> nbformat.NotebookNode:
    """Run a notebook with `parameters` injected after its `parameters` cell (as papermill does)."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(parameters))
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell's traceback, on any error
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[dict]:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]


@pytest.mark.parametrize("name", ["error_analysis.ipynb", "corpus.ipynb"])
def test_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


@pytest.mark.slow
def test_error_analysis_runs_on_two_runs(softmax_run, crf_run):
    notebook = execute("error_analysis.ipynb", f"RUN = {str(softmax_run)!r}\nOTHER = {str(crf_run)!r}")
    shown = outputs(notebook)
    assert any("image/png" in o.get("data", {}) for o in shown)  # the figures
    html = "".join(o.get("data", {}).get("text/html", "") for o in shown)
    assert "Outcome of every entity" in html and "<mark" in html and "exactly one run gets right" in html


@pytest.mark.slow
def test_corpus_notebook_runs_on_the_sample():
    notebook = execute("corpus.ipynb", f"DATA_DIR = {str(ROOT / 'ner' / 'data' / 'sample')!r}")
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs(notebook))
    assert "Tag counts against the model card" in html and "Subword fragmentation" in html
