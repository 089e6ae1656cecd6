"""Element property table, elemental modes (autoencoder), the Behler-Parrinello network on a
small GFN2-xTB store that hessflow computes here, alchemical interpolation, and `hessflow bp`."""

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.ml.bp import element_data  # noqa: E402
from hessflow.ml.bp.modes import RECONSTRUCTION_RMSE_BOUND, _fit, fit_modes, interpolate_modes  # noqa: E402
from hessflow.qm.molecules.elements import atomic_number  # noqa: E402

SMILES = ["C", "CC", "CO", "CN", "O", "N", "CCO", "CC=O", "C#N", "OC=O", "CCN", "NC=O", "COC",
          "CF", "FC(F)F", "CCF"]


# -- the table -------------------------------------------------------------------------------
def test_table_lists_every_element_with_checked_literature_values():
    want = ["H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P",
            "S", "Cl", "Ar", "K", "Ca", "Br", "I"]
    assert element_data.ELEMENTS == tuple(sorted(atomic_number(s) for s in want))
    zs, cols, v = element_data.property_table()
    assert cols == tuple(element_data.COLUMNS) and v.shape == (22, 9)
    r = element_data.row
    assert r(1)["ionisation_energy_ev"] == pytest.approx(13.598, abs=1e-3)        # NIST ASD
    assert r(9)["pauling_electronegativity"] == 3.98                              # Allred 1961
    assert r(6)["covalent_radius_angstrom"] == 0.76                               # Cordero 2008
    assert r(2)["polarizability_bohr3"] == pytest.approx(1.38375)                 # Schwerdtfeger 2018
    assert r(17)["electron_affinity_ev"] == pytest.approx(3.6127, abs=1e-4)       # CRC
    assert r(53)["period"] == 5 and r(35)["group"] == 17 and r(8)["valence_electrons"] == 6
    # noble gases: no Pauling value (NaN, stated); unbound anions: EA 0 eV (stated)
    assert [z for z in zs if math.isnan(r(z)["pauling_electronegativity"])] == [2, 10, 18]
    assert all(r(z)["electron_affinity_ev"] == 0.0 for z in element_data.UNBOUND_ANION)
    # physical trends the values must follow
    en = {z: r(z)["pauling_electronegativity"] for z in (3, 6, 7, 8, 9)}
    assert en[3] < en[6] < en[7] < en[8] < en[9]
    assert r(3)["polarizability_bohr3"] > 100 > r(10)["polarizability_bohr3"]
    with pytest.raises(KeyError, match="not in the element property table"):
        r(26)


# -- elemental modes -------------------------------------------------------------------------
def test_autoencoder_reconstructs_the_table_within_the_stated_error_and_is_seeded():
    m = fit_modes(4)
    assert m.modes.shape == (22, 4) and np.all(np.abs(m.modes) < 1)
    # stated in hessflow/ml/bp/modes.py and docs/ml.md: RMS error < 0.05 standard deviations
    assert RECONSTRUCTION_RMSE_BOUND == 0.05
    assert m.reconstruction_rmse < RECONSTRUCTION_RMSE_BOUND
    # decoding the modes gives back the tabulated values (in their own units)
    for z in (1, 6, 9, 17, 53):
        dec = m.decode(m.vector(z))
        tab = element_data.row(z)
        assert dec["ionisation_energy_ev"] == pytest.approx(tab["ionisation_energy_ev"], abs=0.3)
        assert dec["covalent_radius_angstrom"] == pytest.approx(tab["covalent_radius_angstrom"], abs=0.03)
    # same seed, same modes (also after clearing the cache); another seed, other modes
    small = fit_modes(2, steps=200)
    _fit.cache_clear()
    again = fit_modes(2, steps=200)
    assert small.modes.shape == (22, 2) and np.array_equal(again.modes, small.modes)
    assert not np.allclose(fit_modes(2, seed=1, steps=200).modes, small.modes)
    with pytest.raises(HessflowError, match="--modes"):
        fit_modes(0)
    with pytest.raises(HessflowError, match="element Z=26: no elemental modes"):
        m.vector(26)
    # interpolation in mode space: endpoints are the elements
    np.testing.assert_array_equal(interpolate_modes(m, 8, 16, 0.0), m.vector(8))
    np.testing.assert_array_equal(interpolate_modes(m, 8, 16, 1.0), m.vector(16))


