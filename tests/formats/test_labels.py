"""Derived labels in the exports: thermochemistry at the settings' temperature and pressure, and
atomization energies against free atoms at the record's level.

References: a hand computation of the free atoms' thermal terms from SI constants (Sackur-Tetrode,
2S+1 degeneracy), ASE's IdealGasThermo on the record's own frequencies at 500 K, and QM9's
conversion to kcal/mol."""

import csv
import io
import math

import numpy as np
import pytest

pytest.importorskip("tblite")

from hessflow import api  # noqa: E402
from hessflow.cli import main  # noqa: E402
from hessflow.formats import labels, qm9  # noqa: E402
from hessflow.qm.atom_references import cache_path  # noqa: E402
from hessflow.qm.molecules.elements import masses_amu  # noqa: E402
from hessflow.qm.thermo import GROUND_STATE_MULTIPLICITY, ThermoSettings  # noqa: E402
from hessflow.store import Store  # noqa: E402
from hessflow.units import HARTREE_KCALMOL  # noqa: E402

H_SI, KB_SI, AMU_SI = 6.62607015e-34, 1.380649e-23, 1.66053906660e-27
HARTREE_J = 4.3597447222071e-18


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "s.h5"
    summary = api.compute(["O", "C#N", "[CH3]"], path, engine="xtb", tasks="opt,freq",
                          progress=False, level=api.make_level("xtb", threads=1))
    assert summary.done == 3
    with Store(path) as st:
        return path, list(st.records())


def _free_atom_by_hand(e_hartree, z, temperature, pressure):
    """U, H, G (Hartree) of a free atom: E + 3/2 kT, + kT, - T (S_trans + k ln(2S+1))."""
    kt_j = KB_SI * temperature
    m = float(masses_amu([z])[0]) * AMU_SI
    q_trans = (2 * math.pi * m * kt_j / H_SI ** 2) ** 1.5 * kt_j / pressure
    s_over_k = math.log(q_trans) + 2.5 + math.log(GROUND_STATE_MULTIPLICITY[z])
    kt = kt_j / HARTREE_J
    u = e_hartree + 1.5 * kt
    return u, u + kt, u + kt - kt * s_over_k


@pytest.mark.parametrize("temperature, pressure", [(298.15, 101325.0), (500.0, 2.0e5)])
def test_atomization_energies_by_hand(store, tmp_path, temperature, pressure):
    _, recs = store
    refs = labels.atom_energies_for(recs, tmp_path / "s.h5")
    assert cache_path(tmp_path / "s.h5").exists()
    settings = ThermoSettings(temperature_k=temperature, pressure_pa=pressure)
    for rec in recs:
        got = labels.derived_labels(rec, settings, refs)
        atoms = refs(rec)
        parts = np.array([_free_atom_by_hand(atoms[int(z)], int(z), temperature, pressure)
                          for z in rec["numbers"]]).sum(0)
        e_atoms = sum(atoms[int(z)] for z in rec["numbers"])
        assert got["temperature_k"] == temperature and got["pressure_pa"] == pressure
        assert got["u0_atom_hartree"] == pytest.approx(got["u0_hartree"] - e_atoms, abs=1e-12)
        assert got["u_atom_hartree"] == pytest.approx(got["u_hartree"] - parts[0], abs=1e-9)
        assert got["h_atom_hartree"] == pytest.approx(got["h_hartree"] - parts[1], abs=1e-9)
        assert got["g_atom_hartree"] == pytest.approx(got["g_hartree"] - parts[2], abs=1e-8)
        assert got["u0_atom_hartree"] < 0  # bound
    no_freq = dict(recs[0], frequencies_cm1=None)
    assert all(math.isnan(v) for v in labels.derived_labels(no_freq, settings, refs).values())


def _csv(text):
    return {r["name"]: r for r in csv.DictReader(io.StringIO(text))}


