"""A trained BP network as an ASE calculator: its forces are the finite differences of its
energy, and ASE's BFGS relaxes a molecule with it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ase = pytest.importorskip("ase")

from ase import Atoms  # noqa: E402
from ase.optimize import BFGS  # noqa: E402

from hessflow.ml.bp import BPConfig, load_energies, molecule_splits, train_bp  # noqa: E402
from hessflow.ml.bp.calculator import BPCalculator  # noqa: E402
from hessflow.ml.core.training import TrainConfig  # noqa: E402
from hessflow.units import BOHR_ANGSTROM, HARTREE_EV  # noqa: E402


@pytest.fixture(scope="module")
def run(force_store, tmp_path_factory):
    mols, level = load_energies(force_store)
    out = tmp_path_factory.mktemp("bp_calc") / "run"
    train_bp(mols, BPConfig(features="modes", hidden=(32, 32), force_weight=10.0),
             TrainConfig(epochs=40, batch_size=8, lr=3e-3, patience=100, seed=0, device="cpu"),
             out, molecule_splits(mols, 0.15, 0.15, seed=0), level)
    return out, mols


def _atoms(mol):
    return Atoms(numbers=mol["numbers"], positions=mol["coords_bohr"] * BOHR_ANGSTROM)


def test_forces_equal_finite_differences_of_the_energy(run):
    out, mols = run
    calc = BPCalculator(out)
    ethanol = next(m for m in mols if m["name"] == "m6/g3")  # a displaced geometry
    atoms = _atoms(ethanol)
    atoms.calc = calc
    f = atoms.get_forces()
    h = 1e-4  # Angstrom
    fd = np.zeros_like(f)
    for a in range(len(atoms)):
        for k in range(3):
            e = []
            for s in (1, -1):
                b = atoms.copy()
                b.positions[a, k] += s * h
                b.calc = calc
                e.append(b.get_potential_energy())
            fd[a, k] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(f).max() > 1e-2
    np.testing.assert_allclose(f, fd, atol=1e-6)
    # ASE's units: the network's Hartree and Hartree/Bohr, converted
    e, fb = calc.net.energy_and_forces(torch.as_tensor(ethanol["numbers"])[None],
                                       torch.as_tensor(ethanol["coords_bohr"])[None])
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]) * HARTREE_EV, rel=1e-12)
    np.testing.assert_allclose(f, fb[0].numpy() * HARTREE_EV / BOHR_ANGSTROM, rtol=1e-12)


def test_bfgs_relaxes_a_molecule(run):
    out, mols = run
    atoms = _atoms(next(m for m in mols if m["name"] == "m7/g4"))  # acetaldehyde, displaced
    atoms.calc = BPCalculator(out)
    e0, f0 = atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()
    opt = BFGS(atoms, logfile=None)
    assert opt.run(fmax=0.01, steps=300)
    f1 = np.linalg.norm(atoms.get_forces(), axis=1).max()
    assert f1 < 0.01 < f0 and atoms.get_potential_energy() < e0 - 1e-3


def test_periodic_cells_are_refused(run):
    from hessflow.errors import HessflowError
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[5, 5, 5], pbc=True)
    atoms.calc = BPCalculator(run[0])
    with pytest.raises(HessflowError, match="periodic"):
        atoms.get_potential_energy()
