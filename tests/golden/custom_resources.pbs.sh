#!/bin/bash
#PBS -N ff-case
#PBS -q gpu
#PBS -l select=1:ncpus=16:ngpus=1:mem=64gb:scratch_ssd=50gb:gpu_cap=compute_80
#PBS -l walltime=12:00:00
#PBS -j oe
#PBS -o /storage/brno2/home/jdoe/facefill/runs/case/logs/
# facefill: one part of a resumable training chain, rendered by `python -m jobs.submit`.
# It trains until the time limit, then acts on the trainer's exit code (table: jobs/chain.py):
# 0 done (-> evaluation job with --then-evaluate), 75 submit the next part, else stop and say why.
set -euo pipefail

RUN_DIR=/storage/brno2/home/jdoe/facefill/runs/case
DATA=/storage/brno2/home/jdoe/facefill/data/shards/128
CONFIG=model1
PROJECT_ROOT=/storage/brno2/home/jdoe/facefill
IMAGE=/cvmfs/singularity.metacentrum.cz/NGC/PyTorch:24.04-py3.SIF
PYTHON=python
TRAINER_MODULE=inpaint.train
TRAIN_ARGS=(--device cuda --set train.batch_size=8)
TIME_LIMIT=42300
NGPUS=1
NODES=1
MAX_RESUBMITS=5
THEN_EVALUATE=0
CHAIN_LENGTH=0
STAGE_DATA=1
SCRATCH_ENV=SCRATCHDIR
SCRATCH_CLEANUP=clean_scratch
LAUNCHER=pbsdsh
RDZV_PORT="${FACEFILL_RDZV_PORT:-29500}"  # multi-node rendezvous on the first node

SCRIPT="$RUN_DIR/jobs/facefill.pbs.sh"
LEDGER="$RUN_DIR/jobs/ledger.jsonl"
PART="${FACEFILL_PART:-1}"
MODE="${FACEFILL_MODE:-train}"
JOB_ID="${PBS_JOBID:-manual-$$}"

facefill_decide() {
  local code="$1" part="$2" max="$3" then_eval="$4" queued="$5" progressed="${6:-1}" action reason
  case "$code" in
    0) action=done; reason='training finished' ;;
    75) action=resubmit; reason='trainer stopped at its time limit with a checkpoint' ;;
    1) action=stop; reason='trainer failed (exit 1): read train.log in the run dir, fix the cause, submit again' ;;
    2) action=stop; reason='trainer refused its input (exit 2): fix the config or data, submit again' ;;
    *)
      action=stop
      if [ "$code" -gt 128 ] && [ "$code" -lt 160 ]; then
        reason="trainer killed by signal $((code - 128)) (exit $code): resubmit to resume from the last checkpoint"
      else
        reason="trainer exited with unexpected code $code: read train.log in the run dir"
      fi ;;
  esac
  if [ "$action" = done ] && [ "$then_eval" = 1 ]; then
    action=evaluate; reason='training finished; evaluation submitted'
  fi
  if [ "$action" = resubmit ]; then
    if [ "$progressed" != 1 ]; then
      action=stop; reason="part $part made no progress: the walltime leaves no room for a step and a checkpoint; raise --walltime"
    elif [ "$queued" = 1 ]; then
      action=continue; reason='trainer stopped at its time limit; the next part is already queued'
    elif [ "$part" -gt "$max" ]; then
      action=stop; reason="--max-resubmits $max reached after part $part: submit again to continue"
    fi
  fi
  printf "%s\t%s\n" "$action" "$reason"
}

