"""The electronic spatial extent <R^2> (QM9's r2) of the PySCF engine's single point, in records.

Reference: a direct PySCF SCF of the same molecule, its density integrated on a fine DFT grid,
int rho(r) |r - O|^2 dr about the centre of nuclear charge O (no r^2 integrals involved)."""

import numpy as np
import pytest

pytest.importorskip("pyscf")

from hessflow import api  # noqa: E402
from hessflow.qm.engines import get_engine  # noqa: E402
from hessflow.qm.engines.pyscf_extras import electronic_spatial_extent  # noqa: E402
from hessflow.qm.level import Level  # noqa: E402
from hessflow.store import Store  # noqa: E402

from tests.stock import water  # noqa: E402


def _grid_r2(numbers, coords_bohr, basis="6-31g", charge=0, spin=0):
    """<R^2> by quadrature of a direct PySCF HF density about the centre of nuclear charge."""
    from pyscf import dft, gto, scf
    mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(numbers, coords_bohr)], unit="Bohr",
                basis=basis, charge=charge, spin=spin, verbose=0)
    mf = (scf.RHF(mol) if spin == 0 else scf.UHF(mol)).set(conv_tol=1e-11)
    mf.kernel()
    dm = mf.make_rdm1()
    dm = dm if dm.ndim == 2 else dm.sum(0)
    grids = dft.gen_grid.Grids(mol)
    grids.level = 6
    grids.build()
    ao = dft.numint.eval_ao(mol, grids.coords)
    rho = dft.numint.eval_rho(mol, ao, dm)
    z = mol.atom_charges()
    origin = (z[:, None] * mol.atom_coords()).sum(0) / z.sum()
    r2 = ((grids.coords - origin) ** 2).sum(1)
    assert float(grids.weights @ rho) == pytest.approx(mol.nelectron, abs=1e-5)
    return float(grids.weights @ (rho * r2)), mf


def test_single_point_r2_is_the_density_second_moment():
    mol = water()
    sp = get_engine("pyscf").single_point(mol, Level(method="hf", basis="6-31g", threads=1))
    ref, mf = _grid_r2(mol.numbers, mol.coords_bohr)
    assert sp.energy_hartree == pytest.approx(mf.e_tot, abs=1e-8)
    assert sp.r2_bohr2 == pytest.approx(ref, rel=1e-5)
    assert 15 < sp.r2_bohr2 < 25  # water's <R^2> at any reasonable level (QM9: 19.0 Bohr^2)
    # the origin matters: about any other point the second moment is larger by the shift term
    shifted = electronic_spatial_extent(mf.mol, mf.make_rdm1(), origin_bohr=[1.0, 0.0, 0.0])
    assert shifted > sp.r2_bohr2


def test_open_shell_r2_sums_both_spins():
    from hessflow.qm.molecules.molecule import Molecule
    oh = Molecule("oh", [8, 1], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.83]]), multiplicity=2)
    sp = get_engine("pyscf").single_point(oh, Level(method="hf", basis="6-31g", threads=1))
    ref, _ = _grid_r2(oh.numbers, oh.coords_bohr, spin=1)
    assert sp.r2_bohr2 == pytest.approx(ref, rel=1e-5)


def test_records_hold_r2_from_the_single_point_and_export_it(tmp_path):
    """Through hessflow compute (the task path the workflow shares) into the store, and out as
    QM9's r2 and the csv's r2_bohr2."""
    import csv
    import io
    summary = api.compute(["O"], tmp_path / "s.h5", engine="pyscf", method="hf", basis="6-31g",
                          tasks="polar", progress=False,
                          level=api.make_level("pyscf", "hf", "6-31g", threads=1))
    assert summary.done == 1
    with Store(tmp_path / "s.h5") as st:
        rec = next(iter(st.records()))
    ref, _ = _grid_r2(rec["numbers"], rec["coords_input_bohr"])
    assert rec["r2_bohr2"] == pytest.approx(ref, rel=1e-5)
    row = next(csv.DictReader(io.StringIO(api.export(tmp_path / "s.h5", "csv",
                                                     atom_energies=False))))
    assert float(row["r2_bohr2"]) == rec["r2_bohr2"]
    qm9 = next(csv.DictReader(io.StringIO(api.export(tmp_path / "s.h5", "qm9-csv"))))
    assert float(qm9["r2"]) == rec["r2_bohr2"]
    assert qm9["u0_atom"] == ""  # no frequencies: no thermochemistry, no atomization energies
