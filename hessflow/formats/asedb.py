"""An ASE database (``ase.db``) of records, read back; a record as ASE ``VibrationsData``.

One row per record. The row's atoms are the record's final geometry (Angstrom) with its masses,
and its calculator results ``energy`` (eV), ``forces`` (eV/Angstrom, when the record has a
gradient) and ``dipole`` (e*Angstrom). Key-value pairs (searchable: ``db.select("zpve_hartree>0.02")``)
are the record's scalar labels under their field names and units (``name``, ``smiles``, ``key``,
``energy_hartree``, ``zpve_hartree``, ``alpha_iso_bohr3``, ...) plus ``geometry=opt|input``,
except ``charge``, which ASE reserves for the sum of the atoms' charges: it is
``molecular_charge``. What ASE refuses as a key-value pair (``formula``, a reserved key; a
string that reads as a number or a bool, such as a name ``42``) and the ``provenance`` JSON go
to ``data["strings"]``. ``data`` holds the arrays in the record's
units and shapes: ``hessian_hartree_bohr2``, ``frequencies_cm1``, ``modes_cartesian``,
``modes_mass_weighted``, ``reduced_masses_amu``, ``force_constants_hartree_bohr2``,
``alpha_bohr3``, ``dipole_au``, ``beta_au``, ``coords_input_bohr``, ``masses_amu``, ...
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import HessflowError
from ..units import ANGSTROM_BOHR, BOHR_ANGSTROM, HARTREE_EV
from .common import (GEOMETRY_KEY, array_labels, atoms_from_record, calculator_labels,
                     finite_labels,
                     geometry_bohr, new_record, record_masses_amu, scalar_labels, set_labels)

KEY_ALIASES = {"charge": "molecular_charge"}  # record field -> key (ASE reserves the field name)
STRINGS = "strings"  # data entry for the string labels ASE refuses as key-value pairs
IN_DATA = ("provenance",)  # long JSON, not a label to search by: kept in data["strings"]


def _key_values(record: dict, derived: dict | None = None) -> tuple[dict, dict]:
    """(key-value pairs ASE accepts, the string labels it would refuse); ``derived`` labels
    (thermochemistry, atomization energies) join the key-value pairs where finite."""
    from ase.db.core import convert_str_to_int_float_bool_or_str, reserved_keys
    kvp, refused = {}, {}
    for field, value in {**scalar_labels(record), **finite_labels(derived)}.items():
        key = KEY_ALIASES.get(field, field)
        if key in reserved_keys or field in IN_DATA or (isinstance(value, str) and not isinstance(
                convert_str_to_int_float_bool_or_str(value), str)):
            refused[field] = value
        else:
            kvp[key] = value
    kvp[GEOMETRY_KEY] = geometry_bohr(record)[1]
    return kvp, refused


def write_asedb(records: Iterable[dict], path, append: bool = False, derived=None) -> list[int]:
    """Write ``records`` as rows of the ASE database ``path`` (its type from the extension:
    ``.db`` SQLite, ``.json`` JSON); the file is replaced unless ``append``; ``derived``: record ->
    its derived labels (key-value pairs too), or None. Returns the row ids."""
    import ase.db
    ids = []
    with ase.db.connect(str(path), append=append) as db:
        for rec in records:
            kvp, refused = _key_values(rec, derived(rec) if derived else None)
            data = {k: np.asarray(v) for k, v in array_labels(rec).items()}
            data["masses_amu"] = record_masses_amu(rec)
            if refused:
                data[STRINGS] = refused
            ids.append(db.write(atoms_from_record(rec), key_value_pairs=kvp, data=data))
    return ids


def record_from_row(row) -> dict:
    """A record from one ``ase.db`` row: hessflow's (every field written comes back) or any
    other (its atoms, calculator energy/forces/dipole, key-value pairs that are record fields,
    and ``data`` entries that are record array fields)."""
    kvp = dict(row.key_value_pairs)
    atoms = row.toatoms()
    rec = new_record(atoms.numbers, atoms.positions * ANGSTROM_BOHR,
                     str(kvp.get(GEOMETRY_KEY, "input")))
    scalars, arrays = calculator_labels(atoms)
    for field, key in KEY_ALIASES.items():
        if key in kvp:
            kvp[field] = kvp.pop(key)
    data = dict(row.data) if row.get("data") else {}
    scalars.update(kvp)
    scalars.update(data.pop(STRINGS, {}))
    scalars.setdefault("name", f"id{row.id}")
    scalars.setdefault("status", "done" if "energy_hartree" in scalars else "pending")
    arrays.update({k: v for k, v in data.items() if k in rec or k == "gradient_hartree_bohr"})
    return set_labels(rec, scalars, arrays)


def read_asedb(path, selection=None, **query) -> list[dict]:
    """Records from the ASE database ``path``, optionally only the rows matching ``selection``
    and ``query`` (ASE's ``db.select`` syntax, e.g. ``"zpve_hartree>0.02"``, ``name="water"``)."""
    import ase.db
    db = ase.db.connect(str(path))
    return [record_from_row(row) for row in db.select(selection, **query)]


def to_vibrations(record: dict):
    """The record's harmonic data as ``ase.vibrations.VibrationsData``: its final geometry
    (Angstrom), masses (amu) and Hessian (converted from Hartree/Bohr^2 to eV/Angstrom^2).

    ASE diagonalises the mass-weighted Hessian as it is, without projecting out translations and
    rotations, so its ``get_frequencies()`` has 3N values: the 3N-6 (3N-5 linear) largest are
    the record's ``frequencies_cm1``, the rest are near zero (how near depends on how
    translation/rotation-invariant the Hessian is)."""
    from ase.vibrations import VibrationsData
    hessian = record.get("hessian_hartree_bohr2")
    if hessian is None:
        raise HessflowError(f"record {record.get('name', '?')}: no Hessian (task freq not run)")
    atoms = atoms_from_record(record)
    atoms.calc = None
    n = len(atoms)
    return VibrationsData(atoms, np.asarray(hessian, float).reshape(n, 3, n, 3)
                          * (HARTREE_EV / BOHR_ANGSTROM ** 2))
