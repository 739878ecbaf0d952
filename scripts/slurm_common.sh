# Shared body of scripts/slurm_train.sh and scripts/slurm_pipeline.sh, sourced from the repository root.
# naas_srun NAME "DEFAULT RECIPES" SUBCOMMAND [ARGS...]: `srun .venv/bin/naas-train SUBCOMMAND --config R ... ARGS`
# for each recipe R of $NAAS_CONFIGS (space-separated; default: DEFAULT RECIPES), wandb offline unless set.
naas_srun() {
    local name=$1 defaults=$2 subcommand=$3
    shift 3
    if [ ! -x .venv/bin/naas-train ]; then
        echo "$name: no .venv/bin/naas-train in $PWD; submit from the repo root after scripts/setup.sh" >&2
        exit 2
    fi
    local configs config config_args=()
    read -r -a configs <<< "${NAAS_CONFIGS:-$defaults}"
    for config in "${configs[@]}"; do config_args+=(--config "$config"); done
    export WANDB_MODE="${WANDB_MODE:-offline}"
    echo "$name: job ${SLURM_JOB_ID:-?} start ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}"
    srun --kill-on-bad-exit=1 .venv/bin/naas-train "$subcommand" "${config_args[@]}" "$@"
}
