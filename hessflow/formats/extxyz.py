"""Extended XYZ in ASE's conventions, written by hessflow and read back (hessflow's own files
and any ASE-written extxyz).

One frame per record. The atom lines hold ``species`` and ``pos`` (Angstrom, the optimised
geometry when there is one) and, in ``Properties``, the per-atom arrays: ``masses`` (amu),
``forces`` (eV/Angstrom, when the record has a gradient), ``coords_input_bohr`` (the input
geometry, Bohr, when ``pos`` is the optimised one), and, with ``vibrations=True``,
``hessian_hartree_bohr2`` (9n columns: atom i's three Hessian rows), ``modes_cartesian`` and
``modes_mass_weighted`` (3m columns: atom i's displacement in each mode). The comment line holds
``energy`` (eV; ASE's ``get_potential_energy()``), ``dipole`` (e*Angstrom;
``get_dipole_moment()``), every scalar field of the record that has a value under its own name
and unit (``name``, ``smiles``, ``key``, ``charge``, ``multiplicity``, ``energy_hartree``,
``zpve_hartree``, ...), the tensors ``dipole_au``, ``alpha_bohr3`` (9 values, row-major),
``beta_au`` (27), and with ``vibrations=True`` ``frequencies_cm1``, ``reduced_masses_amu``,
``force_constants_hartree_bohr2``; ``geometry=opt|input`` says which geometry ``pos`` is.

Strings are always quoted, with ``\\`` and ``"`` escaped; a string ASE's reader would turn into
something else (a number, a bool: a name ``42``, the SMILES ``F``, a newline) is written as ASE's
``_JSON "..."`` form, which ASE reads back as that string. Floats are written at full precision
(``repr``), so a round trip loses nothing but the last bit of a unit conversion.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..qm.molecules.elements import symbol
from ..units import ANGSTROM_BOHR, BOHR_ANGSTROM, HARTREE_EV
from .common import (GEOMETRY_KEY, array_labels, calculator_labels, finite_labels,
                     forces_ev_angstrom,
                     geometry_bohr, new_record, record_masses_amu, scalar_labels, set_labels)

# comment-line tensors (flattened row-major); the vibrational ones only with vibrations=True
INFO_TENSORS = ("dipole_au", "alpha_bohr3", "beta_au")
INFO_VIBRATIONS = ("frequencies_cm1", "reduced_masses_amu", "force_constants_hartree_bohr2")
ATOM_VIBRATIONS = ("hessian_hartree_bohr2", "modes_cartesian", "modes_mass_weighted")


BOOL_WORDS = frozenset({"T", "F", "true", "false", "True", "False", "TRUE", "FALSE"})


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def reads_back(text: str) -> bool:
    """True when ASE's extxyz reader gives a quoted, escaped ``text`` back as this string: it
    has no line break, does not start with ``_JSON ``, and one of its whitespace/comma-separated
    tokens is neither a number nor a bool word (ASE converts values whose tokens all are; an
    empty string becomes an empty array)."""
    if "\n" in text or "\r" in text or text.startswith("_JSON "):
        return False
    return any(not _is_number(t) and t not in BOOL_WORDS for t in re.findall(r"[^\s,]+", text))


def quote(text: str) -> str:
    """``text`` as an extxyz comment-line value that ASE's reader gives back as this string:
    quoted with ``\\`` and ``"`` escaped, or, when ASE would read that as something else (see
    :func:`reads_back`), in ASE's ``_JSON "..."`` form."""
    text = str(text)
    if not reads_back(text):
        text = "_JSON " + json.dumps(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(int(value))


def _info_value(value) -> str:
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, np.ndarray):
        return '"' + " ".join(_number(v) for v in value.ravel()) + '"'
    return _number(value)


def _per_atom(record: dict, vibrations: bool) -> list[tuple[str, np.ndarray]]:
    """(name, (n, k) float values) of the per-atom columns after species and pos."""
    n = len(record["numbers"])
    cols = [("masses", record_masses_amu(record).reshape(n, 1))]
    forces = forces_ev_angstrom(record)
    if forces is not None:
        cols.append(("forces", forces))
    arrays = array_labels(record)
    if geometry_bohr(record)[1] == "opt" and "coords_input_bohr" in arrays:
        cols.append(("coords_input_bohr", arrays["coords_input_bohr"]))
    if vibrations:
        if "hessian_hartree_bohr2" in arrays:  # rows 3i..3i+2 belong to atom i
            cols.append(("hessian_hartree_bohr2", arrays["hessian_hartree_bohr2"].reshape(n, -1)))
        for field in ATOM_VIBRATIONS[1:]:  # (m, n, 3) -> atom i: (mode, xyz) flattened
            if field in arrays and arrays[field].size:
                cols.append((field, arrays[field].transpose(1, 0, 2).reshape(n, -1)))
    return cols


