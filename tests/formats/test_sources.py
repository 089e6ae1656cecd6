"""Molecules from objects and from every file format, into `compute` and the workflow alike, and
the open-format exports from the command line (GFN2-xTB: real, fast)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from hessflow import api
from hessflow.errors import InputError
from hessflow.formats.sources import read_items
from hessflow.qm.molecules.inputs import InputFailure
from hessflow.units import ANGSTROM_BOHR

pytest.importorskip("tblite")
ase = pytest.importorskip("ase")

FAST = dict(engine="xtb", tasks="opt,freq", progress=False)
WATER_ANGSTROM = np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])


def _water_atoms():
    from ase import Atoms
    return Atoms("OH2", positions=WATER_ANGSTROM)


def test_every_kind_of_object_becomes_the_same_molecule():
    from rdkit import Chem
    from rdkit.Chem import AllChem
    import qcelemental as qcel
    atoms = _water_atoms()
    rd = Chem.AddHs(Chem.MolFromSmiles("O"))
    AllChem.EmbedMolecule(rd, randomSeed=1)
    qc = qcel.models.Molecule(symbols=["O", "H", "H"], geometry=WATER_ANGSTROM.ravel() * ANGSTROM_BOHR)
    items = list(read_items([atoms, rd, qc, "O"]))
    assert all(not isinstance(i, InputFailure) for i in items), items
    for item in items:
        assert sorted(item.numbers.tolist()) == [1, 1, 8]
    np.testing.assert_allclose(items[0].coords_bohr, WATER_ANGSTROM * ANGSTROM_BOHR)
    np.testing.assert_allclose(items[2].coords_bohr, items[0].coords_bohr, atol=1e-8)
    assert items[3].smiles == "O"


def test_bad_objects_are_recorded_failures_or_one_line_errors():
    from ase import Atoms
    bad = Atoms("OO", positions=[[0, 0, 0], [0, 0, 0.01]])  # overlapping atoms
    items = list(read_items([bad, "C1CC", "O"]))
    assert isinstance(items[0], InputFailure) and "overlap" in items[0].reason
    assert isinstance(items[1], InputFailure) and items[1].name == "C1CC"
    assert not isinstance(items[2], InputFailure)
    with pytest.raises(InputError, match="cannot read molecules from a set"):
        list(read_items({1, 2}))
    with pytest.raises(InputError, match="--limit: must be >= 0"):
        list(read_items(["O"], limit=-1))


def test_compute_takes_objects_and_ase_files(tmp_path):
    from ase.io import write
    s1 = api.compute([_water_atoms(), "C"], tmp_path / "a.h5", **FAST)
    assert (s1.done, s1.failed) == (2, 0)
    traj = tmp_path / "w.traj"
    write(traj, [_water_atoms()])
    s2 = api.compute(traj, tmp_path / "b.h5", **FAST)
    assert s2.done == 1
    from hessflow.store import Store
    with Store(tmp_path / "a.h5", "r") as a, Store(tmp_path / "b.h5", "r") as b:
        ra = next(r for r in a.records() if r["formula"] == "H2O")
        rb = next(b.records())
        # the same input geometry, the same engine: the same optimised energy
        assert rb["energy_hartree"] == pytest.approx(ra["energy_hartree"], abs=1e-8)


def test_export_formats_from_the_command_line(tmp_path):
    store = tmp_path / "s.h5"
    assert api.compute(["O", "CO"], store, **FAST).done == 2

    def run(*args):
        return subprocess.run([sys.executable, "-m", "hessflow", "export", str(store), *args],
                              capture_output=True, text=True, timeout=300)
    out = run("--format", "extxyz", "-o", str(tmp_path / "s.extxyz"))
    assert out.returncode == 0, out.stderr
    from ase.io import read
    frames = read(tmp_path / "s.extxyz", index=":")
    assert len(frames) == 2 and all(np.isfinite(f.get_potential_energy()) for f in frames)
    out = run("--format", "qcschema")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["driver"] for line in out.stdout.splitlines()] == ["hessian"] * 2
    # the store is never overwritten by its own export; a missing folder is one line
    out = run("-o", str(store))
    assert out.returncode == 2 and "is the store itself" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("-o", str(tmp_path / "missing" / "x.csv"))
    assert out.returncode == 2 and "is not a directory" in out.stderr
