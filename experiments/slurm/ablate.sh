#!/usr/bin/env bash
# An ablation grid on SLURM: one array task per training run, then one job that evaluates and compares,
# which starts only once every run has succeeded (--dependency=afterok).
#
#   experiments/slurm/ablate.sh [SBATCH OPTIONS --] ABLATE OVERRIDES
#   experiments/slurm/ablate.sh -p gpu --time=6:00:00 -- ablation=heads-gpu model=scibert data.dir=$PWD/data/jnlpba
#
# Run it from the repository root on a login node: it only lists the grid (experiments/ablate.py
# action=list, one line per training run) and submits. SBATCH OPTIONS apply to both jobs;
# NER_ARRAY_LIMIT=N lets at most N runs train at once. Results: the study folder (see the README, *Ablation*).
set -euo pipefail
options=()
if [[ " $* " == *" -- "* ]]; then
    while [[ "$1" != "--" ]]; do
        options+=("$1")
        shift
    done
    shift
fi
source experiments/slurm/env.sh
tasks="$(python experiments/ablate.py "$@" action=list)"
n="$(grep -c . <<<"$tasks" || true)"
if ((n == 0)); then
    echo "ablate.sh: the grid has no training runs" >&2
    exit 1
fi
array="$(sbatch --parsable --array="0-$((n - 1))${NER_ARRAY_LIMIT:+%$NER_ARRAY_LIMIT}" "${options[@]}" \
    experiments/slurm/ablate_task.sbatch "$@")"
array="${array%%;*}"
compare="$(sbatch --parsable --dependency="afterok:$array" "${options[@]}" experiments/slurm/compare.sbatch "$@")"
compare="${compare%%;*}"
echo "$tasks"
echo "submitted: training array job $array ($n runs), comparison job $compare (after all of them succeed)"
