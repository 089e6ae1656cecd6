"""Shared fixtures. Real engines, small molecules (stock molecules and paths: tests/stock.py)."""

pytest_plugins = ["tests.conftest_slurm", "tests.conftest_multinode"]

import os
import shutil
import subprocess
import sys

import pytest

from tests.stock import EXAMPLES, SHARED_QM9


@pytest.fixture
def qm9_csv():
    if not SHARED_QM9.exists():
        pytest.skip(f"QM9 subset not present at {SHARED_QM9}")
    return SHARED_QM9


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))


@pytest.fixture(scope="session")
def xtb20_store(tmp_path_factory):
    """The 20 molecules of examples/xtb20.smi through ``hessflow run`` (GFN2-xTB: opt, freq,
    polar on 2 local workers), made once per session (per xdist worker) and shared by the
    training, report and explain tests. Read-only for its users: copy it to change it."""
    pytest.importorskip("tblite")
    d = tmp_path_factory.mktemp("xtb20")
    shutil.copy(EXAMPLES / "xtb20.smi", d)
    (d / "wf.yaml").write_text("inputs: [xtb20.smi]\nstore: x.h5\n"
                               "qm: {engine: xtb, tasks: [opt, freq, polar]}\n"
                               "executor: {kind: threads, workers: 2}\n")
    out = subprocess.run([sys.executable, "-m", "hessflow", "run", str(d / "wf.yaml"),
                          "--no-progress"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return d / "x.h5"
