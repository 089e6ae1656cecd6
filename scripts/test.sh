#!/usr/bin/env bash
# Runs the whole test suite from the set-up .venv. Tests that need a system service (Slurm) start
# it themselves through hessflow/slurm/cluster.sh and stop it by PID afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # Parsl workers (process_worker_pool.py) must be on PATH
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/python -m pytest tests -ra --durations=15 "$@"
rc=$?
[ $rc -eq 5 ] && { echo "no tests collected"; exit 1; }
exit $rc
