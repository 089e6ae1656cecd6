"""PySCF engine end to end, and against analytic/independent results."""

import numpy as np
import pytest

from hessflow import api
from hessflow.qm.engines import get_engine
from hessflow.qm.harmonic import Harmonic
from hessflow.qm.level import Level
from hessflow.qm.assemble import compute_record
from hessflow.store import Store

from tests.stock import water

SMALL = Level(method="b3lyp", basis="6-31g*", grid=3)


@pytest.fixture(scope="module")
def pyscf():
    return get_engine("pyscf")


def test_analytic_hessian_equals_finite_differences_of_gradients(pyscf):
    """The analytic Hessian (reshaped to (3n, 3n)) against central differences of analytic
    gradients (step 1e-3 Bohr). HF, so that no DFT grid (whose response PySCF's gradients leave
    out) blurs the comparison."""
    from pyscf import gto, scf
    mol = water()
    h = pyscf.hessian(mol, Level(method="hf", basis="6-31g*", shells="5d7f"))  # gto.M: pure
    pm = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
               unit="Bohr", basis="6-31g*", verbose=0)
    step = 1e-3
    fd = np.zeros_like(h)
    for i in range(9):
        grads = []
        for s in (1, -1):
            x = mol.coords_bohr.copy().ravel()
            x[i] += s * step
            pm2 = pm.set_geom_(x.reshape(-1, 3), unit="Bohr", inplace=False)
            mf = scf.RHF(pm2)
            mf.conv_tol = 1e-11
            mf.kernel()
            grads.append(mf.nuc_grad_method().kernel().ravel())
        fd[:, i] = (grads[0] - grads[1]) / (2 * step)
    assert np.abs(h - fd).max() < 1e-5  # O(step^2) finite-difference error
    assert np.abs(h - h.T).max() < 1e-6


def test_finite_field_beta_equals_analytic_hf_beta(pyscf):
    """For HF the analytic beta is exact: finite differences of analytic alpha must reproduce it."""
    mol = water()
    hf = Level(method="hf", basis="6-31g*")
    fd = pyscf.hyperpolarizability(mol, hf)
    an = pyscf.hyperpolarizability_analytic(mol, hf)
    assert np.abs(fd - an).max() < 2e-3 * np.abs(an).max()
    assert abs(fd[2, 2, 2]) > 1.0  # water has a real beta along its C2 axis


def test_dft_finite_field_beta_differs_from_analytic_without_xc_kernel(pyscf):
    """PySCF's analytic DFT beta omits the XC-kernel term; hessflow's finite-field beta must not
    equal it (the known 13.03 vs 12.87 gap on water at 6-31G*) but must be self-consistent:
    dmu/dF of the finite-field dipole equals alpha, and d alpha/dF is beta."""
    mol = water()
    fd = pyscf.hyperpolarizability(mol, SMALL)
    an = pyscf.hyperpolarizability_analytic(mol, SMALL)
    rel = np.abs(fd - an).max() / np.abs(an).max()
    assert 1e-3 < rel < 0.2
    # beta from second differences of the field-dependent dipole (independent route)
    h = 0.002
    mus = []
    for s in (1, 0, -1):
        mf = pyscf._scf(mol, SMALL, field_au=np.array([0, 0, s * h]))
        mus.append(mf.dip_moment(unit="AU", verbose=0)[2])
    beta_zzz = (mus[0] - 2 * mus[1] + mus[2]) / h ** 2
    assert beta_zzz == pytest.approx(fd[2, 2, 2], rel=2e-2)


def test_imaginary_mode_policy_reoptimises_a_saddle_point(pyscf):
    """Planar NH3 (a saddle point) optimised under D3h stays planar; the policy displaces along the
    imaginary umbrella mode, re-optimises, and ends in a pyramidal minimum with no imaginary mode."""
    from hessflow.qm.molecules.molecule import Molecule
    r = 1.9
    coords = [[0, 0, 0]] + [[r * np.cos(a), r * np.sin(a), 0] for a in np.deg2rad([90, 210, 330])]
    nh3 = Molecule("planar_nh3", [7, 1, 1, 1], np.array(coords))
    lvl = Level(method="hf", basis="sto-3g")
    rec = compute_record(nh3, pyscf, lvl, ("opt", "freq"))
    assert rec["status"] == "done", rec["reason"]
    assert "reoptimized_imaginary" in rec["flags"]
    assert rec["n_imag"] == 0 and rec["frequencies_cm1"].min() > 0
    z = rec["coords_opt_bohr"][:, 2]
    assert np.ptp(z) > 0.3  # pyramidal
    flagged = compute_record(nh3, pyscf, lvl.replace(imag_policy="flag"), ("opt", "freq"))
    assert flagged["n_imag"] == 1 and "imaginary_remaining" in flagged["flags"]


