"""GFN2-xTB pre-optimisation and initial Hessian of DFT optimisations (issue 14, item 1).

Real engines: HF/6-31G (PySCF) from distorted geometries, GFN2-xTB through tblite."""

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

from hessflow.errors import EngineError, SettingsError
from hessflow.qm.assemble import compute_record, request_key
from hessflow.qm.engines import get_engine
from hessflow.qm.engines.pyscf_engine import GEOMETRIC_LOG_INI
from hessflow.qm.engines.xtb_engine import XtbEngine
from hessflow.qm.engines.xtb_preopt import FLAG_BONDS, FLAG_FAILED, bonds, xtb_start
from hessflow.qm.level import Level, geometric_trust_angstrom
from hessflow.qm.molecules.conformers import from_smiles
from hessflow.qm.molecules.molecule import Molecule
from hessflow.units import ANGSTROM_BOHR

pytest.importorskip("tblite")

HF = dict(method="hf", basis="6-31g", threads=1)
OLD = dict(preopt="none", opt_initial_hessian="guess")


def distorted_water():
    xyz = [[0, 0, 0], [1.25, 0, 0], [-0.2, 1.1, 0.1]]
    return Molecule(name="water", numbers=np.array([8, 1, 1]),
                    coords_bohr=np.array(xyz, float) * ANGSTROM_BOHR)


def distorted_methanol():
    xyz = [[0, 0, 0], [1.55, 0.1, 0], [-0.3, 1.1, 0.2], [-0.45, -0.5, 0.95],
           [-0.35, -0.6, -0.9], [1.8, 0.9, 0.5]]
    return Molecule(name="methanol", numbers=np.array([6, 8, 1, 1, 1, 1]),
                    coords_bohr=np.array(xyz, float) * ANGSTROM_BOHR)


@pytest.fixture(scope="module")
def pyscf():
    return get_engine("pyscf")


@pytest.mark.parametrize("make", [distorted_water, distorted_methanol])
def test_preopt_and_xtb_hessian_take_fewer_dft_steps_to_the_same_minimum(pyscf, make):
    mol = make()
    old = pyscf.optimize(mol, Level(**HF, **OLD))
    new = pyscf.optimize(mol, Level(**HF))
    assert new.preopt["used"] == "xtb" and new.preopt["hessian"] == "xtb"
    assert new.preopt["xtb_steps"] > 0 and "flag" not in new.preopt
    assert new.n_steps < old.n_steps
    # the same minimum within GAU's tolerances: energy and geometry (internal distances)
    assert abs(new.energy_hartree - old.energy_hartree) < 1e-6

    def dists(x):
        return np.linalg.norm(x[:, None] - x[None], axis=-1)
    assert np.abs(dists(new.coords_bohr) - dists(old.coords_bohr)).max() < 5e-3


def test_preopt_none_is_the_route_of_before(pyscf):
    """preopt none + guess Hessian = geomeTRIC from the input geometry with its model Hessian,
    called as the engine did before issue 14 (same steps, same geometry)."""
    from pyscf import gto, scf
    from pyscf.geomopt import geometric_solver
    mol = distorted_water()
    level = Level(**HF, **OLD)
    res = pyscf.optimize(mol, level)
    assert res.preopt == {"preopt": "none", "initial_hessian": "guess", "used": "none",
                          "hessian": "guess"}
    pm = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(mol.numbers, mol.coords_bohr)],
               unit="Bohr", basis="6-31g", verbose=0)
    mf = scf.RHF(pm)
    mf.conv_tol, mf.verbose = level.conv_tol, 0
    steps = []
    trust, tmax = geometric_trust_angstrom(level)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        conv, opt = geometric_solver.kernel(mf, maxsteps=level.opt_max_steps,
                                            convergence_set="GAU", trust=trust, tmax=tmax,
                                            assert_convergence=False, logIni=GEOMETRIC_LOG_INI,
                                            callback=lambda env: steps.append(1))
    assert conv and res.n_steps == len(steps)
    assert np.allclose(res.coords_bohr, opt.atom_coords(unit="Bohr"), atol=1e-8)


