"""The `conformers` stage of `hessflow run`: vibration-sampled geometries of every finished
molecule with single-point energies (GFN2-xTB), committed to their own store by the driver."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hessflow.store import Store
from hessflow.units import HARTREE_EV


def run(cfg_path):
    return subprocess.run([sys.executable, "-m", "hessflow", "run", str(cfg_path), "--no-progress"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def water_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("conf")
    (d / "m.smi").write_text("O water\nC methane\n")
    (d / "wf.yaml").write_text(
        "inputs: [m.smi]\nstore: m.h5\nqm: {engine: xtb, tasks: [opt, freq]}\n"
        "executor: {kind: threads, workers: 2}\n"
        "stages:\n  conformers: {samples: 40, temperature_k: 300, distribution: quantum}\n")
    out = run(d / "wf.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    return d, out


def test_every_sample_is_a_done_record_linked_to_its_parent(water_run):
    d, out = water_run
    parents = Store(d / "m.h5")
    pk = {parents.get(k)["name"]: k for k in parents.keys()}
    st = Store(d / "m_conformers.h5")
    recs = [st.get(k) for k in st.keys()]
    assert len(recs) == 80 and all(r["status"] == "done" for r in recs)
    for r in recs:
        parent_name, sample = r["name"].split("~v")
        prov = json.loads(r["provenance"])
        assert prov["conformer"]["parent"] == pk[parent_name]
        assert prov["conformer"]["sample"] == int(sample)
        assert r["tasks"] == "sp" and np.isfinite(r["energy_hartree"])
        assert r["gradient_hartree_bohr"].shape == (r["n_atoms"], 3)
    assert "80 done, 0 skipped, 0 failed" in out.stderr + out.stdout
    # the gradient of each sample is tblite's at its geometry (displaced: not small)
    from tblite.interface import Calculator
    for r in recs[::20]:
        calc = Calculator("GFN2-xTB", r["numbers"], r["coords_input_bohr"])
        calc.set("verbosity", 0)
        calc.set("accuracy", 1e-6)  # the xtb engine's SCC accuracy
        res = calc.singlepoint()
        assert np.allclose(r["gradient_hartree_bohr"], res.get("gradient"), atol=1e-7)
        assert abs(r["energy_hartree"] - res.get("energy")) < 1e-7
        assert np.abs(r["gradient_hartree_bohr"]).max() > 1e-3


def test_mean_energy_rise_is_the_harmonic_thermal_potential_energy(water_run):
    """For the quantum distribution each normal mode holds, on average, a potential energy of
    (hbar omega / 4) coth(hbar omega / 2kT): the displaced geometries' mean energy above the
    minimum must match that sum (to the sampling error and xTB's anharmonicity)."""
    d, _ = water_run
    parents = Store(d / "m.h5")
    st = Store(d / "m_conformers.h5")
    by_parent = {}
    for k in st.keys():
        r = st.get(k)
        by_parent.setdefault(r["name"].split("~v")[0], []).append(r["energy_hartree"])
    kt_ev = 8.617333262e-5 * 300.0
    for k in parents.keys():
        p = parents.get(k)
        w_ev = p["frequencies_cm1"] / 8065.54400  # cm-1 -> eV
        expected = np.sum(w_ev / 4 / np.tanh(w_ev / (2 * kt_ev)))
        rise = (np.mean(by_parent[p["name"]]) - p["energy_hartree"]) * HARTREE_EV
        assert abs(rise - expected) < 0.25 * expected, (p["name"], rise, expected)


def test_a_second_run_draws_the_same_geometries_and_skips_them(water_run):
    d, _ = water_run
    out = run(d / "wf.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "0 done, 80 skipped, 0 failed" in out.stderr + out.stdout


def test_bad_stage_settings_are_one_line(tmp_path):
    (tmp_path / "m.smi").write_text("O water\n")
    (tmp_path / "wf.yaml").write_text(
        "inputs: [m.smi]\nstore: m.h5\nqm: {engine: xtb}\n"
        "stages:\n  conformers: {samples: 0}\n")
    out = run(tmp_path / "wf.yaml")
    assert out.returncode == 2
    assert "stages.conformers.samples: 0 is not a positive integer" in out.stderr
    (tmp_path / "wf.yaml").write_text(
        "inputs: [m.smi]\nstore: m.h5\nqm: {engine: xtb}\n"
        "stages:\n  conformers: {store: m.h5}\n")
    out = run(tmp_path / "wf.yaml")
    assert out.returncode == 2 and "stages.conformers.store" in out.stderr


def test_bp_and_vae_train_from_the_workflow_config(water_run):
    """The element-coupled network trains on the conformer energies and forces (their stored
    gradients) and the SMILES VAE on the store's molecules, both as stages of the same graph (Parsl bash apps on the mpi executor)."""
    d, _ = water_run
    (d / "wf_models.yaml").write_text(
        "inputs: [m.smi]\nstore: m.h5\nqm: {engine: xtb, tasks: [opt, freq]}\n"
        "executor: {kind: threads, workers: 2}\n"
        "stages:\n  conformers: {samples: 40, temperature_k: 300, distribution: quantum}\n"
        "  bp: {features: modes, epochs: 30, val: 0.0, test: 0.0, force_weight: 5}\n"
        "  vae: {properties: [gap], epochs: 2, hidden: 32, latent: 8, n_prior: 10}\n")
    out = run(d / "wf_models.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    bp = json.loads((d / "runs" / "wf_models" / "bp" / "metrics.json").read_text())
    assert bp["n_geometries"] == 80 and bp["features"] == "modes"  # the conformers store
    assert bp["force_weight"] == 5 and bp["n_geometries_with_forces"] == 80
    assert bp["train"]["force_mae_ev_angstrom"] > 0
    assert "bp: modes features, train MAE=" in out.stderr
    vae = json.loads((d / "runs" / "wf_models" / "vae" / "metrics.json").read_text())
    assert vae["n_molecules"] == 2 and "vae: " in out.stderr


def test_command_stage_settings_are_checked_by_their_typed_settings(tmp_path):
    (tmp_path / "m.smi").write_text("O water\n")
    (tmp_path / "wf.yaml").write_text(
        "inputs: [m.smi]\nstore: m.h5\nqm: {engine: xtb}\nstages:\n  bp: {features: colour}\n")
    out = run(tmp_path / "wf.yaml")
    assert out.returncode == 2
    assert "stages.bp.features: 'colour' is not one of modes | onehot" in out.stderr
