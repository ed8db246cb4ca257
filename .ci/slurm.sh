#!/usr/bin/env bash
# CI: train.sbatch and the study's sweep on hydra/launcher=slurm against a real single-node SLURM (.ci/run).
# Installs Debian's slurm-wlm and munge, starts tests/slurm/cluster.sh, runs the `slurm`-marked tests,
# stops the cluster (also on failure), and exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v slurmd >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi
make install >/dev/null                                     # .venv, as `make test` makes it
.venv/bin/python -m pip install --quiet -e '.[slurm]'         # hydra-submitit-launcher: hydra/launcher=slurm

export NER_SLURM_DIR="${NER_SLURM_DIR:-$(mktemp -d /tmp/ner-slurm-ci.XXXXXX)}"
trap 'tests/slurm/cluster.sh stop || true' EXIT
tests/slurm/cluster.sh start
eval "$(tests/slurm/cluster.sh env)"

status=0
timeout 1800 .venv/bin/python -m pytest -m slurm tests/test_slurm.py -p no:cacheprovider -v || status=$?
if ((status != 0)); then
    echo "---- SLURM logs ($NER_SLURM_DIR/log) ----"
    tail -n 40 "$NER_SLURM_DIR"/log/*.log || true
fi
exit "$status"