def test_xtb_start_is_the_xtb_minimum_with_xtb_hessian():
    mol = distorted_water()
    start = xtb_start(mol, Level(**HF))
    xtb = XtbEngine()
    lvl = Level(method="gfn2-xtb")
    _, grad, _ = xtb.energy_gradient(mol, lvl, start.coords_bohr)
    assert np.abs(grad).max() < 4.5e-4          # GAU's max-gradient criterion, Hartree/Bohr
    assert start.hessian.shape == (9, 9)
    h_ref = xtb.hessian(mol.with_coords(start.coords_bohr), lvl)
    assert np.allclose(start.hessian, h_ref)
    # at a minimum: 6 near-zero (translations, rotations) and 3 positive eigenvalues
    ev = np.linalg.eigvalsh(start.hessian)
    assert np.abs(ev[:6]).max() < 1e-3 and ev[6:].min() > 0.05


def test_xtb_failure_falls_back_to_the_input_geometry_with_a_flag(pyscf):
    class Broken(XtbEngine):
        def optimize(self, mol, level):
            raise EngineError(f"{mol.name}: xtb: element not parametrised", kind="engine")

    mol = distorted_water()
    start = xtb_start(mol, Level(**HF), engine=Broken())
    assert start.flag == FLAG_FAILED and "not parametrised" in start.info["reason"]
    assert start.hessian is None and np.array_equal(start.coords_bohr, mol.coords_bohr)


def test_a_failing_xtb_leaves_a_done_record_flagged(monkeypatch):
    def broken(self, mol, level):
        raise EngineError(f"{mol.name}: xtb: SCC not converged", kind="scf")
    monkeypatch.setattr(XtbEngine, "optimize", broken)
    rec = compute_record(distorted_water(), get_engine("pyscf"), Level(**HF), "opt")
    assert rec["status"] == "done"
    assert FLAG_FAILED in rec["flags"].split(",")
    prov = json.loads(rec["provenance"])
    assert prov["preopt"]["used"] == "none" and "SCC not converged" in prov["preopt"]["reason"]


def test_xtb_minimum_that_moves_a_proton_is_not_used():
    """Gas-phase glycine zwitterion: GFN2-xTB moves the proton back from N to O, another
    molecule's minimum; the start stays the input geometry, flagged."""
    mol = from_smiles("[NH3+]CC([O-])=O", "glycine-zwitterion")
    start = xtb_start(mol, Level())
    assert start.flag == FLAG_BONDS and "N0-H" in start.info["reason"]
    assert np.array_equal(start.coords_bohr, mol.coords_bohr) and start.hessian is None


def test_bonds_by_covalent_radii():
    mol = from_smiles("CO", "methanol")
    b = bonds(mol.symbols, mol.coords_bohr)
    assert len(b) == 5 and (0, 1) in b      # C-O and four X-H


def test_record_provenance_has_xtb_and_dft_steps(pyscf):
    rec = compute_record(distorted_water(), pyscf, Level(**HF), "opt")
    prov = json.loads(rec["provenance"])
    assert prov["preopt"]["used"] == "xtb" and prov["preopt"]["xtb_steps"] > 0
    assert prov["opt_steps"] > 0 and not rec["flags"]


def test_route_settings_are_checked_and_not_keyed(pyscf):
    with pytest.raises(SettingsError, match="level.preopt"):
        Level.from_mapping({"preopt": "gfn1"})
    with pytest.raises(SettingsError, match="opt_initial_hessian"):
        Level.from_mapping({"opt_initial_hessian": "exact"})
    with pytest.raises(ValueError, match="preopt"):
        Level(preopt="yes")
    mol = distorted_water()
    keys = {request_key(mol, pyscf, Level(**HF, **route), ("opt",))
            for route in (OLD, {}, {"preopt": "xtb", "opt_initial_hessian": "guess"})}
    assert len(keys) == 1   # a record computed on either route stays valid


def test_the_xtb_hessian_reaches_geometric(pyscf):
    """From the same start, geomeTRIC given the xTB Hessian (hess_data) takes another path than
    with its model guess: the option is not silently dropped."""
    mol = distorted_water()
    guess = pyscf.optimize(mol, Level(**HF, **OLD))
    xtb = pyscf.optimize(mol, Level(**HF, preopt="none", opt_initial_hessian="xtb"))
    assert xtb.preopt["hessian"] == "xtb" and xtb.preopt["used"] == "none"
    assert xtb.n_steps != guess.n_steps or \
        np.abs(xtb.coords_bohr - guess.coords_bohr).max() > 1e-6
    assert abs(xtb.energy_hartree - guess.energy_hartree) < 1e-6
