"""Level.response_grid and Level.density_fit reach PySCF (hessflow.qm.engines.pyscf_response and
the PySCF engine's Hessian / alpha / beta), against PySCF run directly."""

import numpy as np
import pytest

from hessflow.errors import SettingsError
from hessflow.qm.engines import get_engine
from hessflow.qm.engines.pyscf_response import build_grids, response_grids
from hessflow.qm.harmonic import Harmonic
from hessflow.qm.level import Level

from tests.stock import water

# B3LYP/6-31G on water, grid level 3, the response on the SCF grid: seconds per Hessian
SMALL = Level(method="b3lyp", basis="6-31g", grid=3, shells="5d7f", response_grid="scf")


@pytest.fixture(scope="module")
def pyscf():
    return get_engine("pyscf")


@pytest.fixture(scope="module")
def today(pyscf):
    """Hessian and alpha of the route before the setting (the SCF grid everywhere)."""
    mol = water()
    return {"hessian": pyscf.hessian(mol, SMALL), "alpha": pyscf.polarizability(mol, SMALL)}


def _freqs(h):
    mol = water()
    return Harmonic(mol.masses_amu, mol.coords_bohr, h).frequencies_cm1


def test_response_grid_equal_to_the_scf_grid_gives_todays_numbers(pyscf, today):
    """Grid level 3 as the response grid is the SCF grid: the same Hessian and alpha to
    round-off (a fresh grid object with the same points), and the cached mean field keeps
    its own grid object afterwards."""
    mol = water()
    lvl = SMALL.replace(response_grid=3)
    h = pyscf.hessian(mol, lvl)
    a = pyscf.polarizability(mol, lvl)
    assert np.abs(h - today["hessian"]).max() < 1e-9
    assert np.abs(a - today["alpha"]).max() < 1e-8
    mf = pyscf._scf(mol, lvl)
    assert mf.grids.level == 3 and mf.grids.weights.size > 0


def test_coarse_response_grid_changes_the_cpks_only_and_little(pyscf, today):
    """SG-1 for the response: the Hessian and alpha change (so the setting reaches PySCF) but
    by little on water at B3LYP/6-31G (frequencies < 1 cm^-1, alpha < 0.5 %); and the result
    equals PySCF's own Hessian with ``hessobj.grids`` = SCF grid and ``mf.grids`` = SG-1 during
    the CPHF, i.e. the explicit XC terms stayed on the SCF grid."""
    mol = water()
    lvl = SMALL.replace(response_grid="sg1")
    h = pyscf.hessian(mol, lvl)
    a = pyscf.polarizability(mol, lvl)
    assert np.abs(h - today["hessian"]).max() > 1e-7
    assert np.abs(a - today["alpha"]).max() > 1e-6
    assert np.abs(_freqs(h) - _freqs(today["hessian"])).max() < 1.0
    assert np.abs(a - today["alpha"]).max() < 5e-3 * np.abs(today["alpha"]).max()

    mf = pyscf._scf(mol, SMALL)  # PySCF by hand: the two grids put where the docs say
    hobj = mf.Hessian()
    hobj.grids = mf.grids
    scf_grids = mf.grids
    mf.grids = build_grids(mf.mol, "sg1")
    try:
        direct = hobj.kernel()
    finally:
        mf.grids = scf_grids
    n = mol.natoms
    assert np.abs(np.asarray(direct).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) - h).max() < 1e-9

    everything_sg1 = mf.Hessian()  # both terms on SG-1 is a different (worse) Hessian
    mf.grids = build_grids(mf.mol, "sg1")
    try:
        both = np.asarray(everything_sg1.kernel()).transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    finally:
        mf.grids = scf_grids
    assert np.abs(both - h).max() > 1e-7


def test_response_grid_reaches_finite_field_beta(pyscf):
    """beta is the finite field of alpha: on SG-1 it changes, by little."""
    mol = water()
    b0 = pyscf.hyperpolarizability(mol, SMALL)
    b1 = pyscf.hyperpolarizability(mol, SMALL.replace(response_grid="sg1"))
    assert np.abs(b1 - b0).max() > 1e-6
    assert np.abs(b1 - b0).max() < 0.05 * np.abs(b0).max()


