"""Open formats both ways: extxyz, ASE db, VibrationsData, QCSchema, QM9; ASE/RDKit/QCSchema input.

Every test starts from a real GFN2-xTB store (opt, freq, polar) of small molecules, whose records
hold the gradient at their optimised geometry (``gradient_hartree_bohr``); the no-forces path
uses a copy of one without it (a record of a store written before gradients were kept)."""

import json
import subprocess
import sys

import numpy as np
import pytest

ase = pytest.importorskip("ase")
qcel = pytest.importorskip("qcelemental")
import ase.db  # noqa: E402
import ase.io  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from hessflow.errors import HessflowError, InputError  # noqa: E402
from hessflow.qm.thermo import record_thermochemistry  # noqa: E402
from hessflow.formats import asedb, ase_input, export, extxyz, qcschema, qm9  # noqa: E402
from hessflow.qm.molecules.inputs import InputFailure, read_molecules  # noqa: E402
from hessflow.store import Store  # noqa: E402
from hessflow.units import ANGSTROM_BOHR, BOHR_ANGSTROM, HARTREE_EV  # noqa: E402

NAMES = {"O": 'wet "water" \\ no. 1', "C#N": "hydrogen_cyanide", "CCO": "ethanol",
         "[CH3]": "methyl", "F": "42"}  # quotes, spaces, a backslash; a name ASE reads as a number


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    d = tmp_path_factory.mktemp("xtb")
    (d / "mols.smi").write_text("".join(f"{s} {n}\n" for s, n in NAMES.items()))
    out = subprocess.run([sys.executable, "-m", "hessflow", "compute", str(d / "mols.smi"),
                          "--store", str(d / "x.h5"), "--engine", "xtb", "--tasks",
                          "opt,freq,polar", "--no-progress", "--threads", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    with Store(d / "x.h5") as st:
        recs = list(st.records())
    assert [r["status"] for r in recs] == ["done"] * len(NAMES)
    assert all(r["gradient_hartree_bohr"].shape == (r["n_atoms"], 3) for r in recs)
    return recs


@pytest.fixture
def with_gradient(records):
    """The records as stored (with the gradient, Hartree/Bohr, of their optimised geometry,
    the first one's scaled up to forces that are not round-off), except the second: its
    gradient removed, as in a record of a store written before gradients were kept."""
    recs = [dict(r) for r in records]
    recs[0]["gradient_hartree_bohr"] = recs[0]["gradient_hartree_bohr"] * 1e3
    recs[1]["gradient_hartree_bohr"] = None
    return recs


def assert_same_records(want, got, rtol=1e-13):
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert set(a) <= set(b), set(a) - set(b)
        for field, va in a.items():
            vb = b[field]
            if va is None or vb is None:
                assert va is None and vb is None, (a["name"], field)
            elif isinstance(va, np.ndarray):
                assert np.shape(vb) == va.shape, (a["name"], field)
                np.testing.assert_allclose(vb, va, rtol=rtol, atol=1e-15, err_msg=field)
            elif isinstance(va, float) and np.isnan(va):
                assert np.isnan(vb), (a["name"], field)
            else:
                assert vb == va and type(vb) is type(va) or isinstance(va, np.generic), (field, vb)


# -- extxyz --------------------------------------------------------------------------------------

def test_extxyz_ase_reads_energy_forces_dipole_and_labels(with_gradient, tmp_path):
    p = tmp_path / "d.extxyz"
    assert extxyz.write_extxyz(with_gradient, p) == len(NAMES)
    frames = ase.io.read(p, index=":")
    for rec, atoms in zip(with_gradient, frames):
        assert atoms.info["name"] == rec["name"] and isinstance(atoms.info["name"], str)
        assert atoms.info["smiles"] == rec["smiles"]  # "F" would read as False unless encoded
        assert atoms.get_potential_energy() == pytest.approx(rec["energy_hartree"] * HARTREE_EV,
                                                             rel=1e-15)
        np.testing.assert_allclose(atoms.get_dipole_moment(), rec["dipole_au"] * BOHR_ANGSTROM)
        np.testing.assert_allclose(atoms.positions, rec["coords_opt_bohr"] * BOHR_ANGSTROM,
                                   rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(atoms.get_masses(), rec["masses_amu"])
        assert atoms.info["zpve_hartree"] == rec["zpve_hartree"]
        assert atoms.info["charge"] == rec["charge"] and atoms.info["n_imag"] == 0
    forces = frames[0].get_forces()  # eV/Angstrom = -gradient
    np.testing.assert_allclose(forces, -with_gradient[0]["gradient_hartree_bohr"]
                               * HARTREE_EV / BOHR_ANGSTROM, rtol=1e-15)
    with pytest.raises(Exception):  # no gradient, no forces
        frames[1].get_forces()


def test_extxyz_hessflow_reads_its_own_file_back_without_loss(with_gradient, tmp_path):
    p = tmp_path / "d.extxyz"
    extxyz.write_extxyz(with_gradient, p)
    back = extxyz.read_extxyz(p)
    assert_same_records(with_gradient, back)
    assert [r["name"] for r in back] == list(NAMES.values())
    assert back[1]["gradient_hartree_bohr"] is None  # only a frame with forces gives a gradient
    slim = tmp_path / "slim.extxyz"
    extxyz.write_extxyz(with_gradient, slim, vibrations=False)
    got = extxyz.read_extxyz(slim)
    assert got[0]["hessian_hartree_bohr2"] is None and got[0]["frequencies_cm1"] is None
    assert got[0]["energy_hartree"] == with_gradient[0]["energy_hartree"]
    np.testing.assert_allclose(got[0]["gradient_hartree_bohr"],
                               with_gradient[0]["gradient_hartree_bohr"], rtol=1e-13)
    # and as input: names from the `name` key, charge and multiplicity from the labels
    mols = ase_input.molecules_from_ase(p)
    assert [m.name for m in mols] == list(NAMES.values())
    assert [m.multiplicity for m in mols] == [r["multiplicity"] for r in with_gradient]
    assert mols[0].smiles == "O" and mols[0].extra["reference"]["zpve_hartree"] > 0
    np.testing.assert_allclose(mols[2].coords_bohr, with_gradient[2]["coords_opt_bohr"],
                               rtol=1e-13, atol=1e-14)


def test_extxyz_written_by_ase_is_read_back(tmp_path):
    water = ase.Atoms("OH2", positions=[[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]])
    water.info.update(name="a water, 'quoted'", charge=0, smiles="O", note="kept out")
    forces = np.array([[0.0, 0.0, 0.5], [0.0, 0.1, -0.25], [0.0, -0.1, -0.25]])  # eV/Angstrom
    water.calc = SinglePointCalculator(water, energy=-2080.5, forces=forces)
    ion = ase.Atoms("NH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                       [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    ion.info["charge"] = 1
    p = tmp_path / "by_ase.extxyz"
    ase.io.write(p, [water, ion], format="extxyz")
    recs = extxyz.read_extxyz(p)
    assert recs[0]["name"] == "a water, 'quoted'" and recs[1]["name"] == "by_ase#2"
    assert recs[0]["energy_hartree"] == pytest.approx(-2080.5 / HARTREE_EV, rel=1e-14)
    np.testing.assert_allclose(recs[0]["gradient_hartree_bohr"],
                               -forces * BOHR_ANGSTROM / HARTREE_EV, rtol=1e-14)
    np.testing.assert_allclose(recs[0]["coords_input_bohr"], water.positions * ANGSTROM_BOHR,
                               atol=1e-7)
    assert recs[0]["coords_opt_bohr"] is None and recs[0]["status"] == "done"
    assert recs[1]["charge"] == 1 and recs[1]["status"] == "pending" and recs[1]["formula"] == "H4N"
    mols = ase_input.molecules_from_ase(p)
    assert [m.name for m in mols] == ["a water, 'quoted'", "by_ase#2"]
    assert mols[1].charge == 1 and mols[1].multiplicity == 1
    assert mols[0].extra["reference"]["energy_ev"] == -2080.5
    ase.io.write(tmp_path / "xe.extxyz", ase.Atoms("Xe"))
    with pytest.raises(ValueError, match=r"unsupported element\(s\) Z=\[54\]"):
        extxyz.read_extxyz(tmp_path / "xe.extxyz")


def test_extxyz_strings_ase_would_misread_are_encoded():
    """Every string comes back from ASE's reader as itself: plain when safe, else _JSON."""
    from ase.io.extxyz import key_val_str_to_dict
    tricky = ["42", "F", "T", "1e3", "1 2", "1,2", "nan", "-inf", "1_0", "T F", "a\nb", "a\rb",
              '_JSON "x"', "_JSON", "back\\slash", 'q"uote', "", " ", "a b 1", "{x}", "[1]",
              "'1'", "C=O", "k=v w", "F T x", "x\ty", "ü", 'end\\"']
    for text in tricky:
        back = key_val_str_to_dict(f"k={extxyz.quote(text)}")["k"]
        assert isinstance(back, str) and back == text, text
        if extxyz.reads_back(text):  # then the plain quoted form is enough: check it with ASE
            plain = text.replace("\\", "\\\\").replace('"', '\\"')
            assert key_val_str_to_dict(f'k="{plain}"')["k"] == text, text


# -- ASE database and VibrationsData -------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".db", ".json"])
def test_asedb_round_trip_labels_data_and_forces(with_gradient, tmp_path, suffix):
    p = tmp_path / ("d" + suffix)
    ids = asedb.write_asedb(with_gradient, p)
    assert len(ids) == len(NAMES)
    assert_same_records(with_gradient, asedb.read_asedb(p))
    asedb.write_asedb(with_gradient[:2], p)  # replaces the file unless append=True
    assert len(asedb.read_asedb(p)) == 2
    asedb.write_asedb(with_gradient, p)
    db = ase.db.connect(str(p))
    row = db.get(name="ethanol")  # labels are key-value pairs ASE can select on
    rec = with_gradient[2]
    assert row.zpve_hartree == rec["zpve_hartree"] and row.molecular_charge == 0
    assert row.energy == pytest.approx(rec["energy_hartree"] * HARTREE_EV, rel=1e-15)
    np.testing.assert_array_equal(row.data["hessian_hartree_bohr2"], rec["hessian_hartree_bohr2"])
    np.testing.assert_array_equal(row.data["alpha_bohr3"], rec["alpha_bohr3"])
    np.testing.assert_array_equal(row.data["frequencies_cm1"], rec["frequencies_cm1"])
    assert db.count("n_atoms>5") == 1
    first = db.get(1)
    np.testing.assert_allclose(first.forces, -with_gradient[0]["gradient_hartree_bohr"]
                               * HARTREE_EV / BOHR_ANGSTROM, rtol=1e-15)
    assert db.get(5).data["strings"]["name"] == "42"  # ASE refuses "42" as a string value
    assert [r["name"] for r in asedb.read_asedb(p, "zpve_hartree>0.05")] == ["ethanol"]
    mols = ase_input.molecules_from_ase(p)  # and as input, names and charges kept
    assert [m.name for m in mols] == list(NAMES.values()) and mols[3].multiplicity == 2
    assert [m.name for m in ase_input.molecules_from_ase(p, index="1:3")] == \
        ["hydrogen_cyanide", "ethanol"]


def test_vibrations_data_gives_the_record_frequencies(records):
    for rec in records:
        vib = asedb.to_vibrations(rec)
        freqs = vib.get_frequencies()  # 3N values, translations/rotations not projected
        assert freqs.shape == (3 * rec["n_atoms"],)
        m = len(rec["frequencies_cm1"])  # 3N-6, 3N-5 for HCN and HF
        linear = rec["name"] == "hydrogen_cyanide" or rec["n_atoms"] == 2
        assert m == 3 * rec["n_atoms"] - (5 if linear else 6)
        np.testing.assert_allclose(np.sort(freqs.real)[-m:], rec["frequencies_cm1"], atol=1e-3)
        assert np.abs(np.sort(np.abs(freqs))[:-m]).max() < 20  # the rigid-body ones near zero
        assert vib.get_zero_point_energy() == pytest.approx(rec["zpve_hartree"] * HARTREE_EV,
                                                            rel=2e-2)
    bare = dict(records[0], hessian_hartree_bohr2=None)
    with pytest.raises(HessflowError, match="no Hessian"):
        asedb.to_vibrations(bare)


# -- QCSchema ------------------------------------------------------------------------------------

def test_atomic_results_are_valid_qcschema(with_gradient, tmp_path):
    from qcelemental.models import AtomicResult
    res = qcschema.to_atomic_result(with_gradient[0])
    assert isinstance(res, AtomicResult) and res.success
    rec = with_gradient[0]
    n = rec["n_atoms"]
    assert res.driver == "hessian" and res.return_result.shape == (3 * n, 3 * n)
    np.testing.assert_array_equal(res.return_result, rec["hessian_hartree_bohr2"])
    assert res.properties.return_energy == rec["energy_hartree"]
    np.testing.assert_array_equal(res.properties.return_gradient, rec["gradient_hartree_bohr"])
    np.testing.assert_allclose(res.molecule.geometry, rec["coords_opt_bohr"], atol=1e-12)
    assert res.molecule.name == rec["name"] and res.molecule.molecular_multiplicity == 1
    assert res.molecule.identifiers.canonical_isomeric_smiles == "O"
    assert res.model.method == "gfn2-xtb" and res.model.basis is None
    assert res.provenance.creator == "hessflow"
    hf = res.extras["hessflow"]
    assert hf["zpve_hartree"] == rec["zpve_hartree"] and hf["provenance"]["engine"] == "xtb"
    np.testing.assert_array_equal(hf["alpha_bohr3"], rec["alpha_bohr3"])
    no_hessian = dict(rec, hessian_hartree_bohr2=None)
    assert qcschema.to_atomic_result(no_hessian).driver == "gradient"
    bare = dict(no_hessian)
    del bare["gradient_hartree_bohr"]
    assert qcschema.to_atomic_result(bare).driver == "energy"
    with pytest.raises(HessflowError, match="failed"):
        qcschema.to_atomic_result(dict(rec, status="failed", reason="scf"))
    p = tmp_path / "r.jsonl"
    assert qcschema.write_qcschema(with_gradient, p) == len(NAMES)
    back = qcschema.read_qcschema(p)  # qcelemental re-validates each line
    assert [r.molecule.name for r in back] == list(NAMES.values())
    assert back[3].molecule.molecular_multiplicity == 2
    np.testing.assert_array_equal(back[2].return_result, with_gradient[2]["hessian_hartree_bohr2"])
    dumped = json.loads(p.read_text().splitlines()[1])
    assert dumped["schema_name"] == "qcschema_output" and dumped["driver"] == "hessian"


def test_qcschema_molecules_are_input(records, tmp_path):
    from qcelemental.models import AtomicInput, Molecule as QcMolecule
    res = qcschema.to_atomic_result(records[2])
    rec = records[2]
    for form in (res.molecule, res.molecule.dict(), res.molecule.json(), json.loads(res.json()),
                 res):
        mol = qcschema.molecule_from_qcschema(form)
        assert mol.name == "ethanol" and mol.smiles == "CCO" and mol.charge == 0
        np.testing.assert_allclose(mol.coords_bohr, rec["coords_opt_bohr"], atol=1e-12)
    p = tmp_path / "mol.json"
    p.write_text(res.molecule.json())
    assert qcschema.molecule_from_qcschema(p).natoms == 9
    inp = AtomicInput(molecule=res.molecule, driver="energy", model={"method": "b3lyp"})
    assert qcschema.molecule_from_qcschema(inp.json(), name="given").name == "given"
    radical = qcschema.molecule_from_qcschema(
        "0 2\nC 0 0 0\nH 0 0 1.09\nH 0 1.03 -0.36\nH 0.89 -0.51 -0.36", name="methyl")
    assert radical.multiplicity == 2  # psi4-style string, Angstrom -> Bohr
    assert radical.coords_bohr[1, 2] == pytest.approx(1.09 * ANGSTROM_BOHR, abs=1e-8)
    helium = QcMolecule(symbols=["He"], geometry=[0, 0, 0])
    assert qcschema.molecule_from_qcschema(helium).numbers.tolist() == [2]
    for bad, message in [({"symbols": ["H"], "geometry": [0, 0]}, "ValueError"),
                         ('{"symbols":', "JSONDecodeError"),
                         ("@He 0 0 0\nH 0 0 1.0", "ghost atoms"),
                         ({"symbols": ["Xe"], "geometry": [0, 0, 0]}, "unsupported element"),
                         (3.5, "not a QCSchema molecule")]:
        with pytest.raises(InputError, match=message) as err:
            qcschema.molecule_from_qcschema(bad)
        assert "\n" not in str(err.value)


# -- QM9 -----------------------------------------------------------------------------------------

def test_qm9_xyz_is_read_back_by_hessflows_qm9_reader(records, tmp_path):
    closed = [dict(r) for r in records if qm9.qm9_representable(r)]
    closed[1]["name"] = "gdb_3"  # QM9 molecules keep their number
    paths = qm9.write_qm9_xyz(closed, tmp_path / "qm9")
    assert [p.name for p in paths] == ["dsgdb9nsd_000004.xyz", "dsgdb9nsd_000003.xyz",
                                       "dsgdb9nsd_000005.xyz", "dsgdb9nsd_000006.xyz"]
    lines = paths[0].read_text().splitlines()
    assert lines[1].startswith("gdb 4\t") and len(lines[1].split("\t")) == 17  # 15 labels, a trailing tab
    assert len(lines) == closed[0]["n_atoms"] + 5
    mols = {m.name: m for m in read_molecules(tmp_path / "qm9")}
    assert all(not isinstance(m, InputFailure) for m in mols.values()), mols
    for rec, path in zip(closed, paths):
        mol = mols["gdb_" + str(int(path.stem.split("_")[1]))]
        ref = mol.extra["reference"]
        np.testing.assert_allclose(mol.coords_bohr, rec["coords_opt_bohr"], atol=1e-9)
        assert mol.smiles == rec["smiles"]
        assert ref["mu"] == rec["dipole_debye"] and ref["alpha"] == rec["alpha_iso_bohr3"]
        assert ref["homo"] == rec["homo_hartree"] and ref["gap"] == rec["gap_hartree"]
        assert ref["zpve"] == rec["zpve_hartree"]
        assert ref["U0"] == pytest.approx(rec["energy_hartree"] + rec["zpve_hartree"], rel=1e-12)
        # the thermochemical labels, derived from the record's frequencies at 298.15 K, 1 atm
        th = record_thermochemistry(rec).to_qm9_labels()
        for label, name in (("A", "A"), ("B", "B"), ("C", "C"), ("U", "u298"), ("H", "h298"),
                            ("G", "g298"), ("Cv", "cv")):
            assert ref[label] == pytest.approx(th[name], rel=1e-12), label
        assert ref["U0"] < ref["U"] < ref["H"] and ref["G"] < ref["H"] and ref["Cv"] > 0
        assert ref["B"] >= ref["C"] > 0 and (ref["A"] == 0 or ref["A"] >= ref["B"])  # 0: linear
        assert np.isnan(ref["r2"])  # needs the electron density: not invented
        np.testing.assert_allclose(mol.extra["reference_frequencies_cm1"], rec["frequencies_cm1"],
                                   atol=5e-5)
        assert mol.extra["inchi"][0].startswith("InChI=1S/")
    with pytest.raises(HessflowError, match="methyl"):
        qm9.write_qm9_xyz(records, tmp_path / "refused")
    assert not (tmp_path / "refused").exists() or not list((tmp_path / "refused").iterdir())


def test_qm9_csv_has_qm9s_columns_and_is_read_back(records, tmp_path):
    import csv
    shared = "mol_id,smiles,A,B,C,mu,alpha,homo,lumo,gap,r2,zpve,u0,u298,h298,g298,cv,u0_atom," \
             "u298_atom,h298_atom,g298_atom"
    p = tmp_path / "qm9.csv"
    qm9.write_qm9_csv(records, p)
    assert p.read_text().splitlines()[0] == shared
    rows = list(csv.DictReader(p.open()))
    th = record_thermochemistry(records[2]).to_qm9_labels()
    assert rows[2]["mol_id"] == "ethanol" and float(rows[2]["A"]) == th["A"]
    assert float(rows[2]["cv"]) == th["cv"] and rows[2]["r2"] == "" and rows[2]["u0_atom"] == ""
    assert float(rows[2]["zpve"]) == records[2]["zpve_hartree"]
    items = list(read_molecules(p, embed=False))
    assert [m.name for m in items] == list(NAMES.values())
    assert items[3].multiplicity == 2  # the SMILES carries the radical
    assert items[1].extra["reference"]["mu"] == records[1]["dipole_debye"]
    assert "r2" not in items[1].extra["reference"]  # left empty: not invented


def test_qm9_numbers_keep_gdb_numbers_and_never_collide():
    names = ["gdb_7", "water", "gdb_7", "gdb_2", "x"]
    assert qm9.qm9_numbers([{"name": n} for n in names]) == [7, 8, 9, 2, 10]


# -- one entry point ------------------------------------------------------------------------------

def test_export_records_by_format_name(records, tmp_path):
    text = export.export_records(records, "extxyz", tmp_path / "d.extxyz")
    assert text == extxyz.extxyz_text(records) == (tmp_path / "d.extxyz").read_text()
    lines = text.splitlines()  # today's export's shape: counts, comment lines, atom lines
    assert lines[0] == "3" and 'name="wet \\"water\\" \\\\ no. 1"' in lines[1]
    assert len(lines) == sum(2 + r["n_atoms"] for r in records)
    assert export.export_records(records[:2], "qcschema").count("\n") == 2
    assert export.export_records(records, "qm9-csv") == qm9.qm9_csv_text(records)
    assert export.export_records(records, "asedb", tmp_path / "d.db") == ""
    assert len(asedb.read_asedb(tmp_path / "d.db")) == len(NAMES)
    export.export_records(records[:3], "qm9", tmp_path / "qm9")
    assert len(list((tmp_path / "qm9").iterdir())) == 3
    with pytest.raises(HessflowError, match="did you mean 'asedb'"):
        export.export_records(records, "asedbb")
    with pytest.raises(HessflowError, match="give -o/--output"):
        export.export_records(records, "qm9")


# -- input from ASE and RDKit --------------------------------------------------------------------

def test_molecules_from_ase_files_objects_and_one_line_errors(tmp_path):
    from ase.build import bulk, molecule
    water = molecule("H2O")
    water.info["name"] = "my water"
    mols = ase_input.molecules_from_ase([water, molecule("CH3")])
    assert [(m.name, m.multiplicity) for m in mols] == [("my water", 1), ("CH3#2", 2)]
    assert ase_input.molecules_from_ase(molecule("NH3"))[0].name == "H3N"
    np.testing.assert_allclose(mols[0].coords_bohr, water.positions * ANGSTROM_BOHR)
    ase.io.write(tmp_path / "benzene.pdb", molecule("C6H6"))
    (m,) = ase_input.molecules_from_ase(tmp_path / "benzene.pdb")
    assert m.name == "benzene" and m.natoms == 12
    ase.io.write(tmp_path / "t.traj", [water, molecule("NH3")])
    assert [m.source for m in ase_input.molecules_from_ase(tmp_path / "t.traj")] == \
        [f"{tmp_path / 't.traj'}#1", f"{tmp_path / 't.traj'}#2"]
    (tmp_path / "bad.xyz").write_text("2\n\nH 0 0 0\nH 0 0 0.1\n2\nname=fine\nH 0 0 0\nH 0 0 0.74\n")
    with pytest.raises(InputError, match=r"bad.xyz#1: bad: overlapping atoms"):
        ase_input.molecules_from_ase(tmp_path / "bad.xyz")
    items = list(ase_input.read_ase_items(tmp_path / "bad.xyz"))
    assert isinstance(items[0], InputFailure) and items[1].name == "fine"
    (tmp_path / "x.unknown").write_text("nothing\n")
    for source, message in [(tmp_path / "nope.xyz", "no such file"),
                            (tmp_path / "x.unknown", "ASE cannot read it"),
                            ([water, 3], "not ase.Atoms"), (bulk("Si"), "periodic cell")]:
        with pytest.raises(InputError, match=message) as err:
            ase_input.molecules_from_ase(source)
        assert "\n" not in str(err.value)


def test_molecule_from_rdkit_uses_its_conformer_or_embeds():
    from rdkit import Chem
    from rdkit.Chem import AllChem
    mol = Chem.AddHs(Chem.MolFromSmiles("CC[O-]"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    mol.SetProp("_Name", "ethoxide")
    m = ase_input.molecule_from_rdkit(mol)
    assert (m.name, m.charge, m.multiplicity, m.smiles, m.natoms) == ("ethoxide", -1, 1, "CC[O-]", 8)
    np.testing.assert_allclose(m.coords_bohr, mol.GetConformer().GetPositions() * ANGSTROM_BOHR)
    flat = ase_input.molecule_from_rdkit(Chem.MolFromSmiles("[CH2]C"))  # no conformer: embedded
    assert flat.multiplicity == 2 and flat.natoms == 7 and flat.extra["conformer"]["seed"]
    with pytest.raises(InputError, match="Chem.AddHs"):
        ase_input.molecule_from_rdkit(Chem.RemoveHs(mol))
