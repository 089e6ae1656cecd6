"""What every open format shares: a record's geometry, labels and forces in ASE's units, and a
record rebuilt from what a format read back.

Units at this edge (hessflow works in atomic units inside, :mod:`hessflow.units`, CODATA 2018):
positions in Angstrom, ``energy`` in eV, ``forces`` in eV/Angstrom (= -gradient), ``dipole`` in
e*Angstrom (ASE's conventions); every other value keeps the unit its record field name carries
(``zpve_hartree``, ``alpha_bohr3``, ``frequencies_cm1``, ...). ASE's own ``ase.units`` are CODATA
2014 by default; the two differ by about 1e-8 relative (2e-5 eV on a 100 Hartree energy).

Forces: a record field ``gradient_hartree_bohr`` (n_atoms x 3, Hartree/Bohr), when present and
not None, becomes ``forces`` in every format that has a place for them; a format read back with
forces gives that field again.
"""

from __future__ import annotations

import numpy as np

from ..qm.molecules.elements import SUPPORTED_Z, masses_amu
from ..qm.molecules.molecule import Molecule
from ..qm.record import FIXED_FIELDS, RAGGED_FIELDS, SCALAR_FIELDS, empty_record, field_shape
from ..units import BOHR_ANGSTROM, HARTREE_EV

GRADIENT_FIELD = "gradient_hartree_bohr"  # (n_atoms, 3), Hartree/Bohr (a ragged record field)
FORCE_AU_EV_ANGSTROM = HARTREE_EV / BOHR_ANGSTROM  # 1 Hartree/Bohr in eV/Angstrom
# the record's arrays and their shape rules ("n" atoms, "3n", "m" modes; see hessflow.qm.record)
ARRAY_RULES = {**{f: rule for f, (_, _, rule) in RAGGED_FIELDS.items()},
               **{f: shape for f, (shape, _) in FIXED_FIELDS.items()},
               GRADIENT_FIELD: ("n", 3)}
# fields that are not labels of the molecule but of this copy of the record
GEOMETRY_KEY = "geometry"  # "opt" when the positions are coords_opt_bohr, else "input"


def geometry_bohr(record: dict) -> tuple[np.ndarray, str]:
    """The record's final geometry (n, 3) in Bohr and which it is: ``coords_opt_bohr`` ("opt")
    when the record has it, else ``coords_input_bohr`` ("input")."""
    if record.get("coords_opt_bohr") is not None:
        return np.asarray(record["coords_opt_bohr"], float).reshape(-1, 3), "opt"
    if record.get("coords_input_bohr") is None:
        raise ValueError(f"record {record.get('name', '?')!r} has no geometry")
    return np.asarray(record["coords_input_bohr"], float).reshape(-1, 3), "input"


def record_masses_amu(record: dict) -> np.ndarray:
    """The record's atomic masses (amu); hessflow's isotope masses when it has none."""
    if record.get("masses_amu") is not None:
        return np.asarray(record["masses_amu"], float)
    return np.asarray(masses_amu(record["numbers"]))


def forces_ev_angstrom(record: dict) -> np.ndarray | None:
    """Forces (n, 3) in eV/Angstrom from the record's ``gradient_hartree_bohr``, or None."""
    grad = present_array(record.get(GRADIENT_FIELD))
    return None if grad is None else -grad.reshape(-1, 3) * FORCE_AU_EV_ANGSTROM


def gradient_from_forces(forces_ev_angstrom) -> np.ndarray:
    """The gradient (n, 3) in Hartree/Bohr of forces given in eV/Angstrom."""
    return -np.asarray(forces_ev_angstrom, float).reshape(-1, 3) / FORCE_AU_EV_ANGSTROM


def finite_labels(derived: dict | None) -> dict:
    """The finite numbers of ``derived`` (labels a record implies, e.g. its thermochemistry), as
    plain floats (ints stay ints); NaN and None are left out. ``{}`` for None."""
    out = {}
    for key, value in (derived or {}).items():
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            out[key] = int(value)
        elif value is not None and np.isfinite(float(value)):
            out[key] = float(value)
    return out


def present_array(value) -> np.ndarray | None:
    """``value`` as a float array, or None when it is None, empty or all NaN (not computed)."""
    if value is None:
        return None
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or np.isnan(arr).all():
        return None
    return arr


def scalar_labels(record: dict) -> dict:
    """The record's scalar fields that hold a value, as plain Python ``str``/``int``/``float``:
    empty strings, NaN floats and ``n_imag = -1`` (not computed) are left out."""
    out = {}
    for field, (kind, _) in SCALAR_FIELDS.items():
        value = record.get(field)
        if value is None:
            continue
        if kind is str:
            if str(value):
                out[field] = str(value)
        elif np.issubdtype(np.dtype(kind), np.integer):
            if not (field == "n_imag" and int(value) < 0):
                out[field] = int(value)
        elif np.isfinite(float(value)):
            out[field] = float(value)
    return out


