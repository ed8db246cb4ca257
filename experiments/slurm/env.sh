# The one place that sets up the software environment of every job in experiments/slurm/ (and of the
# submitit launcher's jobs, hydra/launcher=slurm). Sourced from the repository root; edit it for your cluster.
#
# Default: the project's virtual environment (`make install` creates .venv), or $NER_VENV if set.
# Typical alternatives, instead of the default:
#   module load cuda/12.4 python/3.11 && source "$HOME/venvs/ner/bin/activate"
#   source "$(conda info --base)/etc/profile.d/conda.sh" && conda activate ner   # environment.yml
if [[ -n "${NER_VENV:-}" ]]; then
    source "$NER_VENV/bin/activate"
elif [[ -f .venv/bin/activate ]]; then
    source .venv/bin/activate
fi

# Threads per process = the CPUs SLURM gave each task (tokenization, data loading, CPU fallbacks).
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}"
# Hugging Face downloads: compute nodes are often offline; cache the encoders beforehand on a login node
# (e.g. `python -c "from transformers import AutoModel; AutoModel.from_pretrained('allenai/scibert_scivocab_cased')"`).
# export HF_HUB_OFFLINE=1