def frame(record: dict, vibrations: bool = True, derived: dict | None = None) -> str:
    """One record as an extxyz frame (text ending in a newline); see the module docstring.
    ``derived``: labels the record implies (:func:`hessflow.formats.labels.derived_labels`:
    thermochemistry, atomization energies), written as info keys where finite."""
    coords, which = geometry_bohr(record)
    n = coords.shape[0]
    cols = _per_atom(record, vibrations)
    props = "species:S:1:pos:R:3" + "".join(f":{k}:R:{v.shape[1]}" for k, v in cols)
    info: dict = {}
    if np.isfinite(float(record.get("energy_hartree", np.nan))):
        info["energy"] = float(record["energy_hartree"]) * HARTREE_EV
    arrays = array_labels(record)
    if "dipole_au" in arrays:
        info["dipole"] = arrays["dipole_au"] * BOHR_ANGSTROM
    info.update(scalar_labels(record))
    info.update(finite_labels(derived))
    info[GEOMETRY_KEY] = which
    for field in INFO_TENSORS + (INFO_VIBRATIONS if vibrations else ()):
        if field in arrays:
            info[field] = arrays[field]
    comment = f"Properties={props} " + " ".join(f"{k}={_info_value(v)}" for k, v in info.items())
    lines = [str(n), comment]
    block = np.hstack([coords * BOHR_ANGSTROM] + [v for _, v in cols])
    for z, row in zip(record["numbers"], block):
        lines.append(f"{symbol(z):<2} " + " ".join(repr(float(x)) for x in row))
    return "\n".join(lines) + "\n"


def extxyz_text(records: Iterable[dict], vibrations: bool = True, derived=None) -> str:
    """All ``records`` as one extxyz text, one frame each (see :func:`frame`); ``derived``:
    record -> its derived labels, or None."""
    return "".join(frame(rec, vibrations, derived(rec) if derived else None) for rec in records)


def write_extxyz(records: Iterable[dict], path, vibrations: bool = True) -> int:
    """Write ``records`` to the extxyz file ``path`` (replaced); returns the number of frames.
    ``vibrations=False`` leaves out the Hessian, modes and frequencies (a slim file of
    geometries, energies, forces and labels, e.g. for MLIP training)."""
    n = 0
    with open(path, "w") as fh:
        for rec in records:
            fh.write(frame(rec, vibrations))
            n += 1
    return n


def record_from_atoms(atoms, name: str) -> dict:
    """A record from one ``ase.Atoms`` read from extxyz (hessflow's or anyone's): ``atoms.info``
    keys that are record fields become those fields, ``energy``/``forces``/``dipole`` of its
    calculator become ``energy_hartree``/``gradient_hartree_bohr``/``dipole_au`` unless the
    frame holds those fields themselves, and the per-atom arrays above become their fields.
    ``name`` is used when the frame has no ``name`` key. Raises ValueError for unsupported
    elements or arrays of the wrong shape."""
    info = dict(atoms.info)
    geometry = str(info.get(GEOMETRY_KEY, "input"))
    rec = new_record(atoms.numbers, atoms.positions * ANGSTROM_BOHR, geometry)
    scalars, arrays = calculator_labels(atoms)
    scalars.update({k: v for k, v in info.items() if not isinstance(v, (np.ndarray, list))})
    scalars["name"] = info.get("name", name)
    scalars.setdefault("status", "done" if "energy_hartree" in scalars else "pending")
    for field in INFO_TENSORS + INFO_VIBRATIONS:
        if field in info:
            arrays[field] = np.atleast_1d(info[field])
    n = len(atoms)
    if "masses" in atoms.arrays:
        arrays["masses_amu"] = atoms.get_masses()
    if "coords_input_bohr" in atoms.arrays:
        arrays["coords_input_bohr"] = atoms.arrays["coords_input_bohr"]
    if "hessian_hartree_bohr2" in atoms.arrays:
        arrays["hessian_hartree_bohr2"] = atoms.arrays["hessian_hartree_bohr2"].reshape(3 * n, -1)
    for field in ATOM_VIBRATIONS[1:]:
        if field in atoms.arrays:
            arrays[field] = atoms.arrays[field].reshape(n, -1, 3).transpose(1, 0, 2)
    return set_labels(rec, scalars, arrays)


def read_extxyz(path) -> list[dict]:
    """Records from an extxyz file: hessflow's own (every field written comes back) or one ASE
    (or another code) wrote. A frame without a ``name`` key is named like hessflow's XYZ reader
    does: the file's stem, ``stem#k`` for frame k > 1."""
    from ase.io import read
    path = Path(path)
    frames = read(path, index=":", format="extxyz")
    return [record_from_atoms(a, path.stem + (f"#{k}" if k > 1 else ""))
            for k, a in enumerate(frames, 1)]
