#!/usr/bin/env bash
# One device call (H100/H200), at most about 8 minutes, in priority order; each step has
# its own time limit so a slow one cannot starve the rest. Results go to $OUT (or ./gpu-out).
#   run: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 JAXMEM_PROGRESS=0 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
log() { echo "== $(date +%T) $*" | tee -a "$OUT/summary.txt"; }
step() {  # step SECONDS NAME CMD...: run CMD with a limit, its output in $OUT/NAME.log
  local limit=$1 name=$2; shift 2
  log "$name (limit ${limit}s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  tail -n 12 "$OUT/$name.log" | tee -a "$OUT/summary.txt"; log "$name rc=$rc"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
$PY -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$OUT/device.txt"
# 1. one program vs a loop of single runs, and the GPU's element-steps/s against its floor
step 120 bench_train $PY benchmarks/bench_train.py --quick --json "$OUT/bench_train.json"
step 60 bench_fused $PY benchmarks/bench_fused.py --steps 20 --repeats 3 --json "$OUT/bench_fused.json"
# 2. the parity-grid paper preset (1,125 models, 20,000 steps; target < 2 min)
step 180 parity_paper $PY -m jaxmem.cli reproduce parity-grid --preset paper --out "$OUT/parity-paper"
cp "$OUT/parity-paper/summary.json" "$OUT/parity_paper_summary.json" 2>/dev/null
# 3. the smdd paper preset: its largest bucket timed, the whole preset extrapolated (target < 10 min)
step 120 smdd_paper $PY benchmarks/bench_smdd_paper.py --steps 2000 --json "$OUT/bench_smdd_paper.json"
# 4. the PyTorch instance-axis peer on the same GPU
step 60 bench_peers $PY benchmarks/bench_peers.py --quick --json "$OUT/bench_peers.json"
log "done"
