#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh machine for hessflow:
#   - as root: Debian packages (psi4 for the second engine, a single-node Slurm + munge for the
#     Slurm tests, Chromium for the report test); without root they are skipped and the tests that need them skip with a reason;
#   - .venv with the CPU build of torch 2.13.0 and hessflow itself (editable) with test/MPI extras
#     and, where it installs, the [peer] extra (torch_geometric, for --model schnet).
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES="psi4 slurmctld slurmd slurm-client munge chromium"
missing=""
for p in $DEB_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: NOT root, cannot install Debian packages:$missing (tests needing them will skip)"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.hessflow-setup
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q torch==2.13.0          # the local CPU build; never a bare 'torch'
  .venv/bin/pip install -q -e ".[test,mpi]"
  # the SchNet peer ([peer]: torch_geometric, pure Python, needs no other torch); optional: an
  # offline machine without it skips the SchNet tests
  .venv/bin/pip install -q -e ".[peer]" \
    || echo "setup: torch_geometric not installed (offline?): the SchNet tests will skip"
  # zennit (test-only: the reference LRP implementation) without its torchvision dependency:
  # PyPI's torchvision is built for the CUDA torch and does not import beside the CPU build;
  # tests/zennit_compat.py gives zennit the two torchvision classes it names at import time
  .venv/bin/pip install -q --no-deps zennit==0.5.1 && .venv/bin/pip install -q click Pillow
  touch "$stamp"
fi
echo "setup: ok ($(.venv/bin/python -c 'import hessflow; print("hessflow", hessflow.__version__)'))"