@pytest.mark.slow
def test_water_and_formaldehyde_end_to_end(tmp_path):
    smi = tmp_path / "m.smi"
    smi.write_text("O water\nC=O formaldehyde\n")
    store = tmp_path / "s.h5"
    s = api.compute(smi, store, basis="6-31g*", progress=False,
                    level=api.make_level("pyscf", basis="6-31g*", grid=3))
    assert (s.done, s.failed) == (2, 0)
    st = Store(store)
    recs = {r["name"]: r for r in st.records()}
    w, f = recs["water"], recs["formaldehyde"]
    assert w["tasks"] == "opt,freq,polar,hyperpolar,sp" and w["status"] == "done"
    assert len(w["frequencies_cm1"]) == 3 and len(f["frequencies_cm1"]) == 6
    assert w["n_imag"] == 0 and f["n_imag"] == 0
    # harmonic analysis of the stored Hessian reproduces the stored frequencies
    h = Harmonic(f["masses_amu"], f["coords_opt_bohr"], f["hessian_hartree_bohr2"])
    assert np.allclose(h.frequencies_cm1, f["frequencies_cm1"])
    # B3LYP/6-31G* water: textbook values (bend ~1713, stretches ~3727/3849 cm-1)
    assert np.allclose(w["frequencies_cm1"], [1713, 3727, 3849], atol=15)
    assert 0.5 < w["dipole_debye"] / 2.1 < 1.2
    # alpha positive definite, beta_par and |beta_vec| finite
    assert np.all(np.linalg.eigvalsh(f["alpha_bohr3"]) > 0)
    assert np.isfinite(f["beta_par_au"]) and f["beta_vec_au"] > 0
    # the same request again computes nothing
    again = api.compute(smi, store, progress=False,
                        level=api.make_level("pyscf", basis="6-31g*", grid=3))
    assert (again.done, again.skipped) == (0, 2)


# -- Gaussian's 6D 7F shells (Cartesian d, pure f) ------------------------------------------
F_BASIS = "6-31g(2df,p)"  # 2 d shells and 1 f shell on O: every convention differs


def test_mixed_shells_span_cartesian_d_and_pure_f(pyscf):
    """6D 7F has 3 functions fewer than Cartesian per f shell (water: one, on O), so 3 fewer
    orbitals; variationally E(6d10f) < E(6d7f) < E(5d7f); the same restriction with pure d too
    reproduces PySCF's own spherical calculation, and without f shells 6D 7F is 6D 10F."""
    from pyscf import gto, scf
    from hessflow.qm.basis_library import pyscf_basis
    from hessflow.qm.engines.pyscf_common import mixed_shell_transform, use_mixed_shells
    mol = water()
    e = {}
    for shells in ("5d7f", "6d7f", "6d10f"):
        e[shells] = pyscf.single_point(mol, Level(method="hf", basis=F_BASIS, shells=shells))
        mf = pyscf._cache_mf
        n_ao = mf.mol.nao_nr()
        assert mf.mo_coeff.shape == (n_ao, {"5d7f": 36, "6d7f": 38, "6d10f": 41}[shells])
        assert n_ao == (36 if shells == "5d7f" else 41)
    assert e["6d10f"].energy_hartree < e["6d7f"].energy_hartree < e["5d7f"].energy_hartree
    pm = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
               unit="Bohr", basis=pyscf_basis(F_BASIS, mol.symbols), cart=True, verbose=0)
    mf = use_mixed_shells(scf.RHF(pm), mixed_shell_transform(pm, pure_from=2))
    assert mf.kernel() == pytest.approx(e["5d7f"].energy_hartree, abs=1e-9)
    no_f = [pyscf.single_point(mol, Level(method="hf", basis="6-31g*", shells=s)).energy_hartree
            for s in ("6d7f", "6d10f")]
    assert no_f[0] == pytest.approx(no_f[1], abs=1e-9)


def test_mixed_shell_derivatives_equal_finite_differences(pyscf):
    """HF in 6D 7F: the analytic gradient equals central differences of the energy, the analytic
    Hessian central differences of the gradient, and the analytic alpha central differences of
    the dipole in a field: the restricted orbital space is handled by every response code."""
    lvl = Level(method="hf", basis=F_BASIS, shells="6d7f", conv_tol=1e-11)
    mol, step = water(), 1e-3

    def gradient(m):
        return np.asarray(pyscf._scf(m, lvl).nuc_grad_method().kernel()).ravel()

    def shifted(i, s):
        x = mol.coords_bohr.copy().ravel()
        x[i] += s * step
        return mol.with_coords(x.reshape(-1, 3))

    fd_g = [(pyscf.single_point(shifted(i, 1), lvl).energy_hartree
             - pyscf.single_point(shifted(i, -1), lvl).energy_hartree) / (2 * step) for i in range(9)]
    assert np.abs(gradient(mol) - fd_g).max() < 1e-6
    h = pyscf.hessian(mol, lvl)
    fd_h = np.array([(gradient(shifted(i, 1)) - gradient(shifted(i, -1))) / (2 * step)
                     for i in range(9)])
    assert np.abs(h - fd_h).max() < 1e-5
    alpha = pyscf.polarizability(mol, lvl)
    f = 1e-3
    mu = [pyscf._scf(mol, lvl, field_au=[0, 0, s * f]).dip_moment(unit="AU", verbose=0)
          for s in (1, -1)]
    assert alpha[:, 2] == pytest.approx((mu[0] - mu[1]) / (2 * f), rel=1e-4, abs=1e-4)


