# Sourced by the job scripts in this folder, from the repository root: the environment (env.sh) and `step`.
source experiments/slurm/env.sh

# step SCRIPT ARGS...: `python SCRIPT ARGS...` on every task of the allocation (srun, via task.sh).
# srun runs in the background so that this batch shell can pass on a signal sent to it alone, as
# `scancel --signal=USR1 --batch JOB` does; srun forwards it to every task. (`#SBATCH --signal=USR1@90`
# signals the tasks directly.) Returns srun's exit status.
step() {
    srun --kill-on-bad-exit=1 experiments/slurm/task.sh "$@" &
    _step_pid=$!
    trap 'kill -USR1 "$_step_pid" 2>/dev/null || true' USR1
    local status=0
    while :; do
        wait "$_step_pid" && status=0 || status=$?
        kill -0 "$_step_pid" 2>/dev/null || break # `wait` returns early when a trapped signal arrives
    done
    trap '' USR1 # the step is over: a late signal must not kill this shell
    return "$status"
}
