"""The GPU4PySCF engine: against the PySCF CPU engine on a CUDA machine (skipped elsewhere, with
the reason), and, everywhere, its device setting, its errors and its plumbing.

GPU tests compare with the PySCF engine on water at hessflow's QM9 level (B3LYP/6-31G(2df,p),
grid 4), at one geometry: energy <= 1e-6 Eh, harmonic frequencies <= 1 cm^-1, alpha <= 0.1 %.
"""

import json
import sys
import types

import numpy as np
import pytest

from hessflow.errors import EngineNotFound, SettingsError
from hessflow.qm.engines.gpu4pyscf_engine import (
    GpuSettings, Gpu4pyscfEngine, cuda_unavailable_reason, engine_for_device,
    engine_from_settings, resolve_device)
from hessflow.qm.engines.pyscf_engine import PyscfEngine
from hessflow.qm.harmonic import Harmonic
from hessflow.qm.level import Level
from hessflow.settings import from_mapping

from tests.stock import water

WHY = cuda_unavailable_reason()
needs_gpu = pytest.mark.skipif(WHY is not None, reason=f"GPU4PySCF not usable here: {WHY}")
without_gpu = pytest.mark.skipif(WHY is None, reason="a usable GPU is present")
# B3LYP/6-31G(2df,p), grid 4, in the shells both engines run (the GPU engine has no 6D 7F yet)
QM9 = Level(shells="6d10f")


# -- everywhere: the device setting and its messages ------------------------------------------
@without_gpu
def test_why_not_found_says_plainly_why():
    why = Gpu4pyscfEngine().why_not_found()
    assert why and "\n" not in why
    assert any(w in why for w in ("gpu4pyscf", "cupy", "CUDA")), why
    if "not installed" in why:
        assert "[gpu]" in why  # says how to get it


@without_gpu
def test_auto_falls_back_to_the_cpu_engine_with_one_note():
    notes = []
    assert resolve_device("auto", note=notes.append) == "cpu"
    assert resolve_device(None, note=notes.append) == "cpu"
    assert len(notes) == 2 and all("\n" not in n and "CPU" in n for n in notes)
    eng = engine_for_device("auto", note=notes.append)
    assert type(eng) is PyscfEngine


@without_gpu
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(EngineNotFound) as exc:
        resolve_device("cuda")
    msg = str(exc.value)
    assert msg.startswith("device cuda:") and "\n" not in msg and WHY in msg
    with pytest.raises(EngineNotFound):
        engine_from_settings({"device": "cuda"})


def test_cpu_needs_nothing_and_bad_devices_are_named():
    assert resolve_device("cpu", note=lambda m: pytest.fail(m)) == "cpu"
    assert type(engine_for_device("CPU")) is PyscfEngine
    with pytest.raises(SettingsError, match=r"^device: 'gpu' is not one of auto \| cpu \| cuda "
                                             r"\(did you mean 'cuda'\?\)$"):
        resolve_device("gpu")


def test_gpu_settings_are_typed_and_checked():
    s = from_mapping(GpuSettings, {"device": "cpu", "auxbasis": "def2-universal-jkfit"})
    assert (s.device, s.cphf_grid, s.auxbasis) == ("cpu", "scf", "def2-universal-jkfit")
    with pytest.raises(SettingsError, match=r"^engine_options.devcie: unknown key \(did you mean 'device'\?\)"):
        engine_from_settings({"devcie": "cpu"})
    with pytest.raises(SettingsError, match=r"^engine_options.cphf_grid: 'sg2' is not one of scf \| sg1"):
        engine_from_settings({"cphf_grid": "sg2"})
    with pytest.raises(SettingsError, match=r"^cphf_grid:"):
        Gpu4pyscfEngine(cphf_grid="fine")


def test_content_key_needs_no_gpu_and_names_what_changes_numbers():
    """The submit host (often without a GPU) keys GPU records: level_for_key must not need CUDA;
    the default GPU settings key as the CPU engine, the others add what they change."""
    lvl = Level(basis="6-31g*", shells="6d10f")
    assert Gpu4pyscfEngine().level_for_key(lvl) == PyscfEngine().level_for_key(lvl)
    # no 6D 7F on the GPU yet: asked for it, the GPU engine runs (and keys) Cartesian f
    assert Gpu4pyscfEngine().level_for_key(lvl.replace(shells="6d7f")) == \
        PyscfEngine().level_for_key(lvl)
    k = Gpu4pyscfEngine(cphf_grid="sg1", auxbasis="def2-universal-jkfit").level_for_key(lvl)
    assert k["cphf_grid"] == "sg1" and k["auxbasis"] == "def2-universal-jkfit"
    assert Gpu4pyscfEngine.name == "gpu4pyscf" != PyscfEngine.name


