"""`bp train` data: standard ASE extended XYZ (energy eV, forces eV/Angstrom of a
SinglePointCalculator, as ase.io.write writes them) besides hessflow stores."""

import json

import numpy as np
import pytest

ase = pytest.importorskip("ase")
import ase.io  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from hessflow.errors import HessflowError  # noqa: E402
from hessflow.ml.bp import load_energies  # noqa: E402
from hessflow.units import BOHR_ANGSTROM, HARTREE_EV  # noqa: E402


def _write_ase(mols, path, named=True):
    frames = []
    for m in mols:
        a = Atoms(numbers=m["numbers"], positions=m["coords_bohr"] * BOHR_ANGSTROM)
        a.calc = SinglePointCalculator(a, energy=m["energy_hartree"] * HARTREE_EV,
                                       forces=m["forces_hartree_bohr"] * HARTREE_EV / BOHR_ANGSTROM)
        if named:
            a.info["name"] = m["name"].split("/")[0]
        frames.append(a)
    ase.io.write(path, frames, format="extxyz")


def test_ase_extxyz_gives_the_store_energies_and_forces(force_store, tmp_path):
    mols, _ = load_energies(force_store)
    p = tmp_path / "ase.extxyz"
    _write_ase(mols, p)
    back, level = load_energies(p)
    assert level is None and len(back) == len(mols)
    np.testing.assert_allclose([m["energy_hartree"] for m in back],
                               [m["energy_hartree"] for m in mols], rtol=1e-13)
    for a, b in zip(mols, back):
        np.testing.assert_array_equal(a["numbers"], b["numbers"])
        # ASE writes 8 decimals (Angstrom, eV/Angstrom)
        np.testing.assert_allclose(b["coords_bohr"], a["coords_bohr"], atol=1e-7)
        np.testing.assert_allclose(b["forces_hartree_bohr"], a["forces_hartree_bohr"],
                                   atol=1e-9)
    # a frame's name keeps the geometries of one molecule together; without names, the formula
    assert len({m["group"] for m in back}) == len({m["group"] for m in mols})
    _write_ase(mols[:12], p, named=False)
    anon, _ = load_energies(p)
    assert {m["group"] for m in anon} == {"CH4", "C2H6"}
    assert load_energies(p, limit=5)[0][4]["name"] == "ase#5"


def test_ase_extxyz_without_energy_is_one_line(tmp_path):
    p = tmp_path / "noe.extxyz"
    a = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    a.calc = SinglePointCalculator(a, forces=np.zeros((2, 3)))
    ase.io.write(p, [a], format="extxyz")
    with pytest.raises(HessflowError, match="noe.extxyz: frame .* has no energy"):
        load_energies(p)


def test_cli_bp_train_on_ase_extxyz_with_forces(force_store, tmp_path, capsys):
    from hessflow.cli import main
    mols, _ = load_energies(force_store)
    p = tmp_path / "ase.extxyz"
    _write_ase(mols, p)
    out = tmp_path / "run"
    assert main(["--no-progress", "bp", "train", str(p), "--force-weight", "5", "--epochs", "3",
                 "--hidden", "16", "--out-dir", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "forces MAE=" in text and "eV/Angstrom" in text
    m = json.loads((out / "metrics.json").read_text())
    assert m["force_weight"] == 5 and m["n_geometries_with_forces"] == len(mols)
    assert m["test"]["force_mae_ev_angstrom"] > 0
    assert main(["bp", "evaluate", str(out), str(p), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["held_out"]["force_mae_hartree_bohr"] > 0
