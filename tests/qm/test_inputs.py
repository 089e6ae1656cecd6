"""Molecule input: formats, reproducible 3D, and one clear error per bad molecule."""

import numpy as np
import pytest

from hessflow.errors import InputError
from hessflow.qm.molecules import conformers
from hessflow.qm.molecules.inputs import InputFailure, read_molecules
from hessflow.qm.molecules.molecule import Molecule

QM9_GDB6 = """4
gdb 6\t2.72539\t0.95216\t0.7264\t2.1089\t14.18\t-0.267\t-0.0406\t0.2263\t38.1524\t0.026603\t-114.483613\t-114.480746\t-114.479802\t-114.505268\t6.413\t
C\t-0.0080587697\t0.5916170825\t0.0003409843\t0.16641*^-3
O\t0.0016197071\t-0.6013809007\t-0.0001964637\t-0.2563
H\t0.9069581883\t1.1833645049\t-0.0005312289\t0.0803
H\t-0.9338045234\t1.1743924306\t0.0007217897\t0.0801
1261.7123\t1276.8094\t1537.1521\t1827.2583\t2737.4854\t2779.9873
C=O\tC=O
InChI=1S/CH2O/c1-2/h1H2\tInChI=1S/CH2O/c1-2/h1H2
"""


def _items(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return list(read_molecules(p))


def test_smiles_file_names_charges_and_multiplicities(tmp_path):
    items = _items(tmp_path, "m.smi", "# comment\nO water\nC#N\n[NH4+] ammonium\n[CH3] methyl\n")
    assert [type(i) for i in items] == [Molecule] * 4
    water, hcn, nh4, ch3 = items
    assert water.name == "water" and water.natoms == 3 and water.smiles == "O"
    assert hcn.smiles == "C#N" and hcn.natoms == 3  # '#' inside a line is a triple bond
    assert (nh4.charge, nh4.multiplicity) == (1, 1)
    assert (ch3.charge, ch3.multiplicity) == (0, 2)


def test_embedding_is_seeded_and_reproducible():
    a = conformers.from_smiles("CCO", "ethanol", seed=7)
    b = conformers.from_smiles("CCO", "ethanol", seed=7)
    c = conformers.from_smiles("CCO", "ethanol", seed=8)
    assert np.array_equal(a.coords_bohr, b.coords_bohr)
    assert not np.allclose(a.coords_bohr, c.coords_bohr)
    # MMFF-relaxed: C-O bond length near 1.42 Angstrom
    d = np.linalg.norm(a.coords_bohr[1] - a.coords_bohr[2]) * 0.529177210903
    assert 1.38 < d < 1.46


@pytest.mark.parametrize("line, fragment", [
    ("C1CC bad_ring", "invalid SMILES"),
    ("[U] uranium", "unsupported element"),
    ("[Fe] iron", "unsupported element"),
    ("C mult=2 methane_doublet", "contradict multiplicity 2"),
    ("[NH4+] charge=0 wrong_charge", "contradicts the SMILES formal charge"),
])
def test_bad_smiles_lines_fail_alone_with_a_named_reason(tmp_path, line, fragment):
    items = _items(tmp_path, "m.smi", f"O water\n{line}\nN ammonia\n")
    assert isinstance(items[0], Molecule) and isinstance(items[2], Molecule)
    bad = items[1]
    assert isinstance(bad, InputFailure)
    assert bad.name == line.split()[-1]
    assert fragment in bad.reason and "\n" not in str(bad)


def test_xyz_multi_frame_charge_multiplicity_and_errors(tmp_path):
    text = ("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n"
            "2\ncation charge=1 mult=2\nH 0 0 0\nH 0 0 0.74\n"
            "2\nclash\nH 0 0 0\nH 0 0 0.1\n"
            "1\nodd radical\nH 0 0 0\n"
            "2\nmystery\nXx 0 0 0\nH 0 0 1\n")
    items = _items(tmp_path, "m.xyz", text)
    assert isinstance(items[0], Molecule) and items[0].name == "water"
    assert np.isclose(items[0].coords_bohr[1, 1], 0.757 / 0.529177210903)
    assert (items[1].charge, items[1].multiplicity) == (1, 2)
    assert isinstance(items[2], InputFailure) and "overlapping atoms H1 and H2" in items[2].reason
    assert isinstance(items[3], InputFailure) and "contradict multiplicity 1" in items[3].reason
    assert isinstance(items[4], InputFailure) and "unsupported element 'Xx'" in items[4].reason


def test_qm9_extended_xyz(tmp_path):
    (m,) = _items(tmp_path, "dsgdb9nsd_000006.xyz", QM9_GDB6)
    assert m.name == "gdb_6" and m.smiles == "C=O" and m.natoms == 4
    assert m.extra["reference"]["zpve"] == pytest.approx(0.026603)
    assert m.extra["reference"]["alpha"] == pytest.approx(14.18)
    assert m.extra["reference_frequencies_cm1"][0] == pytest.approx(1261.7123)
    assert m.extra["mulliken_charges"][0] == pytest.approx(0.16641e-3)  # Fortran *^ exponent
    assert m.extra["inchi"][0].startswith("InChI=1S/CH2O")


def test_sdf_3d_and_2d(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem
    w = Chem.SDWriter(str(tmp_path / "m.sdf"))
    mol3d = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol3d, randomSeed=1)
    mol3d.SetProp("_Name", "methanol")
    w.write(mol3d)
    mol2d = Chem.MolFromSmiles("C=C")
    AllChem.Compute2DCoords(mol2d)
    mol2d.SetProp("_Name", "ethene")
    w.write(mol2d)
    w.close()
    a, b = read_molecules(tmp_path / "m.sdf")
    assert a.name == "methanol" and a.natoms == 6 and a.smiles == "CO"
    assert np.allclose(a.coords_bohr, mol3d.GetConformer().GetPositions() / 0.529177210903, atol=1e-3)
    assert b.name == "ethene" and b.natoms == 6 and np.ptp(b.coords_bohr[:, 2]) >= 0  # embedded 3D


def test_csv_keeps_reference_labels(tmp_path):
    items = _items(tmp_path, "m.csv", "mol_id,smiles,zpve,alpha\ngdb_3,O,0.021375,6.31\ngdb_x,C(,1,2\n")
    assert items[0].name == "gdb_3" and items[0].extra["reference"]["alpha"] == 6.31
    assert isinstance(items[1], InputFailure) and items[1].name == "gdb_x"


@pytest.mark.parametrize("name, text", [("e.smi", ""), ("c.smi", "# only a comment\n"),
                                         ("e.xyz", "\n\n")])
def test_empty_files_raise_one_line(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError, match="empty file"):
        list(read_molecules(p))


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        list(read_molecules(tmp_path / "nope.smi"))
    (tmp_path / "x.pdb").write_text("ATOM")
    with pytest.raises(InputError, match="unknown input format"):
        list(read_molecules(tmp_path / "x.pdb"))


@pytest.mark.parametrize("smiles", ["OCC", "N#CC(O)C", "OC1CC1N", "[NH3+]CC([O-])=O"])
def test_deferred_embedding_equals_embedding_at_once(smiles):
    """The workflow parses on the driver and embeds on a worker: same atoms, same coordinates,
    even when the canonical SMILES orders the atoms differently from the input."""
    later = conformers.from_smiles(smiles, "m", embed_now=False)
    assert later.needs_conformer and np.isnan(later.coords_bohr).all()
    now = conformers.from_smiles(smiles, "m")
    done = conformers.embed_molecule(later)
    assert np.array_equal(done.numbers, later.numbers)
    assert np.array_equal(done.coords_bohr, now.coords_bohr)
    assert done.smiles == now.smiles and not done.needs_conformer


def test_molecules_is_pure_chemistry():
    """hessflow.qm.molecules imports only itself and the base modules: no engine, record, store
    or later layer (RDKit and numpy are fine)."""
    import ast
    from pathlib import Path

    import hessflow.qm.molecules as pkg
    allowed = {"hessflow.errors", "hessflow.units", "hessflow.settings"}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ["hessflow", "qm", "molecules"][:3 - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                target = next((n for n in names if n.startswith("hessflow")), "")
            else:
                continue
            if target.startswith("hessflow"):
                assert target.startswith("hessflow.qm.molecules") or target in allowed, \
                    f"{path.name}:{node.lineno} imports {target}"


# -- correct chemistry of inputs (issue #12, item 9) -----------------------------------------------
def test_isotope_labels_give_isotope_masses_and_their_own_key():
    d2o = conformers.from_smiles("[2H]O[2H]", "d2o")
    h2o = conformers.from_smiles("O", "h2o")
    assert d2o.masses_amu[[0, 2]] == pytest.approx([2.014101778] * 2)
    assert h2o.masses is None and h2o.masses_amu[0] == pytest.approx(15.99491461957)
    c13 = conformers.from_smiles("[13CH4]", "13ch4")
    assert c13.masses_amu[0] == pytest.approx(13.00335484)
    assert d2o.structure_id() != h2o.structure_id()
    # a deferred conformer keeps the masses; an XYZ isotopologue is a different structure
    late = conformers.embed_molecule(conformers.from_smiles("[2H]O[2H]", "d2o", embed_now=False))
    assert np.array_equal(late.masses_amu, d2o.masses_amu)
    bare = Molecule("w", h2o.numbers, h2o.coords_bohr)
    heavy = Molecule("w", h2o.numbers, h2o.coords_bohr, masses=late.masses_amu[[1, 0, 2]])
    assert bare.structure_id() != heavy.structure_id()
    assert Molecule("w", h2o.numbers, h2o.coords_bohr, masses=h2o.masses_amu).masses is None


def test_d2o_zpve_over_h2o_is_the_harmonic_isotope_ratio(tmp_path):
    """A physics check through the whole path (input -> xtb opt + Hessian -> harmonic analysis ->
    store). The Born-Oppenheimer surface is the same for both isotopologues, so the ratio of the
    ZPVEs is set by the masses alone: from the experimental harmonic wavenumbers (Benedict,
    Gailar & Plyler 1956; H2O 3832.2, 1648.5, 3942.5 cm-1, D2O 2763.8, 1206.4, 2888.8 cm-1) it is
    6859.0 / 9423.2 = 0.7279 — above sqrt(m_H / m_D) = 0.707 because oxygen moves too. xTB's
    own ratio must agree within 1 %; and it must equal, to 1e-4, the ratio that a plain numpy
    diagonalisation of the stored Hessian with isotope masses gives."""
    from hessflow import api
    from hessflow.store import Store
    from hessflow.units import AMU_ME
    (tmp_path / "w.smi").write_text("O h2o\n[2H]O[2H] d2o\n")
    s = api.compute(str(tmp_path / "w.smi"), str(tmp_path / "w.h5"), engine="xtb",
                    tasks=("opt", "freq"), progress=False)
    assert s.done == 2 and s.failed == 0
    with Store(tmp_path / "w.h5", "r") as st:
        recs = {r["name"]: r for r in st.records()}
    h, d = recs["h2o"], recs["d2o"]
    assert d["masses_amu"][0] == pytest.approx(2.014101778)
    assert h["masses_amu"][1] == pytest.approx(1.00782503223)  # (atoms in SMILES order)
    ratio = d["zpve_hartree"] / h["zpve_hartree"]
    assert ratio == pytest.approx(6859.0 / 9423.2, rel=0.01)

    def zpve(rec):  # independent: mass-weight, project nothing, keep the three largest roots
        m = np.repeat(np.asarray(rec["masses_amu"]) * AMU_ME, 3)
        w2 = np.linalg.eigvalsh(rec["hessian_hartree_bohr2"] / np.sqrt(np.outer(m, m)))
        return 0.5 * np.sqrt(np.sort(w2)[-3:]).sum()
    assert ratio == pytest.approx(zpve(d) / zpve(h), rel=1e-4)


@pytest.mark.parametrize("smiles", ["CC(=O)[O-].[Na+]", "O.O"])
def test_multi_fragment_smiles_is_refused_unless_a_complex_is_asked_for(tmp_path, smiles):
    with pytest.raises(InputError, match=r"2 fragments \(.* \+ .*\): give one molecule per line, "
                                         r"or mark the line complex=yes"):
        conformers.from_smiles(smiles, "x")
    mol = conformers.from_smiles(smiles, "x", fragments=True)
    # embedded apart, not bonded: no atom of one fragment within 2.5 Angstrom of another's
    from rdkit import Chem
    groups = Chem.GetMolFrags(Chem.AddHs(Chem.MolFromSmiles(smiles)))
    a, b = (mol.coords_bohr[list(g)] for g in groups)
    gap = np.linalg.norm(a[:, None] - b[None], axis=-1).min() / 1.8897261246
    assert conformers.FRAGMENT_GAP_ANGSTROM <= gap + 1e-9 < 6.0
    # the per-line setting, in SMILES files and CSV
    items = _items(tmp_path, "f.smi", f"{smiles} alone\n{smiles} pair complex=yes\n")
    assert isinstance(items[0], InputFailure) and "2 fragments" in items[0].reason
    assert isinstance(items[1], Molecule) and items[1].name == "pair"
    items = _items(tmp_path, "f.csv", f"smiles,name,complex\n{smiles},a,\n{smiles},b,yes\n")
    assert isinstance(items[0], InputFailure) and isinstance(items[1], Molecule)
    assert list(read_molecules(tmp_path / "f.smi", fragments=True))[0].name == "alone"


def test_each_failed_line_is_recorded_under_its_own_key(tmp_path):
    """Five different failures of one SMILES are five records, each with its own reason; a rerun
    adds none."""
    from hessflow import api
    from hessflow.store import Store
    lines = ["C charge=1 m", "C mult=2 m", "C charge=-1 m", "C mult=0 m", "C.C m"]
    (tmp_path / "bad.smi").write_text("\n".join(lines) + "\n")
    for _ in range(2):
        s = api.compute(str(tmp_path / "bad.smi"), str(tmp_path / "bad.h5"), engine="xtb",
                        tasks=("opt",), progress=False)
        assert s.failed == 5
    with Store(tmp_path / "bad.h5", "r") as st:
        recs = list(st.records())
    assert len(recs) == 5 and len({r["key"] for r in recs}) == 5
    reasons = sorted(r["reason"] for r in recs)
    assert len(set(reasons)) == 5 and all(r.startswith("input: ") for r in reasons)
    assert any("contradicts the SMILES formal charge 0" in r for r in reasons)
    assert any("2 fragments" in r for r in reasons)