def test_response_grids_context_is_a_no_op_for_hf_and_none(pyscf):
    mol = water()
    mf = pyscf._scf(mol, Level(method="hf", basis="sto-3g"))
    with response_grids(mf, "sg1") as g:
        assert g is None
    mf = pyscf._scf(mol, SMALL)
    saved = mf.grids
    with response_grids(mf, None) as g:
        assert g is None and mf.grids is saved
    with response_grids(mf, "50,110") as g:
        assert mf.grids is g
        # "R,S" is the grid the SCF gets from Level.grid = "R,S" (unpruned R x S per atom)
        scf_rs = pyscf._scf(mol, SMALL.replace(grid="50,110")).grids
        assert np.array_equal(g.coords, scf_rs.coords) and np.array_equal(g.weights,
                                                                           scf_rs.weights)
    assert mf.grids is saved


def test_density_fit_is_pyscfs_density_fitted_hessian(pyscf):
    """``density_fit`` gives PySCF's DF-RKS Hessian for the same auxiliary basis."""
    from pyscf import dft, gto
    mol = water()
    lvl = SMALL.replace(density_fit="def2-universal-jkfit")
    h = pyscf.hessian(mol, lvl)
    pm = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
               unit="Bohr", basis="6-31g", verbose=0)
    mf = dft.RKS(pm).density_fit(auxbasis="def2-universal-jkfit")
    mf.xc, mf.grids.level, mf.conv_tol = "b3lyp", 3, 1e-10
    mf.kernel()
    direct = np.asarray(mf.Hessian().kernel()).transpose(0, 2, 1, 3).reshape(9, 9)
    assert np.abs(h - direct).max() < 1e-6
    exact = pyscf.hessian(mol, SMALL)
    assert 1e-7 < np.abs(h - exact).max() < 1e-3  # DF is an approximation, a good one


def test_settings_are_in_the_content_key_unless_the_route_before():
    """The SCF grid (None or 'scf') and exact integrals leave the key as it was before these
    settings (stores of that route keep their keys); the default, SG-1, is keyed."""
    before = Level(response_grid=None).key_dict()
    assert "response_grid" not in before and "density_fit" not in before
    assert Level(response_grid="scf").key_dict() == before
    assert Level().response_grid == "sg1" and Level().key_dict()["response_grid"] == "sg1"
    assert {k: v for k, v in Level().key_dict().items() if k != "response_grid"} == before
    assert Level(response_grid="SG1").key_dict()["response_grid"] == "sg1"
    assert Level(response_grid=(50, 194)).key_dict()["response_grid"] == "50,194"
    assert Level(response_grid="3").key_dict()["response_grid"] == 3
    assert Level(density_fit="def2-universal-jkfit").key_dict()["density_fit"] == \
        "def2-universal-jkfit"
    assert Level(response_grid=3).key_dict() != Level(response_grid=2).key_dict()


@pytest.mark.parametrize("value", [10, -1, "fine", True, "0,5", "50,", 2.5, [1, 2, 3]])
def test_bad_response_grid_is_a_one_line_error(value):
    with pytest.raises(SettingsError) as err:
        Level.from_mapping({"response_grid": value})
    msg = str(err.value)
    assert msg.startswith("level.response_grid: ") and "\n" not in msg and "is not a grid" in msg


def test_gpu_engine_takes_sg1_and_refuses_other_response_grids():
    """GPU4PySCF's Hessian has one secondary CPHF grid (SG-1 or the SCF grid): response_grid
    'sg1' maps to it, any other value is a one-line error before anything touches the GPU."""
    from hessflow.qm.engines.gpu4pyscf_engine import Gpu4pyscfEngine
    with pytest.raises(SettingsError, match=r"^level.response_grid: 3: the gpu4pyscf engine"):
        Gpu4pyscfEngine()._new_mf(None, Level(response_grid=3), True)
    with pytest.raises(SettingsError, match=r"^level.density_fit: give density_fit or"):
        Gpu4pyscfEngine(auxbasis="def2-universal-jkfit")._new_mf(
            None, Level(density_fit="def2-universal-jkfit"), True)