# -- everywhere: the engine's own code, with CPU stand-ins for CuPy and GPU4PySCF -------------
@pytest.fixture
def cpu_stand_ins(monkeypatch):
    """CuPy as NumPy, ``to_gpu`` as the identity, GPU4PySCF's polarizability as
    pyscf-properties': what runs is then exactly the GPU engine's own code on PySCF objects."""
    import pyscf.dft.rks
    import pyscf.scf.hf
    calls = []
    cupy = types.ModuleType("cupy")
    cupy.asarray = cupy.asnumpy = np.asarray
    pol = types.ModuleType("gpu4pyscf.properties.polarizability")

    def eval_polarizability(mf, max_cycle=100, tol=1e-7):
        calls.append(tol)
        return PyscfEngine._alpha(None, mf).polarizability()
    pol.eval_polarizability = eval_polarizability
    props = types.ModuleType("gpu4pyscf.properties")
    props.polarizability = pol
    hf = types.ModuleType("gpu4pyscf.scf.hf")
    hf.RHF = pyscf.scf.hf.RHF
    scf = types.ModuleType("gpu4pyscf.scf")
    scf.hf = hf
    g4p = types.ModuleType("gpu4pyscf")
    g4p.properties, g4p.scf = props, scf
    for name, mod in {"cupy": cupy, "gpu4pyscf": g4p, "gpu4pyscf.properties": props,
                      "gpu4pyscf.properties.polarizability": pol, "gpu4pyscf.scf": scf,
                      "gpu4pyscf.scf.hf": hf}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for cls in (pyscf.dft.rks.RKS, pyscf.scf.hf.RHF):
        monkeypatch.setattr(cls, "to_gpu", lambda self: self)
    return calls


def test_engine_code_reproduces_the_pyscf_engine_with_stand_ins(cpu_stand_ins):
    """Field-perturbed SCFs go through the GPU engine's own path (CuPy refuses the base class's
    NumPy field term) and leave the field-free SCF cached; alpha goes through
    gpu4pyscf.properties' entry point with a tight CPKS tolerance; numbers equal the CPU engine's."""
    mol, lvl = water(), Level(basis="sto-3g", grid=1)
    cpu, gpu = PyscfEngine(), Gpu4pyscfEngine()
    sp_c, sp_g = cpu.single_point(mol, lvl), gpu.single_point(mol, lvl)
    assert sp_g.energy_hartree == pytest.approx(sp_c.energy_hartree, abs=1e-9)
    assert np.allclose(sp_g.dipole_au, sp_c.dipole_au, atol=1e-7)
    assert (sp_g.homo_hartree, sp_g.lumo_hartree) == pytest.approx(
        (sp_c.homo_hartree, sp_c.lumo_hartree), abs=1e-7)
    assert np.allclose(gpu.gradient(mol, lvl), cpu.gradient(mol, lvl), atol=1e-8)
    a_c, a_g = cpu.polarizability(mol, lvl), gpu.polarizability(mol, lvl)
    assert np.allclose(a_g, a_c, atol=1e-6) and cpu_stand_ins == [1e-9]
    b_c, b_g = cpu.hyperpolarizability(mol, lvl), gpu.hyperpolarizability(mol, lvl)
    assert abs(b_c[2, 2, 2]) > 1.0 and np.allclose(b_g, b_c, atol=1e-5)
    # after six field-perturbed SCFs the cached one is still the field-free SCF
    assert gpu._scf(mol, lvl).e_tot == pytest.approx(sp_c.energy_hartree, abs=1e-9)
    assert gpu._pending_field is None
    mf = gpu._scf(mol, lvl, field_au=np.array([0.0, 0.0, 1e-3]))
    assert mf.e_tot != pytest.approx(sp_c.energy_hartree, abs=1e-7)  # the field was applied


# -- on a CUDA machine: GPU against CPU at the QM9 level ---------------------------------------
@pytest.fixture(scope="module")
def engines():
    return PyscfEngine(), Gpu4pyscfEngine()


@pytest.fixture(scope="module")
def minimum(engines):
    """Water optimised on the GPU at the QM9 level (both engines are compared at it)."""
    return engines[1].optimize(water(), QM9)