def test_temperature_and_pressure_reach_the_csv_export_as_ase_computes_them(store, capsys):
    """hessflow export --temperature 500 --pressure 2e5: U, H, G, S of each record equal ASE's
    IdealGasThermo on the record's frequencies and geometry at those conditions; at 298.15 K they
    differ from it by the RRHO temperature dependence."""
    from ase import Atoms, units
    from ase.thermochemistry import IdealGasThermo
    path, recs = store
    assert main(["export", str(path), "--temperature", "500", "--pressure", "2e5"]) == 0
    hot = _csv(capsys.readouterr().out)
    cold = _csv(api.export(path, "csv"))
    for rec in recs:
        row = hot[rec["name"]]
        assert float(row["temperature_k"]) == 500.0 and float(row["pressure_pa"]) == 2e5
        atoms = Atoms(numbers=rec["numbers"], positions=rec["coords_opt_bohr"] * units.Bohr)
        atoms.set_masses(rec["masses_amu"])
        linear = row["rot_a_ghz"] == ""  # undefined A: a linear molecule
        ase = IdealGasThermo(vib_energies=rec["frequencies_cm1"] * units.invcm,
                             geometry="linear" if linear else "nonlinear", atoms=atoms,
                             potentialenergy=rec["energy_hartree"] * units.Hartree,
                             symmetrynumber=int(row["symmetry_number"]),
                             spin=(rec["multiplicity"] - 1) / 2, vib_selection="exact")
        ha = units.Hartree
        assert float(row["u_hartree"]) == pytest.approx(
            ase.get_internal_energy(500.0, verbose=False) / ha, abs=1e-8)
        assert float(row["h_hartree"]) == pytest.approx(
            ase.get_enthalpy(500.0, verbose=False) / ha, abs=1e-8)
        assert float(row["g_hartree"]) == pytest.approx(
            ase.get_gibbs_energy(500.0, 2e5, verbose=False) / ha, abs=1e-7)
        assert float(row["s_hartree_k"]) == pytest.approx(
            ase.get_entropy(500.0, 2e5, verbose=False) / ha, rel=1e-6)
        # U0 does not depend on T; H - U = kT at each temperature
        assert float(row["u0_hartree"]) == float(cold[rec["name"]]["u0_hartree"])
        for r, t in ((row, 500.0), (cold[rec["name"]], 298.15)):
            assert float(r["h_hartree"]) - float(r["u_hartree"]) == pytest.approx(
                t * 1.380649e-23 / 4.3597447222071e-18, rel=1e-9)
        assert float(row["u_hartree"]) > float(cold[rec["name"]]["u_hartree"])
        assert float(row["g_hartree"]) < float(cold[rec["name"]]["g_hartree"])


def test_qm9_csv_atomization_energies_are_the_csvs_in_kcal_per_mol(store):
    path, recs = store
    ours = _csv(api.export(path, "csv"))
    q = {r["mol_id"]: r for r in csv.DictReader(io.StringIO(api.export(path, "qm9-csv")))}
    for rec in recs:
        for label, name in (("u0_atom", "u0_atom_hartree"), ("u298_atom", "u_atom_hartree"),
                            ("h298_atom", "h_atom_hartree"), ("g298_atom", "g_atom_hartree")):
            assert float(q[rec["name"]][label]) == pytest.approx(
                float(ours[rec["name"]][name]) * HARTREE_KCALMOL, rel=1e-12)
        assert float(q[rec["name"]]["u298"]) == float(ours[rec["name"]]["u_hartree"])
    empty = _csv(api.export(path, "csv", atom_energies=False))
    assert all(r["u0_atom_hartree"] == "" and r["u_hartree"] != "" for r in empty.values())
    direct = qm9.qm9_csv_text(recs)  # without free-atom energies: left empty, never guessed
    assert all(r["u0_atom"] == "" for r in csv.DictReader(io.StringIO(direct)))


def test_qm9_formats_refuse_other_conditions_in_one_line(store, tmp_path, capsys):
    path, _ = store
    for fmt in ("qm9-csv", "qm9"):
        assert main(["export", str(path), "--format", fmt, "-o", str(tmp_path / fmt),
                     "--temperature", "500"]) == 2
        err = capsys.readouterr().err.strip()
        assert "298.15 K and 1 atm" in err and "\n" not in err
    assert main(["export", str(path), "--temperature", "-3"]) == 2
    assert "temperature_k" in capsys.readouterr().err


def test_open_formats_carry_the_derived_labels_and_read_back_unchanged(store, tmp_path):
    """extxyz info keys, ase.db key-value pairs and QCSchema extras hold each record's
    thermochemistry and atomization energies at the export's conditions, equal to the csv's
    (one function for all); reading the files back gives the same records as before (the
    derived labels are not record fields)."""
    import json

    import ase.db
    import ase.io
    from hessflow.formats import asedb, extxyz
    path, recs = store
    thermo = {"temperature_k": 400.0}
    rows = _csv(api.export(path, "csv", thermo=thermo))
    xyz = tmp_path / "s.extxyz"
    api.export(path, "extxyz", xyz, thermo=thermo)
    db = tmp_path / "s.db"
    api.export(path, "asedb", db, thermo=thermo)
    qc = [json.loads(line) for line in api.export(path, "qcschema", thermo=thermo).splitlines()]
    frames = {a.info["name"]: a.info for a in ase.io.read(xyz, index=":")}
    kvps = {r.name: r.key_value_pairs for r in ase.db.connect(str(db)).select()}
    extras = {q["molecule"]["name"]: q["extras"]["hessflow"] for q in qc}
    for name, row in rows.items():
        for col in ("g_hartree", "cv_hartree_k", "u0_atom_hartree", "rot_b_ghz"):
            want = float(row[col])
            for got in (frames[name], kvps[name], extras[name]):
                assert got[col] == pytest.approx(want, rel=1e-6), (name, col)
        assert frames[name]["temperature_k"] == 400.0
    back = {r["name"]: r for r in extxyz.read_extxyz(xyz)}
    for rec in recs:
        assert back[rec["name"]]["energy_hartree"] == pytest.approx(rec["energy_hartree"], abs=1e-12)
        assert "g_hartree" not in back[rec["name"]]
    assert {r["name"] for r in asedb.read_asedb(db)} == set(rows)