def array_labels(record: dict) -> dict:
    """The record's array fields (tensors, ragged arrays, the gradient) that hold a value, as
    float/int numpy arrays of their record shape (see :func:`present_array`)."""
    out = {}
    for field in ARRAY_RULES:
        value = record.get(field)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.size and not (arr.dtype.kind == "f" and np.isnan(arr).all()):
            out[field] = arr
    return out


def scalar_value(field: str, value):
    """``value`` (as a format read it: str, number, numpy scalar, bool) converted to the type of
    the record's scalar ``field``."""
    kind = SCALAR_FIELDS[field][0]
    if kind is str:
        return str(value)
    if np.issubdtype(np.dtype(kind), np.integer):
        return int(value)
    return float(value)


def new_record(numbers, coords_bohr, geometry: str = "input") -> dict:
    """An :func:`~hessflow.qm.record.empty_record` for atoms ``numbers`` at ``coords_bohr``
    (n, 3; Bohr), put in ``coords_opt_bohr`` when ``geometry`` is "opt", else in
    ``coords_input_bohr``; ``n_atoms``, ``formula`` and hessflow's isotope masses filled in.
    Raises ValueError for an element hessflow does not support."""
    rec = empty_record()
    numbers = np.asarray(numbers, dtype=np.int16).reshape(-1)
    bad = sorted({int(z) for z in numbers} - SUPPORTED_Z)
    if bad:
        raise ValueError(f"unsupported element(s) Z={bad}")
    rec["numbers"] = numbers
    rec["n_atoms"] = int(numbers.size)
    rec["masses_amu"] = np.asarray(masses_amu(numbers))
    rec["formula"] = Molecule("", numbers, np.zeros((numbers.size, 3))).formula
    field = "coords_opt_bohr" if geometry == "opt" else "coords_input_bohr"
    rec[field] = np.asarray(coords_bohr, float).reshape(-1, 3)
    return rec


def set_labels(rec: dict, scalars: dict, arrays: dict) -> dict:
    """Fill ``rec`` from read-back values: ``scalars`` (name -> value; names that are not
    record scalar fields are ignored) and ``arrays`` (record array field -> flat or shaped
    values, reshaped by the field's rule for this record's atoms and modes). Returns ``rec``."""
    for field, value in scalars.items():
        if field in SCALAR_FIELDS:
            rec[field] = scalar_value(field, value)
    n = int(rec["n_atoms"])
    freqs = arrays.get("frequencies_cm1")
    m = 0 if freqs is None else int(np.size(freqs))
    for field, value in arrays.items():
        dtype = RAGGED_FIELDS[field][0] if field in RAGGED_FIELDS else np.float64
        rec[field] = np.asarray(value, dtype=dtype).reshape(field_shape(ARRAY_RULES[field], n, m))
    return rec


def atoms_from_record(record: dict):
    """The record as an ``ase.Atoms`` (positions in Angstrom, the record's masses) with a
    ``SinglePointCalculator`` holding what it has of ``energy`` (eV), ``forces`` (eV/Angstrom)
    and ``dipole`` (e*Angstrom)."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    coords, _ = geometry_bohr(record)
    atoms = Atoms(numbers=np.asarray(record["numbers"], int), positions=coords * BOHR_ANGSTROM,
                  masses=record_masses_amu(record))
    results = {}
    if np.isfinite(float(record.get("energy_hartree", np.nan))):
        results["energy"] = float(record["energy_hartree"]) * HARTREE_EV
    forces = forces_ev_angstrom(record)
    if forces is not None:
        results["forces"] = forces
    dipole = present_array(record.get("dipole_au"))
    if dipole is not None:
        results["dipole"] = dipole * BOHR_ANGSTROM
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def calculator_labels(atoms) -> tuple[dict, dict]:
    """Record scalars and arrays from an ``ase.Atoms``' calculator results (energy eV, forces
    eV/Angstrom, dipole e*Angstrom), in the record's units: ``energy_hartree``,
    ``gradient_hartree_bohr``, ``dipole_au``."""
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    scalars, arrays = {}, {}
    if results.get("energy") is not None:
        scalars["energy_hartree"] = float(results["energy"]) / HARTREE_EV
    if results.get("forces") is not None:
        arrays[GRADIENT_FIELD] = gradient_from_forces(results["forces"])
    if results.get("dipole") is not None:
        arrays["dipole_au"] = np.asarray(results["dipole"], float) / BOHR_ANGSTROM
    return scalars, arrays
