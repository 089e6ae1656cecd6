"""Tests of the xtb engine (GFN2-xTB through tblite, optimisation through geomeTRIC).

Physics checks, each of which a wrong implementation fails: converged optimisations meet the
GAU gradient thresholds; the finite-difference Hessian is symmetric before symmetrisation, is
translation-invariant and rotation-covariant, and agrees with independent energy second
differences; alpha is symmetric, positive-definite and agrees with -d2E/dF2; beta is odd under
inversion, zero for centrosymmetric molecules and permutation-symmetric (static limit).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tblite.interface")
pytest.importorskip("geometric")

from hessflow.errors import EngineError  # noqa: E402
from hessflow.qm.engines import get_engine  # noqa: E402
from hessflow.qm.engines import xtb_engine  # noqa: E402
from hessflow.qm.level import Level  # noqa: E402
from hessflow.qm.molecules.molecule import Molecule  # noqa: E402
from hessflow.units import AMU_ME, ANGSTROM_BOHR, HARTREE_WAVENUMBER  # noqa: E402

# geomeTRIC's "GAU" set (Gaussian defaults): per-atom Cartesian gradient norms, Hartree/Bohr
GAU_GMAX = 4.5e-4
GAU_GRMS = 3.0e-4


def _water(coords_ang=((0.0, 0.0, -0.07), (0.0, 0.80, 0.50), (0.0, -0.72, 0.55))):
    """Water, deliberately distorted (C1-ish start: unequal O-H bonds and a wide angle)."""
    return Molecule("water", [8, 1, 1], np.array(coords_ang) * ANGSTROM_BOHR)


def _formaldehyde():
    return Molecule("formaldehyde", [6, 8, 1, 1],
                    np.array([[0, 0, 0], [0, 0, 1.25], [0, 0.98, -0.55], [0, -0.90, -0.62]])
                    * ANGSTROM_BOHR)


def _co2():
    return Molecule("co2", [6, 8, 8], np.array([[0, 0, 0], [0, 0, 1.17], [0, 0, -1.17]])
                    * ANGSTROM_BOHR)


def _ethylene():
    return Molecule("ethylene", [6, 6, 1, 1, 1, 1],
                    np.array([[0, 0, 0.667], [0, 0, -0.667], [0, 0.923, 1.238],
                              [0, -0.923, 1.238], [0, 0.923, -1.238], [0, -0.923, -1.238]])
                    * ANGSTROM_BOHR)


@pytest.fixture(scope="module")
def eng():
    return get_engine("xtb")


@pytest.fixture(scope="module")
def level():
    return Level()   # default Level (method "b3lyp"): the xtb engine runs GFN2-xTB regardless


@pytest.fixture(scope="module")
def optimized(eng, level):
    """{name: (start Molecule, OptResult)} for water and formaldehyde."""
    out = {}
    for mol in (_water(), _formaldehyde()):
        out[mol.name] = (mol, eng.optimize(mol, level))
    return out


def _opt_mol(optimized, name):
    mol, res = optimized[name]
    return mol.with_coords(res.coords_bohr)


def _energy(eng, mol, level, coords=None, field=None):
    return float(eng._run(mol, level, coords=coords, field=field).get("energy"))


# ---------------------------------------------------------------------------- identity

def test_registry_version_and_key(eng, level):
    import importlib.metadata

    assert isinstance(eng, xtb_engine.XtbEngine) and eng.name == "xtb"
    assert eng.why_not_found() is None
    assert eng.version() == importlib.metadata.version("tblite")
    key = eng.level_for_key(level)
    assert set(key) == {"method", "opt_convergence", "field_step_au", "hessian_step_bohr",
                        "imag_policy", "imag_tol_cm1"}
    assert key["method"] == "gfn2-xtb" and key["hessian_step_bohr"] == 0.005
    # basis, grid and non-key knobs do not change xTB numbers, so they do not change the key
    assert eng.level_for_key(level.replace(basis="sto-3g", grid=9, threads=2)) == key
    for m in ("gfn2-xtb", "GFN2", "xtb"):
        assert eng.level_for_key(Level(method=m)) == key
    assert eng.level_for_key(Level(method="gfn1-xtb"))["method"] == "gfn1-xtb"
    assert eng.level_for_key(level.replace(field_step_au=2e-3)) != key


# ---------------------------------------------------------------------------- single point

def test_single_point_water(eng, level, optimized, capfd):
    w = _opt_mol(optimized, "water")
    sp = eng.single_point(w, level)
    assert capfd.readouterr().out == ""                 # tblite is silent (verbosity 0)
    # GFN2-xTB total energy of optimised water (xtb's own example value: -5.070544 Eh)
    assert sp.energy_hartree == pytest.approx(-5.0705444, abs=2e-6)
    assert sp.dipole_au.shape == (3,)
    # the dipole lies along the C2 axis, pointing from O to the H's midpoint ((-) -> (+)
    # is from O to H in the physics convention mu = sum q r)
    x = w.coords_bohr
    axis = 0.5 * (x[1] + x[2]) - x[0]
    axis /= np.linalg.norm(axis)
    mu = sp.dipole_au
    # (the optimised geometry is C2v only to within the GAU criteria, so 1e-3 relative)
    assert np.linalg.norm(mu - (mu @ axis) * axis) < 1e-3 * np.linalg.norm(mu)
    assert 0.6 < mu @ axis < 1.1                          # e*Bohr (1.5 to 2.8 Debye)
    assert sp.homo_hartree < 0 < sp.lumo_hartree
    assert 0.3 < sp.lumo_hartree - sp.homo_hartree < 1.0
    # GFN1-xTB is a different Hamiltonian: different energy
    assert abs(eng.single_point(w, Level(method="gfn1")).energy_hartree - sp.energy_hartree) > 0.1


def test_open_shell_frontier_orbitals(eng, level):
    w = _water()
    cation = Molecule("water+", w.numbers, w.coords_bohr, charge=1, multiplicity=2)
    sp = eng.single_point(cation, level)
    assert np.isfinite(sp.energy_hartree) and sp.homo_hartree < sp.lumo_hartree


# ---------------------------------------------------------------------------- optimisation

@pytest.mark.parametrize("name", ["water", "formaldehyde"])
def test_optimisation_converges_below_gau(eng, level, optimized, name):
    start, res = optimized[name]
    assert res.coords_bohr.shape == start.coords_bohr.shape
    assert res.n_steps >= 1
    e0, g0, _ = eng.energy_gradient(start, level)
    e1, g1, _ = eng.energy_gradient(start.with_coords(res.coords_bohr), level)
    assert e1 == pytest.approx(res.energy_hartree, abs=1e-10)
    assert e1 < e0 - 1e-4                                 # the distorted start was well above
    norms0, norms1 = np.linalg.norm(g0, axis=1), np.linalg.norm(g1, axis=1)
    assert norms0.max() > 10 * GAU_GMAX                   # the test starts far from converged
    assert norms1.max() < GAU_GMAX
    assert np.sqrt(np.mean(norms1 ** 2)) < GAU_GRMS


def test_optimisation_leaves_no_files_and_is_quiet(eng, level, tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    eng.optimize(Molecule("hcn", [1, 6, 7], np.array([[0, 0, -1.1], [0, 0, 0], [0, 0, 1.2]])
                          * ANGSTROM_BOHR), level)
    out = capfd.readouterr()
    assert list(tmp_path.iterdir()) == []
    assert out.out == "" and out.err == ""


def test_optimisation_not_converged_is_opt_error(eng):
    with pytest.raises(EngineError) as ei:
        eng.optimize(_formaldehyde(), Level(opt_max_steps=2))
    assert ei.value.kind == "opt"
    assert str(ei.value).startswith("formaldehyde:") and "\n" not in str(ei.value)


# ---------------------------------------------------------------------------- Hessian

@pytest.fixture(scope="module")
def hessians(eng, level, optimized):
    out = {}
    for name in ("water", "formaldehyde"):
        mol = _opt_mol(optimized, name)
        out[name] = (mol, eng.fd_hessian_raw(mol, level), eng.hessian(mol, level))
    return out


@pytest.mark.parametrize("name", ["water", "formaldehyde"])
def test_hessian_symmetric_translation_invariant_rotation_covariant(eng, level, hessians, name):
    mol, raw, H = hessians[name]
    n3 = 3 * mol.natoms
    assert H.shape == (n3, n3)
    assert np.array_equal(H, H.T)
    # (two separate runs: OpenMP reductions make the last digits differ run to run)
    assert np.allclose(H, 0.5 * (raw + raw.T), atol=1e-10, rtol=0)
    # Before symmetrisation, d2E/dx_i dx_j from column j and from column i agree: the
    # asymmetry is the O(h^2) truncation error, (h^2/6) * (d4E/dxi dxj^3 - d4E/dxj dxi^3),
    # about 4e-6 * (a few Eh/Bohr^4) for stiff O-H bonds (SCC noise is 1e-12 Eh / 0.01 Bohr),
    # so below 1e-4 Eh/Bohr^2 for h = 0.005 Bohr, while the stretching elements are ~0.5.
    assert np.abs(raw - raw.T).max() < 1e-4
    assert np.abs(H).max() > 0.3
    # Translational invariance: the xTB energy has no grid, so E(x + t) = E(x) exactly and
    # sum_a H[:, a, c] = 0. What remains is the O(h^2) truncation error of the central
    # differences (h^2/6 * fourth derivatives ~ 4e-6 * O(1)): tolerance 2e-5 Eh/Bohr^2.
    T = np.tile(np.eye(3), (mol.natoms, 1))               # (3n, 3): unit translations
    assert np.abs(H @ T).max() < 2e-5
    # Rotational covariance, exact at any geometry: g(R x) = R g(x), so for a rotation
    # generator W, H (W x) = W g (per atom). Tests the atom/component ordering of columns.
    _, g, _ = eng.energy_gradient(mol, level)
    com = mol.coords_bohr.mean(axis=0)
    for axis in np.eye(3):
        W = np.cross(np.eye(3), axis).T                   # W @ v = axis x v
        v = ((mol.coords_bohr - com) @ W.T).ravel()
        assert np.abs(H @ v - (g @ W.T).ravel()).max() < 2e-5


@pytest.mark.parametrize("name", ["water", "formaldehyde"])
def test_hessian_matches_energy_second_differences(eng, level, hessians, name):
    """Independent check from energies only (no gradients): one diagonal element, one
    off-diagonal element and the largest eigenvalue, by second differences of E."""
    mol, _, H = hessians[name]
    x0 = mol.coords_bohr
    n3 = x0.size
    h = 0.005      # O(h^2) truncation ~ 1e-6 relative; SCC noise 1e-12 / h^2 = 4e-8
    e0 = _energy(eng, mol, level)

    def e(d):
        return _energy(eng, mol, level, coords=x0 + np.asarray(d).reshape(-1, 3))

    def unit(k):
        u = np.zeros(n3)
        u[k] = 1.0
        return u

    i, j = 2, 5                                          # z of atom 1, z of atom 2 (bonded)
    hii = (e(h * unit(i)) - 2 * e0 + e(-h * unit(i))) / h ** 2
    hij = (e(h * (unit(i) + unit(j))) - e(h * (unit(i) - unit(j)))
           - e(h * (unit(j) - unit(i))) + e(-h * (unit(i) + unit(j)))) / (4 * h ** 2)
    assert H[i, i] == pytest.approx(hii, rel=1e-3, abs=1e-5)
    assert H[i, j] == pytest.approx(hij, rel=1e-3, abs=1e-5)
    lam, vec = np.linalg.eigh(H)
    v = vec[:, -1]
    lam_e = (e(h * v) - 2 * e0 + e(-h * v)) / h ** 2
    assert lam[-1] == pytest.approx(lam_e, rel=1e-3)


def test_water_frequencies_plausible(hessians):
    mol, _, H = hessians["water"]
    m = np.repeat(mol.masses_amu * AMU_ME, 3)
    ev = np.linalg.eigvalsh(H / np.sqrt(np.outer(m, m)))
    nu = np.sign(ev) * np.sqrt(np.abs(ev)) * HARTREE_WAVENUMBER
    assert np.all(np.abs(nu[:6]) < 60)                    # translations + rotations (~0)
    assert 1450 < nu[6] < 1650                            # bend (GFN2: ~1540 cm^-1)
    assert 3550 < nu[7] <= nu[8] < 3750                   # stretches (GFN2: ~3640, 3650)


# ---------------------------------------------------------------------------- alpha, beta

def test_polarizability_water(eng, level, optimized):
    w = _opt_mol(optimized, "water")
    alpha = eng.polarizability(w, level)
    assert alpha.shape == (3, 3)
    assert np.abs(alpha - alpha.T).max() < 1e-5 * np.abs(alpha).max()
    ev = np.linalg.eigvalsh(0.5 * (alpha + alpha.T))
    assert ev.min() > 0                                   # positive-definite
    # GFN2-xTB's minimal valence basis has no virtual orbital of b1 (out-of-plane)
    # symmetry in water, so alpha_perp ~ 0 and alpha_iso ~ 2.4 a.u., far below experiment
    # (9.6 a.u.): the window catches sign, unit (Angstrom^3 would give 0.36) and factor-2 slips.
    iso = np.trace(alpha) / 3
    assert 1.5 < iso < 4.0
    # independent check of sign and size from energies: E(F) = E0 - mu.F - 1/2 F.alpha.F
    h = level.field_step_au
    nrm = np.linalg.norm
    u = w.coords_bohr[1] - w.coords_bohr[2]
    u /= nrm(u)                                           # in-plane, perpendicular to C2
    e0 = _energy(eng, w, level)
    ep, em = _energy(eng, w, level, field=h * u), _energy(eng, w, level, field=-h * u)
    assert -(ep - 2 * e0 + em) / h ** 2 == pytest.approx(u @ alpha @ u, rel=1e-3)
    # energy first derivative is -mu
    assert -(ep - em) / (2 * h) == pytest.approx(eng.single_point(w, level).dipole_au @ u,
                                                 abs=1e-6)


def test_polarizability_rotates_as_tensor(eng, level, optimized):
    w = _opt_mol(optimized, "water")
    c, s = np.cos(0.7), np.sin(0.7)
    R = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    a = eng.polarizability(w, level)
    ar = eng.polarizability(w.with_coords(w.coords_bohr @ R.T), level)
    assert np.allclose(ar, R @ a @ R.T, atol=1e-4)


def test_hyperpolarizability_water_inversion_and_symmetry(eng, level, optimized):
    w = _opt_mol(optimized, "water")
    beta = eng.hyperpolarizability(w, level)
    assert beta.shape == (3, 3, 3)
    scale = np.abs(beta).max()
    assert scale > 1.0                                    # non-centrosymmetric: beta != 0
    # static limit: beta_ijk = -d3E/dFi dFj dFk is symmetric in all three indices, although
    # the code builds index i from the dipole and j, k from fields
    for perm in [(1, 0, 2), (2, 1, 0), (0, 2, 1)]:
        assert np.abs(beta - beta.transpose(perm)).max() < 1e-3 * scale
    # inversion r -> -r: mu -> -mu, alpha unchanged, beta -> -beta
    inv = Molecule("water-inverted", w.numbers, -w.coords_bohr)
    assert np.allclose(eng.hyperpolarizability(inv, level), -beta, atol=1e-3 * scale)
    assert np.allclose(eng.polarizability(inv, level), eng.polarizability(w, level), atol=1e-5)
    # the dipole-derived alpha of the same run agrees with the one polarizability() computes
    # (alpha and beta share dipoles through the engine's cache)
    fresh = xtb_engine.XtbEngine()
    assert np.allclose(fresh.polarizability(w, level), eng.polarizability(w, level), atol=1e-10)


@pytest.mark.parametrize("make", [_co2, _ethylene])
def test_hyperpolarizability_vanishes_for_centrosymmetric(eng, level, make):
    mol = make()
    beta = eng.hyperpolarizability(mol, level)
    # water's beta is ~8 a.u.; SCC noise at accuracy 1e-6 gives ~1e-5 a.u.
    assert np.abs(beta).max() < 1e-3
    assert np.linalg.eigvalsh(eng.polarizability(mol, level)).min() > 0


# ---------------------------------------------------------------------------- errors, threads

def test_impossible_multiplicity_is_one_line_engine_error(eng, level):
    w = _water()
    bad = Molecule("water-doublet", w.numbers, w.coords_bohr, charge=0, multiplicity=2)
    with pytest.raises(EngineError) as ei:
        eng.single_point(bad, level)
    msg = str(ei.value)
    assert msg.startswith("water-doublet:") and "\n" not in msg and "unpaired" in msg
    assert ei.value.kind == "engine"
    with pytest.raises(EngineError):
        eng.hessian(bad, level)


def test_scf_failure_is_scf_error(eng, monkeypatch):
    # two SCC iterations cannot converge; tblite's "SCF not converged" must become kind "scf"
    monkeypatch.setattr(xtb_engine, "TBLITE_MIN_MAX_ITER", 1)
    with pytest.raises(EngineError) as ei:
        eng.single_point(_water(), Level(max_cycle=2))
    msg = str(ei.value)
    assert ei.value.kind == "scf" and msg.startswith("water:") and "\n" not in msg


def test_unsupported_xtb_flavour(eng):
    with pytest.raises(EngineError) as ei:
        eng.single_point(_water(), Level(method="gfn0-xtb"))
    assert str(ei.value).startswith("water:") and ei.value.kind == "engine"


def test_threads_setting_is_restored(eng):
    lib = xtb_engine._libgomp()
    if lib is None:
        pytest.skip("libgomp not loadable")
    before = lib.omp_get_max_threads()
    sp = eng.single_point(_water(), Level(threads=1))
    assert np.isfinite(sp.energy_hartree)
    assert lib.omp_get_max_threads() == before


# -- the fallback ladder, the registry and the level, on the fast engine -----------------------
def test_real_scf_failure_is_corrected_by_the_ladder(eng, monkeypatch):
    """Two SCC iterations fail for real; the ladder's first rung (max_cycle 300) converges, and
    compute_record (hessflow compute) records the correction in the provenance."""
    import json

    from hessflow.qm.assemble import compute_record
    from hessflow.qm.fallback import LADDER, run_with_fallback
    monkeypatch.setattr(xtb_engine, "TBLITE_MIN_MAX_ITER", 1)
    level = Level(max_cycle=2)
    bare = run_with_fallback("sp", _water(), eng, level, fallback=False)
    assert not bare.ok and bare.kind == "scf" and bare.reason.startswith("sp: water:")
    out = run_with_fallback("sp", _water(), eng, level)
    assert out.ok and [c["apply"] for c in out.corrections] == [LADDER["scf"][0]]
    assert out.corrections[0]["after"] == "scf"
    assert out.fields["energy_hartree"] == pytest.approx(
        eng.single_point(_water(), Level()).energy_hartree, abs=1e-8)
    rec = compute_record(_water(), eng, level, ("polar",))
    assert rec["status"] == "done", rec["reason"]
    prov = json.loads(rec["provenance"])
    assert set(prov["corrections"]) == {"sp", "polar"}
    assert all(c[0]["apply"] == LADDER["scf"][0] for c in prov["corrections"].values())


def test_injected_optimisation_failure_walks_the_opt_rungs(eng, monkeypatch):
    import json

    from hessflow.qm.fallback import FAULTS_ENV, LADDER, run_with_fallback
    monkeypatch.setenv(FAULTS_ENV, json.dumps(
        {"fail": {"molecule": "water", "task": "opt", "kind": "opt", "times": 2}}))
    out = run_with_fallback("opt", _water(), eng, Level())
    assert out.ok and [c["apply"] for c in out.corrections] == list(LADDER["opt"])
    assert out.corrections[0]["apply"]["opt_trust_radius_bohr"] == pytest.approx(0.05 * ANGSTROM_BOHR)
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"fail": {"molecule": "water", "kind": "opt"}}))
    out = run_with_fallback("opt", _water(), eng, Level())
    assert not out.ok and out.reason == "opt: water: injected failure" and out.kind == "opt"
    assert len(out.corrections) == len(LADDER["opt"])


def test_trust_radius_is_in_bohr_and_the_angstrom_key_is_still_read():
    from hessflow.qm.level import geometric_trust_angstrom
    assert Level().opt_trust_radius_bohr == pytest.approx(0.1 * ANGSTROM_BOHR)
    assert geometric_trust_angstrom(Level()) == (0.1, 0.3)    # geomeTRIC gets what it got before
    old = Level.from_mapping({"opt_trust_radius": 0.05})
    assert old.opt_trust_radius_bohr == 0.05 * ANGSTROM_BOHR
    assert geometric_trust_angstrom(old) == (0.05, 0.3)
    big = round(1.0 / ANGSTROM_BOHR, 12)   # 1 Bohr in Angstrom, above geomeTRIC's 0.3 cap
    assert geometric_trust_angstrom(Level(opt_trust_radius_bohr=1.0)) == (big, big)
    assert "opt_trust_radius_bohr" not in Level().key_dict()


def test_engine_level_defaults_and_one_line_errors():
    from hessflow.errors import SettingsError
    from hessflow.qm.engines import engine_level
    assert engine_level("xtb").method == "gfn2-xtb"
    assert engine_level("xtb", {"method": "gfn1-xtb"}).method == "gfn1-xtb"
    assert engine_level("pyscf").method == "b3lyp" and engine_level("psi4").method == "b3lyp"
    with pytest.raises(SettingsError) as err:
        engine_level("pyscf", {"basis_set": "sto-3g"}, "qm.level")
    assert str(err.value).startswith("qm.level.basis_set: unknown key (did you mean 'basis'?)")
    with pytest.raises(SettingsError) as err:
        engine_level("pyscf", {"imag_policy": "ignore"})
    assert str(err.value).startswith("level.imag_policy: 'ignore' is not one of")
    with pytest.raises(SettingsError) as err:
        engine_level("pyscf", {"threads": "two"})
    assert str(err.value) == "level.threads: expected an integer, got str 'two'"


class ToyEngine(xtb_engine.XtbEngine):
    """An engine from "another package", found through the entry-point group."""
    name = "toy"


def test_engines_are_registered_and_found_through_entry_points(monkeypatch):
    import importlib.metadata

    from hessflow.qm import engines
    assert engines.ENGINE_NAMES[:3] == ("pyscf", "psi4", "xtb")
    for name in engines.BUILTIN:
        cls = engines.engine_class(name)
        assert cls.name == name
        assert set(cls.methods) == {"sp", "opt", "freq", "polar", "hyperpolar"}, name
    eps = importlib.metadata.EntryPoints([
        importlib.metadata.EntryPoint("toy", f"{__name__}:ToyEngine", engines.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("xtb", "elsewhere:Impostor", engines.ENTRY_POINT_GROUP)])
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: eps.select(group=group))
    found = engines.discover_engines()
    assert found["toy"] == f"{__name__}:ToyEngine" and found["xtb"] == engines.BUILTIN["xtb"]
    monkeypatch.setattr(engines, "REGISTRY", found)
    assert isinstance(engines.get_engine("TOY"), ToyEngine)
    assert engines.engine_level("toy").method == "gfn2-xtb"
    monkeypatch.setattr(engines, "REGISTRY", {**found, "broken": "no.such.module:Engine"})
    from hessflow.errors import EngineNotFound
    with pytest.raises(EngineNotFound) as err:
        engines.get_engine("broken")
    assert "cannot be loaded" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(EngineNotFound) as err:
        engines.get_engine("gaussian")
    assert "is not one of pyscf, psi4, xtb, gpu4pyscf, toy, broken" in str(err.value)


def test_gradient_equals_finite_differences_of_the_energy():
    """tblite's analytic gradient against central differences (1e-3 Bohr) of its energy."""
    from tests.stock import distorted_water, fd_gradient
    eng, lvl = get_engine("xtb"), Level(method="gfn2-xtb", threads=1)
    for mol in (distorted_water(), _formaldehyde()):
        g = eng.gradient(mol, lvl)
        fd = fd_gradient(lambda m: eng.single_point(m, lvl).energy_hartree, mol)
        assert g.shape == (mol.natoms, 3) and np.abs(g).max() > 1e-2
        assert np.abs(g - fd).max() < 1e-6, mol.name
