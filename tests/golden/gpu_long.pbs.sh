#!/bin/bash
#PBS -N ff-case
#PBS -q gpu_long
#PBS -l select=1:ncpus=8:ngpus=1:mem=32gb:scratch_local=20gb
#PBS -l walltime=336:00:00
#PBS -j oe
#PBS -o /storage/brno2/home/jdoe/facefill/runs/case/logs/
# facefill: one part of a resumable training chain, rendered by `python -m jobs.submit`.
# Only what must be shell is here: cd, staging into scratch and the container call. Every
# decision and record (exit codes, progress, resubmit/evaluate/stop, ledger, owner, chain state, the
# successor's qsub) is `python3 -m jobs.part` (jobs/part.py), run with the node's python3 and the project on PYTHONPATH.
set -euo pipefail

RUN_DIR=/storage/brno2/home/jdoe/facefill/runs/case
DATA=/storage/brno2/home/jdoe/facefill/data/shards/128
PROJECT_ROOT=/storage/brno2/home/jdoe/facefill
IMAGE=/cvmfs/singularity.metacentrum.cz/NGC/PyTorch:24.04-py3.SIF
PYTHON=python
NGPUS=1
NODES=1
STAGE_DATA=1
SCRATCH_ENV=SCRATCHDIR
SCRATCH_CLEANUP=clean_scratch
LAUNCHER=pbsdsh
IFACE=''  # the nodes' private network; empty: torchrun and gloo go by host name
RDZV_PORT="${FACEFILL_RDZV_PORT:-29500}"  # multi-node rendezvous on the first node
SCRIPT="$RUN_DIR/jobs/facefill.pbs.sh"
PART="${FACEFILL_PART:-1}"
MODE="${FACEFILL_MODE:-train}"
CHAIN="${FACEFILL_CHAIN:-}"  # the submission this part belongs to (jobs.part keeps chains apart)
JOB_ID="${PBS_JOBID:-manual-$$}"

log() { echo "[facefill $(date -u +%H:%M:%S)] $*"; }
part() {  # part STEP ARGS...: the chain's Python side, standard library + the project only
  PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -m jobs.part "$1" "$RUN_DIR" \
    --part "$PART" --kind "$MODE" --job-id "$JOB_ID" --chain "$CHAIN" "${@:2}"
}
in_container() {  # run "$@" in the image (project on PYTHONPATH), or on the host with --container none
  if [ -n "$IMAGE" ]; then
    local pp="$PROJECT_ROOT"  # + packages the image lacks, installed there (containers/README.md)
    [ -d "$PROJECT_ROOT/.container-site" ] && pp="$pp:$PROJECT_ROOT/.container-site"
    SINGULARITYENV_PYTHONPATH="$pp" APPTAINERENV_PYTHONPATH="$pp" singularity exec --nv \
      -B "$RUN_DIR" -B "$DATA_USED" -B "$PROJECT_ROOT" "$IMAGE" "$@"
  else
    PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$@"
  fi
}

iface_address() {  # this node's IPv4 address on $IFACE (empty when it has none)
  ip -4 -o addr show dev "$IFACE" 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }' || true
}
no_iface_address() {
  log "error: no IPv4 address on network_interface '$IFACE' on $(hostname): set network_interface in the site profile to the interface of the nodes' private network"
}

# Multi-node: every node runs this script with --node-launch, the rendezvous endpoint and the command,
# and starts one torchrun. Everything it needs comes as arguments or from this file: a task gets the
# job's environment, not what the batch shell set, and its own working directory.
# With a network interface the nodes meet by address, not by name (names need not resolve there):
# each node binds its own address, the first node (the batch node, whose address is the endpoint's)
# hosts the rendezvous store, and gloo/NCCL use that interface.
if [ "${1:-}" = "--node-launch" ]; then
  ENDPOINT="$2"; DATA_USED="$3"; JOB_ID="$4"; shift 4
  cd "$RUN_DIR"
  BY_ADDRESS=()
  if [ -n "$IFACE" ]; then
    HERE="$(iface_address)"
    [ -n "$HERE" ] || { no_iface_address; exit 2; }
    export GLOO_SOCKET_IFNAME="$IFACE" NCCL_SOCKET_IFNAME="$IFACE"
    BY_ADDRESS=(--local-addr "$HERE" --rdzv-conf "is_host=$([ "$HERE" = "${ENDPOINT%:*}" ] && echo 1 || echo 0)")
  fi
  in_container "$PYTHON" -m torch.distributed.run --nnodes "$NODES" --nproc-per-node "$NGPUS" \
    --rdzv-backend c10d --rdzv-endpoint "$ENDPOINT" --rdzv-id "$JOB_ID" "${BY_ADDRESS[@]}" -m "$@"
  exit $?
