"""The QM record: what one molecule's computation produces, field by field, with units and shapes.

A record is a plain ``dict`` with every field below present; :func:`empty_record` makes one with
"not computed" values and the QM stage fills in what it computes. The store
(:mod:`hessflow.store.schema`) keeps these fields as its columns; this module is the one place
that says what they are.

- :data:`SCALAR_FIELDS`: one value per record, ``field -> (type, unit or meaning)``; the type is
  ``str``, ``numpy.int32`` or ``numpy.float64``.
- :data:`FIXED_FIELDS`: fixed-shape float64 tensors, ``field -> (shape, unit)``.
- :data:`RAGGED_FIELDS`: arrays whose shape depends on the molecule,
  ``field -> (dtype, unit, shape rule)``; a shape rule names each axis by ``"n"`` (atoms),
  ``"3n"`` (Cartesian coordinates) or ``"m"`` (vibrational modes, the length of
  ``frequencies_cm1``) or gives a number (see :func:`field_shape`).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

STATUSES = ("done", "failed", "pending")  # pending: some requested tasks still to run

SCALAR_FIELDS: dict[str, tuple] = {
    "key": (str, "sha256 hex of the request"),
    "name": (str, ""),
    "smiles": (str, ""),
    "formula": (str, ""),
    "status": (str, "done | failed | pending"),
    "reason": (str, ""),
    "engine": (str, ""),
    "method": (str, ""),
    "basis": (str, ""),
    "tasks": (str, "comma-separated tasks completed: opt,freq,polar,hyperpolar"),
    "flags": (str, "comma-separated warnings, e.g. imaginary_remaining"),
    "provenance": (str, "JSON: engine version, settings, host, wall times, attempts, date"),
    "charge": (np.int32, "e"),
    "multiplicity": (np.int32, ""),
    "n_atoms": (np.int32, ""),
    "n_imag": (np.int32, "count of frequencies below -imag_tol_cm1 (-1 = not computed)"),
    "energy_hartree": (np.float64, "Hartree"),
    "zpve_hartree": (np.float64, "Hartree"),
    "homo_hartree": (np.float64, "Hartree"),
    "lumo_hartree": (np.float64, "Hartree"),
    "gap_hartree": (np.float64, "Hartree"),
    "dipole_debye": (np.float64, "Debye (magnitude)"),
    "alpha_iso_bohr3": (np.float64, "Bohr^3"),
    "beta_par_au": (np.float64, "atomic units of beta"),
    "beta_vec_au": (np.float64, "atomic units of beta (|beta_vec|)"),
    "r2_bohr2": (np.float64, "Bohr^2 (electronic spatial extent <R^2>, QM9's r2)"),
    "wall_time_s": (np.float64, "s"),
    "created_unix": (np.float64, "s since epoch (record first written)"),
    "updated_unix": (np.float64, "s since epoch (last result folded in)"),
}
FIXED_FIELDS = {  # field -> (shape, unit)
    "dipole_au": ((3,), "e*Bohr"),
    "alpha_bohr3": ((3, 3), "Bohr^3"),
    "beta_au": ((3, 3, 3), "atomic units"),
}
RAGGED_FIELDS = {  # field -> (dtype, unit, shape rule); n = atoms, m = modes
    "numbers": (np.int16, "", ("n",)),
    "masses_amu": (np.float64, "amu", ("n",)),
    "coords_input_bohr": (np.float64, "Bohr", ("n", 3)),
    "coords_opt_bohr": (np.float64, "Bohr", ("n", 3)),
    "hessian_hartree_bohr2": (np.float64, "Hartree/Bohr^2", ("3n", "3n")),
    "frequencies_cm1": (np.float64, "cm^-1 (negative = imaginary)", ("m",)),
    "reduced_masses_amu": (np.float64, "amu", ("m",)),
    "force_constants_hartree_bohr2": (np.float64, "Hartree/Bohr^2", ("m",)),
    "modes_cartesian": (np.float64, "normalised Cartesian displacement", ("m", "n", 3)),
    "modes_mass_weighted": (np.float64, "orthonormal mass-weighted eigenvector", ("m", "n", 3)),
    # the energy's Cartesian gradient (= -forces) at the record's final geometry (the single point's)
    "gradient_hartree_bohr": (np.float64, "Hartree/Bohr", ("n", 3)),
}
# the scalar quantities a model can learn (the store's default table columns)
LABELS = ("energy_hartree", "zpve_hartree", "alpha_iso_bohr3", "beta_par_au", "beta_vec_au",
          "homo_hartree", "lumo_hartree", "gap_hartree", "dipole_debye", "n_imag",
          "r2_bohr2")


def empty_record() -> dict:
    """A record with every field present and 'not computed' values: '' for strings, NaN for
    floats and fixed tensors, -1 for ``n_imag``, 0 for the other integers, None for ragged
    arrays."""
    rec: dict = {}
    for field, (kind, _) in SCALAR_FIELDS.items():
        if kind is str:
            rec[field] = ""
        elif np.issubdtype(np.dtype(kind), np.integer):
            rec[field] = -1 if field == "n_imag" else 0
        else:
            rec[field] = float("nan")
    for field, (shape, _) in FIXED_FIELDS.items():
        rec[field] = np.full(shape, np.nan)
    for field in RAGGED_FIELDS:
        rec[field] = None
    return rec


def field_shape(rule, n_atoms: int, n_modes: int) -> tuple:
    """The shape of a ragged field for a molecule of ``n_atoms`` atoms and ``n_modes``
    vibrational modes: each ``"n"``, ``"3n"``, ``"m"`` of ``rule`` replaced by its length."""
    sub = {"n": n_atoms, "3n": 3 * n_atoms, "m": n_modes}
    return tuple(sub.get(r, r) for r in rule)


def now_unix() -> float:
    """The current time in seconds since the Unix epoch (UTC), for ``created_unix`` /
    ``updated_unix``."""
    return _dt.datetime.now(_dt.timezone.utc).timestamp()
