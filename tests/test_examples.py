"""The workflows shipped in examples/ run as they are: 20 molecules with xTB and 3 with PySCF, on
local cores and on the real single-node Slurm (tests/conftest_slurm.py)."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hessflow.store import Store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(tmp_path, name, *extra):
    for f in EXAMPLES.iterdir():
        if f.suffix in (".yaml", ".smi"):
            shutil.copy(f, tmp_path / f.name)
    out = subprocess.run([sys.executable, "-m", "hessflow", *extra, str(tmp_path / name)],
                         capture_output=True, text=True, timeout=1800)
    return out


def test_xtb_20_molecules_on_local_cores(tmp_path):
    out = run_example(tmp_path, "xtb_local.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    st = Store(tmp_path / "xtb20.h5")
    assert len(st) == 20 and {st.status(k) for k in st.keys()} == {"done"}


def test_xtb_20_molecules_on_slurm(tmp_path, slurm_cluster):
    out = run_example(tmp_path, "slurm.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    st = Store(tmp_path / "slurm_xtb.h5")
    hosts = {r["provenance"] for r in st.records()}
    assert len(st) == 20 and all(slurm_cluster.node in h for h in hosts)


@pytest.mark.slow
def test_pyscf_3_molecules_on_slurm_with_monitoring(tmp_path, slurm_cluster):
    out = run_example(tmp_path, "slurm_pyscf.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=3 skipped=0 failed=0"
    recs = {r["name"]: r for r in Store(tmp_path / "slurm_pyscf.h5").records()}
    assert set(recs) == {"water", "ammonia", "hydrogen_cyanide"}
    assert len(recs["hydrogen_cyanide"]["frequencies_cm1"]) == 4
    assert all(r["beta_vec_au"] > 0 and r["alpha_iso_bohr3"] > 0 for r in recs.values())
    db = tmp_path / "runs" / "slurm_pyscf" / "parsl" / "monitoring.db"
    with sqlite3.connect(db) as con:
        (n,) = con.execute("select count(*) from task").fetchone()
    assert n >= 3 * 5  # every app is in Parsl's monitoring database