def test_restricted_orbital_space_gives_pyscfs_own_dft_hessian_and_alpha():
    """The same restriction, with pure d as well, on a Cartesian B3LYP calculation gives PySCF's
    own spherical (cart=False) Hessian and alpha: the XC-kernel response in a restricted orbital
    space (fewer orbitals than AOs) is PySCF's, checked against PySCF's native code."""
    from pyscf import dft, gto
    from hessflow.qm.engines.pyscf_common import mixed_shell_transform, use_mixed_shells
    from hessflow.qm.engines.pyscf_engine import _import_prop
    mol = water()
    atoms = [(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)]

    def run(cart):
        pm = gto.M(atom=atoms, unit="Bohr", basis=F_BASIS, cart=cart, verbose=0)
        mf = dft.RKS(pm, xc="b3lyp")
        mf.grids.atom_grid, mf.conv_tol = (50, 194), 1e-11
        if cart:
            use_mixed_shells(mf, mixed_shell_transform(pm, pure_from=2))
        mf.kernel()
        alpha = _import_prop()[1].Polarizability(mf).polarizability()
        return mf.e_tot, mf.Hessian().kernel(), alpha
    (e0, h0, a0), (e1, h1, a1) = run(False), run(True)
    assert e1 == pytest.approx(e0, abs=1e-9)
    assert np.abs(h1 - h0).max() < 1e-6
    assert np.abs(a1 - a0).max() < 1e-6


def test_shell_settings_and_the_keys_of_earlier_stores():
    """``shells`` is checked; the earlier ``cartesian`` key still gives 6d10f/5d7f, and those two
    conventions keep the content keys they had (a store written before ``shells`` still
    matches); giving both is refused, naming the field."""
    from hessflow.errors import SettingsError
    assert Level().shells == "6d7f"
    assert Level.from_mapping({"cartesian": True}).shells == "6d10f"
    assert Level.from_mapping({"cartesian": False}).shells == "5d7f"
    assert Level(shells="5d7f").key_dict()["cartesian"] is False
    assert "shells" not in Level(shells="6d10f").key_dict()
    assert Level().key_dict()["shells"] == "6d7f" and "cartesian" not in Level().key_dict()
    with pytest.raises(SettingsError, match=r"qm\.level\.cartesian: give shells or cartesian"):
        Level.from_mapping({"cartesian": True, "shells": "6d10f"}, where="qm.level")
    with pytest.raises(SettingsError, match=r"shells.*6d7f \| 5d7f \| 6d10f"):
        Level.from_mapping({"shells": "6d"})


@pytest.mark.parametrize("lvl", [Level(method="hf", basis="6-31g", conv_tol=1e-11),
                                 Level(method="b3lyp", basis="sto-3g", grid=3, conv_tol=1e-11)],
                         ids=["rhf", "rks"])
def test_gradient_equals_finite_differences_of_the_energy(pyscf, lvl):
    """The analytic gradient against central differences (1e-3 Bohr) of the SCF energy, away
    from the minimum. PySCF's DFT gradient leaves out the grid's response, hence the looser
    DFT tolerance."""
    from tests.stock import distorted_water, fd_gradient
    mol = distorted_water()
    g = pyscf.gradient(mol, lvl)
    fd = fd_gradient(lambda m: pyscf.single_point(m, lvl).energy_hartree, mol)
    assert g.shape == (3, 3) and np.abs(g).max() > 1e-2
    assert np.abs(g - fd).max() < (2e-6 if lvl.is_hf else 1e-4)
    assert np.abs(g.sum(0)).max() < (1e-7 if lvl.is_hf else 1e-4)  # translation invariance


def test_gradient_of_an_open_shell(pyscf):
    """UHF (OH radical): the gradient of each engine face, against finite differences."""
    from hessflow.qm.molecules.molecule import Molecule
    from tests.stock import fd_gradient
    oh = Molecule("OH", [8, 1], np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 1.95]]), multiplicity=2)
    lvl = Level(method="hf", basis="6-31g", conv_tol=1e-11)
    g = pyscf.gradient(oh, lvl)
    fd = fd_gradient(lambda m: pyscf.single_point(m, lvl).energy_hartree, oh)
    assert np.abs(g).max() > 1e-2 and np.abs(g - fd).max() < 2e-6
