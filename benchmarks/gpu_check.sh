#!/usr/bin/env bash
# The GPU check (issue #14): on a machine with an NVIDIA GPU, install the [gpu] extra, run the
# QM9 protocol (opt, freq, polar, hyperpolar at B3LYP/6-31G(2df,p)) on water, methane and
# ethanol on the GPU (GPU4PySCF) and on the CPU (PySCF, all cores), check that they agree
# (energy <= 1e-6 Eh, frequencies <= 1 cm^-1, alpha <= 0.1 %) and write the timings per stage to
# benchmarks/results/gpu_check.json (and docs/gpu.md). Meant to take under ~8 minutes.
#
#   bash benchmarks/gpu_check.sh                       # the check
#   bash benchmarks/gpu_check.sh --molecules water     # options go to benchmarks/gpu_check.py
#
# Environment:
#   HESSFLOW_VENV=DIR              virtualenv to use or create (default .venv)
#   HESSFLOW_WHEELHOUSE=DIR        install from wheels in DIR only (pip --no-index --find-links):
#                                  for nodes without a package index (pip download them elsewhere)
#   HESSFLOW_GPU_CHECK_NO_INSTALL=1  use the environment as it is
#   HESSFLOW_GPU_CHECK_TOTAL_S=450 seconds for the whole script: no molecule starts after that
#   HESSFLOW_GPU_CHECK_BASIS=sto-3g  a tiny basis, to try the plumbing (results: gpu_check_sto-3g.json)
# Exit status: 0 checks pass; 1 a check or stage failed; 2 no usable GPU; 3 cannot install.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
say() { echo "gpu_check.sh: $*"; }

if ! command -v nvidia-smi >/dev/null 2>&1; then
  say "no nvidia-smi on PATH: no NVIDIA driver on this machine, nothing to check on a GPU"
  exit 2
fi
if ! nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader; then
  say "nvidia-smi lists no GPU"
  exit 2
fi

VENV=${HESSFLOW_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  say "no virtualenv at $VENV: creating one"
  python3 -m venv "$VENV" || { say "cannot create a virtualenv at $VENV"; exit 3; }
fi
PY=$VENV/bin/python

if [ "${HESSFLOW_GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
  pip_src=()
  if [ -n "${HESSFLOW_WHEELHOUSE:-}" ]; then
    pip_src=(--no-index --find-links "$HESSFLOW_WHEELHOUSE")
    say "installing hessflow[gpu] from the wheels in $HESSFLOW_WHEELHOUSE only"
  else
    say "installing hessflow[gpu] from the package index pip is configured for:"
    "$PY" -m pip config list 2>/dev/null | sed 's/^/    /'
    [ -n "${PIP_INDEX_URL:-}" ] && echo "    PIP_INDEX_URL=$PIP_INDEX_URL"
  fi
  log=$(mktemp)
  if ! "$PY" -m pip install --timeout 30 --retries 1 "${pip_src[@]}" -e ".[gpu]" >"$log" 2>&1; then
    { grep -m 3 -E "^ERROR|No matching distribution|Could not (find|fetch|connect)" "$log" \
        || tail -n 5 "$log"; } | sed 's/^/    pip: /'
    say "pip could not install the [gpu] extra here (no reachable package index or wheel for it?)"
    if "$PY" -c "import gpu4pyscf, hessflow" >/dev/null 2>&1; then
      say "gpu4pyscf and hessflow are importable already: going on with what is installed"
    else
      say "and gpu4pyscf is not installed: cannot run the GPU check on this machine"
      exit 3
    fi
  fi
  rm -f "$log"
fi

why=$("$PY" -c "from hessflow.qm.engines.gpu4pyscf_engine import cuda_unavailable_reason as r; print(r() or '')" 2>&1)
if [ -n "$why" ]; then
  say "GPU4PySCF is not usable here: $why"
  exit 2
fi
"$PY" -c "import gpu4pyscf, cupy; print('gpu_check.sh: gpu4pyscf', gpu4pyscf.__version__, '| cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"

total=${HESSFLOW_GPU_CHECK_TOTAL_S:-450}
left=$(( total - ($(date +%s) - t0) ))
[ "$left" -lt 60 ] && left=60
threads=$(nproc)
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
say "running the check: $threads CPU threads, no molecule starts after ${left} s"
"$PY" -m benchmarks.gpu_check --threads "$threads" --budget-s "$left" --doc "$@"
rc=$?
say "done in $(( $(date +%s) - t0 )) s, exit $rc"
exit $rc
