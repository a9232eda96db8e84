#!/usr/bin/env bash
# The first thing to run on a GPU machine (docs/scaling.md, "First contact with a GPU"): a few minutes
# on the smoke config, and every path this repository has only ever run on CPU gets one real try.
# Each step prints PASS, FAIL (with the end of its log) or SKIP with the reason; the exit code is 1 if
# any step failed.
#
#   bash scripts/gpu_check.sh                      # uses .venv/bin/python (PYTHON=... for another)
#   GPU_CHECK_OUT=/tmp/gpu_check bash scripts/gpu_check.sh   # keep the logs and runs there
#
# Steps: CUDA device found (name, torch build, native bf16); one A*PO iteration in bf16 on 1 GPU
# (summary.json must say cuda + bfloat16); resume it to iteration 2 on the GPU; resume the GPU
# checkpoint on CPU; then, with 2+ GPUs, a 2-process torchrun DDP iteration and an FSDP2 iteration
# with nccl (no process-group warning at exit), a DDP resume, and DDP with torch.compile.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${GPU_CHECK_OUT:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$OUT"
FAILED=0
COMMON=(--config configs/smoke.yaml --no-progress "run.out_dir=$OUT/runs" "pretrain.cache_dir=$OUT/cache"
  algorithm.name=astarpo logging.tensorboard=false)
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc_per_node=2)

# step NAME COMMAND...: run it (a program: at most 10 minutes), log to $OUT, print PASS/FAIL.
step() {
  local name=$1 log
  shift
  log="$OUT/$(echo "$name" | tr -c 'A-Za-z0-9\n' '_').log"
  local cap=(timeout 600)
  [ "$(type -t "$1")" = function ] && cap=()  # timeout runs programs, not this script's functions
  if "${cap[@]}" "$@" >"$log" 2>&1; then
    echo "PASS $name"
  else
    echo "FAIL $name (exit $?; log $log)"
    tail -n 8 "$log" | sed 's/^/     /'
    FAILED=1
  fi
}

# summary RUN PYTHON-CONDITION: summary.json of runs/RUN must satisfy the condition on `s`.
summary() {
  "$PY" -c "import json, sys; s = json.load(open('$OUT/runs/$1/summary.json')); print(s); \
assert $2, 'summary.json: ' + '''$2'''"
}

# no_pg_warning LOG: torch warns at exit when a process group was not destroyed.
no_pg_warning() { ! grep -qi "destroy_process_group" "$1"; }

step "CUDA device found" "$PY" -c "import torch
assert torch.cuda.is_available(), f'no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda})'
print(torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.device_count(), 'x', torch.cuda.get_device_name(0))
print('native bf16:', torch.cuda.is_bf16_supported(including_emulation=False))"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "FAIL: no CUDA device, nothing else can run here"
  exit 1
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
BF16=$("$PY" -c "import torch; print(int(torch.cuda.is_bf16_supported(including_emulation=False)))")
DTYPE=bfloat16
if [ "$BF16" != 1 ]; then
  echo "SKIP bf16: this GPU has no native bfloat16 (train.py refuses it); the steps below use float32"
  step "bf16 refused in one line" bash -c "! $PY train.py ${COMMON[*]} run.name=refused run.device=cuda \
run.dtype=bfloat16 2>&1 | tee /dev/stderr | grep -q 'error: run.dtype=bfloat16 but this GPU has no bfloat16'"
  DTYPE=float32
fi

step "A*PO iteration on 1 GPU ($DTYPE)" "$PY" train.py "${COMMON[@]}" run.name=one run.device=cuda \
  "run.dtype=$DTYPE" training.total_iterations=1
step "summary.json says cuda + $DTYPE" summary one \
  "s['run/device'].startswith('cuda') and s['run/dtype'] == '$DTYPE' and s['run/world_size'] == 1"
step "resume on the GPU to iteration 2" "$PY" train.py "${COMMON[@]}" run.name=one run.device=cuda \
  "run.dtype=$DTYPE" training.total_iterations=2 --resume
step "resumed run reached iteration 2" summary one "s['iterations'] == 2"
cp -r "$OUT/runs/one" "$OUT/runs/one_cpu"
step "resume the GPU checkpoint on CPU" bash -c "$PY train.py ${COMMON[*]} run.name=one_cpu run.device=cpu \
run.dtype=$DTYPE training.total_iterations=3 --resume 2>&1 | tee /dev/stderr | grep -q 'another device type'"

if [ "$GPUS" -lt 2 ]; then
  echo "SKIP 2-process DDP/FSDP2 with nccl, DDP resume, DDP + torch.compile: only $GPUS GPU visible"
else
  for strategy in ddp fsdp; do
    step "2-process $strategy iteration with nccl" "${TORCHRUN[@]}" train.py "${COMMON[@]}" \
      "run.name=$strategy" run.device=cuda "run.dtype=$DTYPE" "distributed.strategy=$strategy" \
      training.total_iterations=1
    step "$strategy: summary says 2 processes on cuda" summary "$strategy" \
      "s['run/world_size'] == 2 and s['run/device'] == 'cuda:0'"
    step "$strategy: process group left at exit" no_pg_warning \
      "$OUT/2_process_${strategy}_iteration_with_nccl.log"
  done
  step "2-process ddp resume to iteration 2" "${TORCHRUN[@]}" train.py "${COMMON[@]}" run.name=ddp \
    run.device=cuda "run.dtype=$DTYPE" distributed.strategy=ddp training.total_iterations=2 --resume
  step "ddp resume reached iteration 2" summary ddp "s['iterations'] == 2"
  step "2-process ddp + torch.compile" "${TORCHRUN[@]}" train.py "${COMMON[@]}" run.name=ddp_compiled \
    run.device=cuda "run.dtype=$DTYPE" distributed.strategy=ddp run.compile=true training.total_iterations=1
fi

echo "logs and runs: $OUT"
[ "$FAILED" = 0 ] && echo "ALL PASSED" || echo "SOME STEPS FAILED"
exit "$FAILED"
