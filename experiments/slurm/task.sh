#!/usr/bin/env bash
# What `srun` starts on every task of a train.sbatch job: `task.sh SCRIPT ARGS...` runs `python SCRIPT ARGS...` with
# two SLURM details taken care of:
#  - the requeue signal (SIGUSR1) is ignored until Python installs its own handler, which checkpoints and
#    requeues; its default action would kill the task if it came during start-up;
#  - only task 0 writes Hydra's files (.hydra/, run.log); task N logs to rankN.log, as Lightning's own
#    DDP launcher does for the processes it starts.
set -euo pipefail
trap '' USR1
script="$1"
shift
rank=()
if [[ "${SLURM_PROCID:-0}" != 0 ]]; then
    rank=(hydra.output_subdir=null "hydra.job.name=rank${SLURM_PROCID}")
fi
exec python "$script" "$@" "${rank[@]}"