fi

# Jobs start in the home directory; all paths above are absolute, the submit dir is the cwd.
cd "${PBS_O_WORKDIR:-$RUN_DIR}"
mkdir -p "$RUN_DIR/logs"
log "part $PART ($MODE) job $JOB_ID on $(hostname), queue ${PBS_QUEUE:-?}, run dir $RUN_DIR"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null || log "nvidia-smi: no GPU visible"
skip="$(part start)"
if [ -n "$skip" ]; then log "$skip"; exit 0; fi

# Stage the shards into scratch for training (single node; $SCRATCHDIR exists only when scratch is
# requested); checkpoints and logs stay in the run dir. The evaluation reads --data itself, so its
# report names the shards folder, not a scratch copy. What this part staged it removes at its end:
# with the site's helper (MetaCentrum's clean_scratch) or, where there is none, itself.
DATA_USED="$DATA"
SCRATCH="${!SCRATCH_ENV:-}"
STAGED=""
cleanup_scratch() {
  if [ -n "$SCRATCH_CLEANUP" ] && command -v "$SCRATCH_CLEANUP" >/dev/null 2>&1; then "$SCRATCH_CLEANUP" || true
  elif [ -n "$STAGED" ]; then rm -rf -- "$STAGED"; fi
}
if [ "$MODE" = train ] && [ "$STAGE_DATA" = 1 ] && [ -n "$SCRATCH" ] && [ "$NODES" -eq 1 ]; then
  trap 'cleanup_scratch' EXIT
  trap 'log "SIGTERM (walltime or qdel): the trainer checkpoints and exits"; cleanup_scratch' TERM
  STAGED="$SCRATCH/facefill-shards"
  mkdir -p "$STAGED"
  cp -r "$DATA/." "$STAGED/"
  DATA_USED="$STAGED"
  log "shards staged into $DATA_USED"
else
  trap 'log "SIGTERM (walltime or qdel): the trainer checkpoints and exits"' TERM
fi

command_text="$(part command --data "$DATA_USED")"
mapfile -t COMMAND <<< "$command_text"  # the module and its arguments, one a line
code=0
if [ "$MODE" = train ] && [ "$NODES" -gt 1 ]; then
  # This script runs on the first node of $PBS_NODEFILE: the rendezvous is here.
  if [ -n "$IFACE" ]; then MASTER="$(iface_address)"; else MASTER="$(head -n 1 "$PBS_NODEFILE")"; fi
  log "$NODES nodes x $NGPUS GPUs, rendezvous at $MASTER:$RDZV_PORT via $LAUNCHER"
  if [ -z "$MASTER" ]; then
    no_iface_address; code=2
  elif [ "$LAUNCHER" = pbsdsh ]; then
    # one task per line of $PBS_NODEFILE: one per node, as each chunk asks for one MPI process
    pbsdsh -- /bin/bash "$SCRIPT" --node-launch "$MASTER:$RDZV_PORT" "$DATA_USED" "$JOB_ID" "${COMMAND[@]}" || code=$?
  else
    mpiexec -n "$NODES" --map-by ppr:1:node /bin/bash "$SCRIPT" --node-launch "$MASTER:$RDZV_PORT" "$DATA_USED" "$JOB_ID" "${COMMAND[@]}" || code=$?
  fi
elif [ "$MODE" = train ] && [ "$NGPUS" -gt 1 ]; then
  in_container "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NGPUS" -m "${COMMAND[@]}" || code=$?
else
  in_container "$PYTHON" -m "${COMMAND[@]}" || code=$?
fi

# Decide, record and hand on (Python: jobs.part end submits the successor when it says so).
job_exit=0
part end --exit-code "$code" || job_exit=$?
exit "$job_exit"