log() { echo "[facefill $(date -u +%H:%M:%S)] $*"; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
json_str() { local s="${1//\\/\\\\}"; s="${s//\"/\\\"}"; printf '"%s"' "$s"; }
ledger() {  # ledger EVENT key=<json value> ...: one line, appended in one write
  local line="{\"event\": \"$1\", \"part\": $PART, \"time\": \"$(now)\"" kv; shift
  for kv in "$@"; do line+=", \"${kv%%=*}\": ${kv#*=}"; done
  printf '%s}\n' "$line" >> "$LEDGER"
}
write_json() {  # write_json FILE TEXT: temporary name, then rename: never half-written
  printf '%s\n' "$2" > "$1.tmp-$$" && mv -f "$1.tmp-$$" "$1"
}
set_owner() {
  write_json "$RUN_DIR/jobs/owner.json" "{\"executor\": \"pbs\", \"job_id\": $(json_str "$1"), \"pid\": null, \"host\": $(json_str "$(hostname)"), \"time\": \"$(now)\"}"
}
release_owner() {
  grep -qF "\"job_id\": $(json_str "$JOB_ID")" "$RUN_DIR/jobs/owner.json" 2>/dev/null && rm -f "$RUN_DIR/jobs/owner.json" || true
}
chain_state() {  # chain_state STATE REASON EXIT_CODE
  write_json "$RUN_DIR/jobs/chain.json" "{\"state\": $(json_str "$1"), \"reason\": $(json_str "$2"), \"part\": $PART, \"exit_code\": $3, \"job_id\": $(json_str "$JOB_ID"), \"executor\": \"pbs\", \"time\": \"$(now)\"}"
}
chain_state_is() { grep -qE "\"state\": \"($1)\"" "$RUN_DIR/jobs/chain.json" 2>/dev/null; }
status_field() {  # an integer field of the trainer's status.json, or nothing
  [ -f "$RUN_DIR/status.json" ] || return 0
  sed -n "s/.*\"$1\": *\(-\{0,1\}[0-9][0-9]*\).*/\1/p" "$RUN_DIR/status.json" | head -n 1 || true
}
in_container() {  # run "$@" in the image (project on PYTHONPATH), or on the host with --container none
  if [ -n "$IMAGE" ]; then
    local pp="$PROJECT_ROOT"  # + packages the image lacks, installed there (containers/README.md)
    [ -d "$PROJECT_ROOT/.container-site" ] && pp="$pp:$PROJECT_ROOT/.container-site"
    SINGULARITYENV_PYTHONPATH="$pp" singularity exec --nv \
      -B "$RUN_DIR" -B "$DATA_USED" -B "$PROJECT_ROOT" "$IMAGE" "$@"
  else
    PYTHONPATH="$PROJECT_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$@"
  fi
}
trainer_args() {  # the trainer CLI after `-m`; --time-limit counts from the job's start
  local limit=$((TIME_LIMIT - SECONDS))
  [ "$limit" -lt 60 ] && limit=60
  TRAINER=("$TRAINER_MODULE" --config "$CONFIG" --data "$DATA_USED" --run-dir "$RUN_DIR"
           --time-limit "$limit" "${TRAIN_ARGS[@]}")
}

# Multi-node: every node runs this script with --node-launch and starts one torchrun.
if [ "${1:-}" = "--node-launch" ]; then
  MASTER="$2"; DATA_USED="$3"; JOB_ID="$4"
  cd "$RUN_DIR"
  trainer_args
  in_container "$PYTHON" -m torch.distributed.run --nnodes "$NODES" --nproc-per-node "$NGPUS" \
    --rdzv-backend c10d --rdzv-endpoint "$MASTER:$RDZV_PORT" --rdzv-id "$JOB_ID" -m "${TRAINER[@]}"
  exit $?
fi

# Jobs start in the home directory; all paths above are absolute, the submit dir is the cwd.
cd "${PBS_O_WORKDIR:-$RUN_DIR}"
mkdir -p "$RUN_DIR/jobs" "$RUN_DIR/logs"
log "part $PART ($MODE) job $JOB_ID on $(hostname), queue ${PBS_QUEUE:-?}, run dir $RUN_DIR"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null || log "nvidia-smi: no GPU visible"

if chain_state_is "done|evaluated|stopped|cancelled"; then
  log "chain already ended ($(sed -n 's/.*"state": "\([a-z]*\)".*/\1/p' "$RUN_DIR/jobs/chain.json")); nothing to do"
  exit 0
fi
ledger start "job_id=$(json_str "$JOB_ID")" "executor=\"pbs\"" "host=$(json_str "$(hostname)")" "kind=$(json_str "$MODE")"
set_owner "$JOB_ID"

# Stage the shards into scratch (single node); checkpoints and logs stay in the run dir.
DATA_USED="$DATA"
SCRATCH="${!SCRATCH_ENV:-}"
cleanup_scratch() {
  if [ -n "$SCRATCH_CLEANUP" ] && command -v "$SCRATCH_CLEANUP" >/dev/null 2>&1; then "$SCRATCH_CLEANUP" || true; fi
}
if [ "$STAGE_DATA" = 1 ] && [ -n "$SCRATCH" ] && [ "$NODES" -eq 1 ]; then
  trap 'cleanup_scratch' EXIT
  trap 'log "SIGTERM (walltime or qdel): the trainer checkpoints and exits"; cleanup_scratch' TERM
  mkdir -p "$SCRATCH/facefill-shards"
  cp -r "$DATA/." "$SCRATCH/facefill-shards/"
  DATA_USED="$SCRATCH/facefill-shards"
  log "shards staged into $DATA_USED"
else
  trap 'log "SIGTERM (walltime or qdel): the trainer checkpoints and exits"' TERM
fi

if [ "$MODE" = evaluate ]; then
  code=0
  in_container "$PYTHON" -m inpaint.evaluate --run-dir "$RUN_DIR" --data "$DATA_USED" --out "$RUN_DIR/eval" || code=$?
  ledger end "exit_code=$code" "kind=\"evaluate\""
  if [ "$code" -eq 0 ]; then chain_state evaluated "evaluation written to $RUN_DIR/eval" 0
  else chain_state stopped "evaluation failed (exit $code): read the job log in $RUN_DIR/logs" "$code"; fi
  release_owner
  exit "$code"
fi

code=0
step_before="$(status_field step)"
trainer_args
if [ "$NODES" -gt 1 ]; then
  MASTER="$(head -n 1 "$PBS_NODEFILE")"
  log "$NODES nodes x $NGPUS GPUs, rendezvous at $MASTER:$RDZV_PORT via $LAUNCHER"
  if [ "$LAUNCHER" = pbsdsh ]; then
    pbsdsh -u -- /bin/bash "$SCRIPT" --node-launch "$MASTER" "$DATA_USED" "$JOB_ID" || code=$?
  else
    mpiexec -n "$NODES" --map-by ppr:1:node /bin/bash "$SCRIPT" --node-launch "$MASTER" "$DATA_USED" "$JOB_ID" || code=$?
  fi
  reported="$(status_field exit_code)"  # the launchers do not pass 75 through; rank 0's status does
  [ -n "$reported" ] && code="$reported"
elif [ "$NGPUS" -gt 1 ]; then
  in_container "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NGPUS" -m "${TRAINER[@]}" || code=$?
else
  in_container "$PYTHON" -m "${TRAINER[@]}" || code=$?
fi
step="$(status_field step)"
queued=0
if [ "$CHAIN_LENGTH" -gt 0 ] && [ "$PART" -lt "$CHAIN_LENGTH" ]; then queued=1; fi
progressed=1
if [ -n "$step_before" ] && [ -n "$step" ] && [ "$step" -le "$step_before" ]; then progressed=0; fi
IFS=$'\t' read -r action reason < <(facefill_decide "$code" "$PART" "$MAX_RESUBMITS" "$THEN_EVALUATE" "$queued" "$progressed")
if [ "$action" = resubmit ] && chain_state_is cancelled; then
  action=stop; reason="cancelled with jobs.cancel"
fi
log "trainer exit $code at step ${step:-?}: $action ($reason)"
ledger end "exit_code=$code" "step=${step:-null}" "action=$(json_str "$action")" "reason=$(json_str "$reason")"

submit_next() {  # submit_next PART MODE: qsub this script again, retrying a busy server
  local try out
  for try in 1 2 3; do
    if out="$(qsub -v "FACEFILL_PART=$1,FACEFILL_MODE=$2" "$SCRIPT" 2>&1)"; then
      NEXT_ID="$(printf '%s\n' "$out" | tail -n 1)"; return 0
    fi
    log "qsub failed (try $try): $out"; sleep $((try * 10))
  done
  SUBMIT_ERROR="$(printf '%s' "$out" | tr '\n' ' ')"
  return 1
}

case "$action" in
  resubmit|evaluate)
    mode=train; [ "$action" = evaluate ] && mode=evaluate
    if submit_next $((PART + 1)) "$mode"; then
      PART=$((PART + 1)) ledger submit "job_id=$(json_str "$NEXT_ID")" "executor=\"pbs\"" "kind=$(json_str "$mode")"
      set_owner "$NEXT_ID"
      if [ "$action" = evaluate ]; then chain_state evaluating "$reason" "$code"; else chain_state running "$reason; part $((PART + 1)) is $NEXT_ID" "$code"; fi
      log "submitted part $((PART + 1)) ($mode) as $NEXT_ID"
    else
      chain_state stopped "could not submit part $((PART + 1)): $SUBMIT_ERROR; run jobs.submit again to continue" "$code"
      release_owner
    fi ;;
  continue) chain_state running "$reason" "$code" ;;
  done) chain_state done "$reason" "$code"; release_owner ;;
  *) chain_state_is cancelled || chain_state stopped "$reason" "$code"; release_owner ;;
esac
# A stopped chain shows as a failed job in qstat; a handed-on or finished one as success.
if [ "$action" = stop ] && [ "$code" -ne 0 ]; then exit "$code"; fi
exit 0
