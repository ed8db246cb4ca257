# make quickstart | make test | make test-slurm | make lint — each creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install quickstart test test-slurm lint format clean

install: $(STAMP)

# torch is pinned first: 2.13.0 is a local CPU build here; a looser requirement would pull CUDA wheels.
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,mlflow,onnx]'  # mlflow: tests/test_loggers.py; onnx: the ONNX backend's tests
	touch $(STAMP)

quickstart: install
	$(PY) experiments/run.py experiment=quickstart

test: install
	$(PY) -m pytest

# The `slurm`-marked tests against a real one-node SLURM: installs slurm-wlm and munge (root), starts
# tests/slurm/cluster.sh, runs them, stops it. `make test` skips them, with the reason, where no SLURM runs.
test-slurm: install
	bash .ci/slurm.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
