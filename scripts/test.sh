#!/usr/bin/env bash
# Runs the whole test suite from the set-up .venv. Tests that need a system service (Slurm) start
# it themselves through hessflow/slurm/cluster.sh and stop it by PID afterwards.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"   # Parsl workers (process_worker_pool.py) must be on PATH
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# two pytest workers: many tests wait on Parsl start-up, Slurm scheduling or torch imports; the
# tests that share the Slurm cluster stay on one worker (tests/conftest_slurm.py)
.venv/bin/python -m pytest tests -ra --durations=20 -n 2 --dist loadgroup "$@"
rc=$?
[ $rc -eq 5 ] && { echo "no tests collected"; exit 1; }
exit $rc
