"""The notebooks are stored without outputs and run headless, top to bottom, on quickstart runs; their
figures show whatever matplotlib backend the environment picks (clusters often set `MPLBACKEND=Agg`)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BACKENDS = [None, "Agg"]  # None: the kernel's default (inline); Agg: what cluster environments often set


def execute(name: str, parameters: str, backend: str | None, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook with `parameters` injected after its `parameters` cell (as papermill does), in a
    kernel whose environment has `MPLBACKEND=backend` (unset for None)."""
    if backend is None:
        monkeypatch.delenv("MPLBACKEND", raising=False)
    else:
        monkeypatch.setenv("MPLBACKEND", backend)  # the kernel inherits this process's environment
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


def assert_every_plot_shown(notebook: nbformat.NotebookNode) -> None:
    """Every cell that calls a `plot_*` helper shows a PNG image (not just `<Figure size ...>` text)."""
    plotting = [c for c in notebook.cells if c.cell_type == "code" and re.search(r"\bplot_\w+\(", c.source)]
    assert plotting
    for cell in plotting:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"no figure shown by the cell:\n{cell.source}"


@pytest.mark.parametrize("name", ["error_analysis.ipynb", "corpus.ipynb"])
def test_stored_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_error_analysis_runs_on_two_runs(softmax_run, crf_run, backend, monkeypatch):
    parameters = f"RUN = {str(softmax_run)!r}\nOTHER = {str(crf_run)!r}"
    notebook = execute("error_analysis.ipynb", parameters, backend, monkeypatch)
    assert_every_plot_shown(notebook)
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs(notebook))
    assert "Outcome of every entity" in html and "<mark" in html and "exactly one run gets right" in html


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_corpus_notebook_runs_on_the_sample(backend, monkeypatch):
    parameters = f"DATA_DIR = {str(ROOT / 'ner' / 'data' / 'sample')!r}"
    notebook = execute("corpus.ipynb", parameters, backend, monkeypatch)
    assert_every_plot_shown(notebook)
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs(notebook))
    assert "Tag counts against the model card" in html and "Subword fragmentation" in html