# -- Behler-Parrinello on GFN2-xTB energies --------------------------------------------------
@pytest.fixture(scope="module")
def xtb_store(tmp_path_factory):
    pytest.importorskip("tblite")
    from hessflow.workflows.bp_data import generate_xtb_store
    path = tmp_path_factory.mktemp("bp") / "xtb.h5"
    counts = generate_xtb_store([(f"m{i}", s) for i, s in enumerate(SMILES)], path, n_geometries=3,
                                sigma_bohr=0.05, seed=0)
    assert counts["done"] == 3 * len(SMILES) and counts["failed"] == 0
    again = generate_xtb_store([(f"m{i}", s) for i, s in enumerate(SMILES)], path, n_geometries=3)
    assert again["skipped"] == 3 * len(SMILES) and again["done"] == 0  # resumes, no recompute
    return path


def test_store_loads_by_molecule_and_splits_keep_molecules_whole(xtb_store):
    from hessflow.ml.bp import load_energies, molecule_splits
    mols, level = load_energies(xtb_store)
    assert len(mols) == 48 and level["engine"] == "xtb" and level["method"] == "gfn2-xtb"
    groups = {m["group"] for m in mols}
    assert len(groups) == len(SMILES)
    # the displaced copies are other geometries with other energies
    e = {m["name"]: m["energy_hartree"] for m in mols}
    assert e["m6/g0"] != e["m6/g1"]
    sp = molecule_splits(mols, 0.2, 0.2, seed=0, exclude_elements=[9], few_shot=1)
    seen = {}
    for split in ("train", "val", "test", "excluded"):
        for i in sp[split]:
            assert seen.setdefault(mols[i]["group"], split) == split  # a molecule in one split only
    assert len(sp["molecules"]["excluded"]) == 2 and len(sp["excluded"]) == 6  # 3 with F, 1 back
    assert all(9 not in mols[i]["numbers"] for s in ("val", "test") for i in sp[s])
    assert sum(9 in mols[i]["numbers"] for i in sp["train"]) == 3  # the one few-shot molecule


def test_training_reduces_the_loss_and_interpolation_hits_the_endpoints(xtb_store, tmp_path):
    from hessflow.ml.bp import (BPConfig, alchemical_energies, interpolate_features, load_energies,
                                  load_bp_model, molecule_splits, predict_energies, train_bp)
    from hessflow.ml.core.training import TrainConfig
    mols, level = load_energies(xtb_store)
    sp = molecule_splits(mols, 0.15, 0.15, seed=0)
    cfg = BPConfig(features="modes", n_modes=4, hidden=(32, 32))
    m = train_bp(mols, cfg, TrainConfig(epochs=40, batch_size=8, lr=3e-3, patience=100, seed=0,
                                        device="cpu"), tmp_path / "run", sp, level)
    h = m["history"]
    assert h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert m["test"]["unit"] == "kcal/mol" and m["test"]["n"] == len(sp["test"])
    net = load_bp_model(tmp_path / "run")
    # the saved network reproduces the metrics of training
    p = predict_energies(net, mols, sp["test"])
    e = np.array([mols[i]["energy_hartree"] for i in sp["test"]])
    assert np.abs(p - e).mean() * 627.5094740631 == pytest.approx(m["test"]["mae"], rel=1e-6)
    # interpolation: lambda = 0 and 1 are the two states
    a = torch.rand(5, net.n_in, dtype=torch.float64)
    b = torch.rand(5, net.n_in, dtype=torch.float64)
    assert torch.equal(interpolate_features(a, b, 0.0), a)
    assert torch.equal(interpolate_features(a, b, 1.0), b)
    with pytest.raises(HessflowError, match="same atoms"):
        interpolate_features(a, b[:4], 0.5)
    ethanol = next(mm for mm in mols if mm["name"] == "m6/g0")  # CCO -> CCN at the O site
    z_a = ethanol["numbers"]
    z_b = np.where(z_a == 8, 7, z_a)
    path = alchemical_energies(net, z_a, z_b, ethanol["coords_bohr"], [0.0, 0.5, 1.0])
    with torch.no_grad():
        ea = float(net.energy_hartree(torch.tensor(z_a)[None], torch.tensor(ethanol["coords_bohr"])[None]))
        eb = float(net.energy_hartree(torch.tensor(z_b)[None], torch.tensor(ethanol["coords_bohr"])[None]))
    assert path[0] == pytest.approx(ea, abs=1e-10) and path[2] == pytest.approx(eb, abs=1e-10)
    assert np.isfinite(path[1])


