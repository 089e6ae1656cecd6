"""Free-atom energies at a record's level, computed once per level and element (the cache file)."""

import json

import numpy as np
import pytest

from hessflow.errors import HessflowError
from hessflow.qm import atom_references as A
from hessflow.qm.engines import get_engine
from hessflow.qm.level import Level
from hessflow.qm.molecules.molecule import Molecule

pytest.importorskip("tblite")

XTB = {"engine": "xtb", "method": "gfn2-xtb", "basis": ""}


def _count_single_points(monkeypatch):
    calls = []
    eng = get_engine("xtb")
    original = type(eng).single_point

    def counted(self, mol, level):
        calls.append((mol.name, mol.multiplicity, level.method))
        return original(self, mol, level)
    monkeypatch.setattr(type(eng), "single_point", counted)
    return calls


def test_free_atoms_equal_the_engines_single_point_and_are_cached(tmp_path, monkeypatch):
    calls = _count_single_points(monkeypatch)
    cache = tmp_path / "s.h5.free_atoms.json"
    first = A.free_atom_energies([8, 1, 1], XTB, cache)
    assert sorted(first) == [1, 8] and len(calls) == 2
    assert [c[1] for c in calls] == [2, 3]  # ground states: H doublet, O triplet
    o_atom = Molecule("O", [8], np.zeros((1, 3)), multiplicity=3)
    direct = get_engine("xtb").single_point(o_atom, Level(method="gfn2-xtb")).energy_hartree
    assert first[8] == direct
    calls.clear()
    assert A.free_atom_energies([1, 8], XTB, cache) == first and calls == []  # from the file
    both = A.free_atom_energies([1, 6, 8], XTB, cache)
    assert len(calls) == 1 and both[1] == first[1] and both[6] < 0  # only C is new
    data = json.loads(cache.read_text())
    assert list(data) == [A.level_key(XTB)] and sorted(data[A.level_key(XTB)]) == ["1", "6", "8"]


def test_the_level_is_the_records_whole_level(tmp_path):
    """The provenance's level settings (grid, basis convention) are part of the level: two
    levels differing only there have their own entries."""
    base = Level(method="hf", basis="sto-3g").key_dict()
    rec = {"engine": "pyscf", "method": "hf", "basis": "sto-3g",
           "provenance": json.dumps({"level": base})}
    level = A.record_level(rec)
    assert level["level"] == base
    cart = dict(level, level=dict(base, shells="6d10f"))
    assert A.level_key(level) != A.level_key(cart)
    assert A.level_key(A.record_level({**rec, "provenance": ""}))  # method and basis alone
    pytest.importorskip("pyscf")
    e = A.free_atom_energies([1], level, tmp_path / "c.json")
    assert e[1] == pytest.approx(-0.466581849557, abs=1e-6)  # UHF/STO-3G H atom (Szabo-Ostlund)


def test_one_line_errors():
    with pytest.raises(HessflowError, match="do not name one level"):
        A.free_atom_energies([1], {"engine": ""})
    with pytest.raises(HessflowError, match="element Z=54"):
        A.free_atom_energies([54], XTB)


def test_record_atom_energies_compute_each_level_once(tmp_path, monkeypatch):
    calls = _count_single_points(monkeypatch)
    recs = [{"engine": "xtb", "method": "gfn2-xtb", "numbers": np.array(z), "provenance": ""}
            for z in ([8, 1, 1], [6, 1, 1, 1, 1], [7, 1, 1, 1])]
    refs = A.RecordAtomEnergies(tmp_path / "c.json", recs)
    assert len(calls) == 4  # H, C, N, O, in one go
    assert set(refs(recs[0])) == {1, 6, 7, 8}
    refs({**recs[0], "numbers": np.array([9, 1])})
    assert len(calls) == 5  # F added once


def test_free_atoms_at_the_default_level_are_qm9s():
    """QM9's atom references (U0 of H, C, N, O, F: its atomref table, the values
    tests/qm/test_thermo.py checks the subset CSV against) from PySCF UKS at hessflow's default
    level, Gaussian's 6-31G(2df,p) in 6D 7F: measured within 2 uEh for every element. BSE's basis
    with pure shells (the level before) is 1.0-4.0 mEh above on C-F, so this test fails on
    either the d exponents or the shell convention; H, with no d or f shell, checks the rest."""
    pytest.importorskip("pyscf")
    qm9_u0 = {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730}
    level = {"engine": "pyscf", "level": Level().key_dict()}
    got = A.free_atom_energies(sorted(qm9_u0), level)
    for z, e in qm9_u0.items():
        assert got[z] == pytest.approx(e, abs=1e-5), z  # QM9 prints 1e-6 Hartree
    old = A.free_atom_energies([8], {"engine": "pyscf", "level": Level(
        basis="6-31g(2df,p)-bse", shells="5d7f").key_dict()})
    assert old[8] - qm9_u0[8] > 3e-3