@needs_gpu
def test_auto_picks_cuda_on_a_gpu_machine():
    assert resolve_device("auto", note=lambda m: pytest.fail(m)) == "cuda"
    assert isinstance(engine_for_device("auto"), Gpu4pyscfEngine)
    assert Gpu4pyscfEngine().why_not_found() is None


@needs_gpu
def test_optimisation_and_energy_agree(engines, minimum):
    cpu, gpu = engines
    mol = water().with_coords(minimum.coords_bohr)
    sp_c, sp_g = cpu.single_point(mol, QM9), gpu.single_point(mol, QM9)
    assert abs(sp_g.energy_hartree - sp_c.energy_hartree) <= 1e-6
    assert abs(minimum.energy_hartree - sp_g.energy_hartree) <= 1e-8
    assert np.abs(sp_g.dipole_au - sp_c.dipole_au).max() <= 1e-4
    opt_c = cpu.optimize(water(), QM9)
    assert abs(opt_c.energy_hartree - minimum.energy_hartree) <= 1e-6


@needs_gpu
def test_gradient_agrees_away_from_the_minimum(engines):
    from tests.stock import distorted_water
    g_c, g_g = (e.gradient(distorted_water(), QM9) for e in engines)
    assert np.abs(g_c).max() > 1e-2 and np.abs(g_g - g_c).max() <= 1e-5


@needs_gpu
def test_frequencies_agree(engines, minimum):
    mol = water().with_coords(minimum.coords_bohr)
    nu = [Harmonic(mol.masses_amu, mol.coords_bohr, e.hessian(mol, QM9)).frequencies_cm1
          for e in engines]
    assert np.abs(nu[1] - nu[0]).max() <= 1.0, (nu[0], nu[1])


@needs_gpu
def test_alpha_and_beta_agree(engines, minimum):
    mol = water().with_coords(minimum.coords_bohr)
    a_c, a_g = (e.polarizability(mol, QM9) for e in engines)
    assert np.abs(a_g - a_c).max() <= 1e-3 * np.abs(a_c).max()
    b_c, b_g = (e.hyperpolarizability(mol, QM9) for e in engines)
    assert np.abs(b_g - b_c).max() <= 1e-2 * np.abs(b_c).max()


@needs_gpu
def test_open_shell_alpha_runs_on_the_cpu_copy(engines):
    """UKS: alpha by pyscf-properties on the GPU mean field's CPU copy (gpu4pyscf.properties is
    closed-shell only): the same as the CPU engine's."""
    from hessflow.qm.molecules.molecule import Molecule
    oh = Molecule("OH", [8, 1], np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.83]]), multiplicity=2)
    lvl = Level(basis="6-31g*", grid=3)
    a_c, a_g = (e.polarizability(oh, lvl) for e in engines)
    assert np.abs(a_g - a_c).max() <= 1e-3 * np.abs(a_c).max()


# -- the check script's plumbing (benchmarks/gpu_check.py), CPU only --------------------------
@pytest.mark.slow
def test_gpu_check_plumbing_on_cpu():
    """The whole check at STO-3G on water, the PySCF engine standing in on both sides: stages
    timed, agreement computed and passed, tables and JSON written."""
    from benchmarks import gpu_check
    data = gpu_check.run(["water"], ["cpu", "cuda"], "sto-3g", grid=1, threads=1, budget_s=600,
                         log=lambda *a: None, engine_of=lambda side: (PyscfEngine(), None))
    e = data["molecules"]["water"]
    for side in ("cpu", "cuda"):
        assert e[side]["status"] == "ok"
        assert set(e[side]["stages"]) == set(gpu_check.STAGES)
        assert all(s["seconds"] > 0 for s in e[side]["stages"].values())
    assert e["pass"] == {"energy_hartree": True, "freq_cm1": True, "alpha_rel": True}
    assert e["diff_same_geometry"]["energy_hartree"] < 1e-8
    assert "warm_up" in data["sides"]["cuda"]
    text = gpu_check.tables(data)
    assert "speed-up" in text and "pass" in text and "FAIL" not in text
    assert "Measured by" in gpu_check.doc_section(data)
    json.dumps(data)  # plain data
    assert gpu_check.result_name("6-31G(2df,p)") == "gpu_check"
    assert gpu_check.result_name("sto-3g") == "gpu_check_sto-3g"
    with pytest.raises(SystemExit):
        gpu_check.main(["--molecules", "benzene"])