def test_validation_molecules_with_an_element_unseen_in_training_do_not_steer_training(xtb_store,
                                                                                      tmp_path):
    """A fitted reference knows only the training elements: a validation molecule with fluorine
    (none in training) has no target, and must not enter the validation loss as its total energy."""
    from hessflow.ml.bp import BPConfig, load_energies, molecule_splits, train_bp
    from hessflow.ml.core.training import TrainConfig
    mols, level = load_energies(xtb_store)
    sp = molecule_splits(mols, 0.15, 0.15, seed=0, exclude_elements=[9])
    sp["val"] = list(sp["val"]) + list(sp["excluded"])  # fluorine only in validation
    assert sp["excluded"] and not any(9 in mols[i]["numbers"] for i in sp["train"])
    m = train_bp(mols, BPConfig(features="onehot", hidden=(16,)),
                 TrainConfig(epochs=5, batch_size=8, seed=0, device="cpu"), tmp_path / "run", sp,
                 level)
    val = [h["val_loss"] for h in m["history"]]
    assert all(np.isfinite(v) and v < 100 for v in val), val  # standardised units, not ~E²/scale²


def test_cli_train_and_evaluate_end_to_end(xtb_store, tmp_path, capsys):
    from hessflow.cli import main
    run = tmp_path / "run"
    rc = main(["bp", "train", str(xtb_store), "--features", "onehot", "--exclude-element", "F",
               "--epochs", "15", "--batch-size", "8", "--hidden", "16,16", "--out", str(run)])
    out = capsys.readouterr().out
    assert rc == 0
    for f in ("model.pt", "metrics.json", "splits.json", "config.json"):
        assert (run / f).exists(), f
    assert "kcal/mol" in out and "test" in out
    # fitted references: F has none (no training molecule has it), said in one line
    assert "not predicted: no reference energy for F" in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["features"] == "onehot" and cfg["model"]["elements"] == [1, 6, 7, 8, 9]
    assert "F" not in cfg["reference_energy_hartree"]
    splits = json.loads((run / "splits.json").read_text())
    assert not set(splits["molecules"]["train"]) & set(splits["molecules"]["test"])
    rc = main(["bp", "evaluate", str(run), str(xtb_store)])
    captured = capsys.readouterr()
    assert rc == 2 and "element F: no reference energy" in captured.err  # hessflow: error: ...

    # element-coupled, free-atom references: the excluded element is predicted
    run2 = tmp_path / "run2"
    rc = main(["bp", "train", str(xtb_store), "--features", "modes", "--modes", "3",
               "--reference", "atoms", "--exclude-element", "F", "--epochs", "15",
               "--batch-size", "8", "--hidden", "16,16", "--out", str(run2)])
    out = capsys.readouterr().out
    assert rc == 0 and "excl.(F)" in out and "MAE=" in out
    m = json.loads((run2 / "metrics.json").read_text())
    assert m["excluded"]["n"] == 9 and "F" in m["excluded"]["per_element"]
    cfg = json.loads((run2 / "config.json").read_text())
    assert cfg["reference_energy_hartree"]["F"] < cfg["reference_energy_hartree"]["O"] < 0
    rc = main(["bp", "evaluate", str(run2), str(xtb_store), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 0 and r["held_out"]["n_molecules"] + r["seen"]["n_molecules"] == len(SMILES)
    assert r["unit"] == "kcal/mol" and math.isfinite(r["held_out"]["mae"])


def test_xyz_input_and_errors(xtb_store, tmp_path):
    from hessflow import api
    from hessflow.ml.bp import load_energies, load_bp_model
    xyz = tmp_path / "x.xyz"
    api.export(xtb_store, "extxyz", xyz)
    a, _ = load_energies(xtb_store)
    b, level = load_energies(xyz)
    assert level is None and [m["group"] for m in a] == [m["group"] for m in b]
    np.testing.assert_allclose([m["energy_hartree"] for m in a], [m["energy_hartree"] for m in b])
    np.testing.assert_allclose(a[5]["coords_bohr"], b[5]["coords_bohr"], atol=1e-7)
    bad = tmp_path / "bad.xyz"
    for text, error in [("1\nname=h\nH 0 0 0\n", "no energy_hartree"),
                        ("2\nname=h2 energy_hartree=-1.1\nH 0 0 0\n", "file ends after 1 of 2 atoms"),
                        ("1\nname=x energy_hartree=-1.1\nXx 0 0 0\n", "bad.xyz: frame x: .*Xx"),
                        ("1\nname=y energy_hartree=-1.1\nH 0 abc 0\n", "bad.xyz: frame y: .*abc")]:
        bad.write_text(text)
        with pytest.raises(HessflowError, match=error):
            load_energies(bad)
    with pytest.raises(HessflowError, match="not a 'hessflow bp train' run directory"):
        load_bp_model(tmp_path)
    from hessflow.ml.bp import molecule_splits
    with pytest.raises(HessflowError, match="--few-shot: needs --exclude-element"):
        molecule_splits(a, few_shot=2)
    with pytest.raises(HessflowError, match="only 3 contain F"):
        molecule_splits(a, exclude_elements=[9], few_shot=5)
