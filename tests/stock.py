"""Stock molecules, paths and model Hessians shared by the test modules (import, not fixtures).

The fixtures built on them (a small GFN2-xTB store made once per session, the QM9 subset) are in
tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hessflow.units import ANGSTROM_BOHR

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHARED_QM9 = REPO.parent / "shared" / "data" / "qm9_subset.csv"
#: the small DDP training job launched by mpiexec/srun in the training tests
DDP_JOB = Path(__file__).resolve().parent / "ml" / "core" / "_ddp_job.py"

WATER_ANGSTROM = np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])


def water(name="water"):
    """Water near its B3LYP geometry (coordinates in Bohr)."""
    from hessflow.qm.molecules.molecule import Molecule
    return Molecule(name, [8, 1, 1], WATER_ANGSTROM * ANGSTROM_BOHR)


def model_hessian(masses, coords, lam, seed=0):
    """Cartesian Hessian whose vibrational mass-weighted eigenvalues are exactly ``lam``."""
    from hessflow.qm.harmonic import rigid_body_vectors
    d = rigid_body_vectors(masses, coords)
    n3 = 3 * len(masses)
    proj = np.eye(n3) - d.T @ d
    w, v = np.linalg.eigh(proj)
    basis = v[:, w > 0.5]
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(basis.shape[1],) * 2))
    modes = basis @ q
    hmw = modes @ np.diag(lam) @ modes.T
    s = np.sqrt(np.repeat(masses, 3))
    return hmw * s[:, None] * s[None, :]


def fd_gradient(energy, mol, step=1e-3):
    """Central finite differences (step ``step`` Bohr) of ``energy(molecule) -> Hartree`` on
    every Cartesian coordinate of ``mol``: the (n, 3) gradient in Hartree/Bohr."""
    x0 = np.asarray(mol.coords_bohr, float)
    g = np.zeros_like(x0)
    for i in range(x0.shape[0]):
        for k in range(3):
            e = []
            for s in (1.0, -1.0):
                x = x0.copy()
                x[i, k] += s * step
                e.append(energy(mol.with_coords(x)))
            g[i, k] = (e[0] - e[1]) / (2 * step)
    return g


def distorted_water(name="water"):
    """Water away from its minimum (gradient components of order 0.05 Hartree/Bohr)."""
    from hessflow.qm.molecules.molecule import Molecule
    return Molecule(name, [8, 1, 1], np.array([[0.0, 0.05, 0.10], [0.0, 0.86, -0.50],
                                               [0.1, -0.70, -0.40]]) * ANGSTROM_BOHR)
