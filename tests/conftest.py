"""Shared fixtures. Real engines, small molecules."""

pytest_plugins = ["tests.conftest_slurm", "tests.conftest_multinode"]

import os
from pathlib import Path

import numpy as np
import pytest

from hessflow.units import ANGSTROM_BOHR

REPO = Path(__file__).resolve().parent.parent
SHARED_QM9 = REPO.parent / "shared" / "data" / "qm9_subset.csv"


def water(name="water"):
    from hessflow.qm.molecules.molecule import Molecule
    return Molecule(name, [8, 1, 1], np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692],
                                                  [0, -0.7572, -0.4692]]) * ANGSTROM_BOHR)


@pytest.fixture
def qm9_csv():
    if not SHARED_QM9.exists():
        pytest.skip(f"QM9 subset not present at {SHARED_QM9}")
    return SHARED_QM9


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
