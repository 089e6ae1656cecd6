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


def test_smiles_to_trained_model_in_one_config_on_local_cores(tmp_path):
    out = run_example(tmp_path, "smiles_to_model.yaml", "run", "--no-progress")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "done=20 skipped=0 failed=0"
    run = tmp_path / "runs" / "smiles_to_model"
    assert "train: weave on zpve, 2 rank(s)" in out.stderr
    import h5py
    import json
    with h5py.File(run / "augmented.h5", "r") as f:
        assert len(f) == 20 and f.attrs["n_augment"] == 10
    m = json.loads((run / "train" / "metrics.json").read_text())
    assert m["ranks"] == 2 and (run / "train" / "parity.png").exists()
    assert m["train"]["n"] + m["val"]["n"] + m["test"]["n"] == 20
    # the explain stage: relevance per weave feature type on every molecule, and the report
    assert "explain: epsilon LRP on the all split" in out.stderr
    ex = json.loads((run / "train" / "explain" / "explain.json").read_text())
    assert ex["n_samples"] == 20 and ex["rule"] == "epsilon"
    assert (run / "train" / "explain" / "relevance_bars.png").exists()
    assert "<img" in (run / "train" / "report" / "index.html").read_text()


def test_training_stage_runs_on_slurm_mpi_executor(tmp_path, slurm_cluster):
    import json
    import yaml
    for f in EXAMPLES.iterdir():
        if f.suffix == ".smi":
            shutil.copy(f, tmp_path / f.name)
    cfg = {"inputs": ["xtb20.smi"], "store": "s.h5", "limit": 10,
           "qm": {"engine": "xtb", "tasks": ["opt", "freq"]},
           "executor": {"kind": "slurm", "partition": "debug", "walltime": "00:20:00",
                        "cores_per_node": 2, "workers": 2, "max_idletime": 5,
                        "mpi": {"ranks": 2, "walltime": "00:20:00"}},
           "stages": {"train": {"target": "zpve", "model": "mlp", "ranks": 2, "epochs": 5,
                                "batch_size": 8, "augment": "quantum:300:5"},
                      "bp": {"features": "onehot", "ranks": 2, "epochs": 5, "batch_size": 4,
                             "val": 0.2, "test": 0.2}}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "hessflow", "run", str(tmp_path / "wf.yaml"),
                          "--no-progress"], capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    train = tmp_path / "runs" / "wf" / "train"
    assert "srun -n 2 --mpi=pmi2" in (train / "train.err").read_text()  # Parsl's MPI block
    assert json.loads((train / "metrics.json").read_text())["ranks"] == 2
    bp = tmp_path / "runs" / "wf" / "bp"  # a command stage on the same MPI executor
    assert "bp:" in out.stdout + out.stderr and (bp / "metrics.json").exists(), out.stderr[-3000:]
