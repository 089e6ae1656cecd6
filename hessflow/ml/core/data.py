"""The one molecule loader of the ml core: the hessflow store, and QM9 in its published formats
(the MoleculeNet CSV and the extended XYZ files), as lists of molecule dicts with one target.

A molecule dict has ``name``, ``smiles``, ``numbers``, ``coords_bohr`` (Bohr; None when only a
SMILES is known), ``masses_amu``, ``hessian`` (Hartree/Bohr^2; None unless from the store and
asked for) and ``label`` (the target, in its unit of :data:`UNITS`). :data:`TARGETS` names the
store column and the QM9 property of every target.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ...errors import HessflowError
from ...store import Store

__all__ = ["TARGETS", "VECTOR_TARGETS", "UNITS", "target_columns", "load", "read_store",
           "read_qm9_csv", "load_store", "load_qm9_csv", "load_qm9_xyz"]

# target name -> (store column, QM9 CSV / extended-XYZ property; None: not in QM9's files)
TARGETS = {
    "alpha": ("alpha_iso_bohr3", "alpha"),
    "zpve": ("zpve_hartree", "zpve"),
    "gap": ("gap_hartree", "gap"),
    "homo": ("homo_hartree", "homo"),
    "lumo": ("lumo_hartree", "lumo"),
    "dipole": ("dipole_debye", "mu"),
    "energy": ("energy_hartree", None),
    "beta": ("beta_par_au", None),
    # a set-valued target: the 3N-6 (3N-5) real harmonic frequencies, ascending; padded with NaN
    # to a fixed length by the training run (a masked multi-output head)
    "frequencies": ("frequencies_cm1", "frequencies"),
}
VECTOR_TARGETS = ("frequencies",)


#: the unit of every target, as text output spells it
UNITS = {"alpha": "Bohr^3", "zpve": "Hartree", "gap": "Hartree", "homo": "Hartree",
         "lumo": "Hartree", "dipole": "Debye", "energy": "Hartree", "beta": "a.u.",
         "frequencies": "cm⁻¹"}


def target_columns(target: str) -> tuple[str, str | None]:
    """(store column, QM9 property or None) of ``target``; a one-line HessflowError naming the
    known targets for an unknown one."""
    if target not in TARGETS:
        raise HessflowError(f"--target: {target!r} is not one of {', '.join(TARGETS)}")
    return TARGETS[target]


def _bar(total, desc, progress):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="mol", file=sys.stderr)


def read_store(path, columns: Sequence[str] = (), fields: Sequence[str] = (), *,
               finite: Sequence[str] | None = None, keep: Callable[[dict], bool] | None = None,
               limit: int | None = None, progress: bool = False) -> list[dict]:
    """The finished (status "done") records of a hessflow store, in store order, as dicts: the
    one store reader of the ml families.

    ``columns``: table columns, read for every record at once (cheap); a record is left out
    unless its ``finite`` columns (default: the numeric ones of ``columns``) are finite.
    ``fields``: record fields read for the records kept (``Store.get_many``; its rows carry
    ``name``, ``smiles``, ``charge`` too); none: only the table is read. Each dict has ``key``,
    the ``columns`` and the ``fields``. ``keep(row)``: a further test of a row. ``limit``: the
    first ``limit`` rows that pass (None or 0: all). ``progress``: a tqdm bar on stderr."""
    limit = limit or None
    with Store(path, "r") as st:
        t = st.table(["key", "status", *[c for c in columns if c not in ("key", "status")]])
        if finite is None:
            finite = [c for c in columns if np.asarray(t[c]).dtype.kind in "fiu"]
        ok = np.asarray(t["status"]) == "done"
        for c in finite:
            ok &= np.isfinite(np.asarray(t[c], float))
        rows = [{"key": t["key"][i], **{c: t[c][i] for c in columns}} for i in np.flatnonzero(ok)]
        if keep is None or not fields:
            rows = [r for r in rows if keep is None or keep(r)][:limit]
        if not fields:
            return rows
        bar = _bar(min(len(rows), limit or len(rows)), f"reading {Path(path).name}", progress)
        out = []
        for row, rec in zip(rows, st.get_many([r["key"] for r in rows], fields=list(fields))):
            rec = {**rec, **row}
            if keep is not None and not keep(rec):
                continue
            out.append(rec)
            if bar:
                bar.update()
            if limit and len(out) >= limit:
                break
        if bar:
            bar.close()
    return out


def load_store(path, target: str, progress: bool = False, need_hessian: bool = False,
               limit: int | None = None) -> list[dict]:
    """Done records with a finite ``target`` (the first ``limit`` of them), with their optimised
    geometry (else the input one), and their Hessian where ``need_hessian`` (records without one
    are then left out; otherwise "hessian" is None and Hessians are not read)."""
    column, _ = target_columns(target)
    vector = target in VECTOR_TARGETS
    fields = (["numbers", "masses_amu", "coords_input_bohr", "coords_opt_bohr"]
              + (["hessian_hartree_bohr2"] if need_hessian else []) + ([column] if vector else []))

    def usable(r):
        return ((not need_hessian or r["hessian_hartree_bohr2"] is not None)
                and (not vector or r[column] is not None))
    records = read_store(path, [] if vector else [column], fields,
                         keep=usable if (need_hessian or vector) else None, limit=limit,
                         progress=progress)
    out = []
    for r in records:
        coords = r["coords_opt_bohr"] if r["coords_opt_bohr"] is not None else r["coords_input_bohr"]
        label = np.sort(np.asarray(r[column], float)) if vector else float(r[column])
        out.append({"name": r["name"], "smiles": r["smiles"], "numbers": r["numbers"],
                    "coords_bohr": coords, "masses_amu": r["masses_amu"], "charge": r["charge"],
                    "hessian": r.get("hessian_hartree_bohr2"), "label": label})
    if not out:
        raise HessflowError(f"{path}: no finished records with a value for {column}"
                            + (" and a Hessian" if need_hessian else ""))
    return out


def read_qm9_csv(path, columns: Sequence[str] = (), limit: int | None = None) -> list[dict]:
    """The rows of a MoleculeNet QM9 CSV (mol_id, smiles, ..., alpha, ..., zpve, ...) as dicts
    of ``mol_id`` ("" where the file has none), ``smiles`` (as written) and the ``columns`` as
    floats (QM9's units: alpha Bohr^3, energies Hartree, mu Debye); the first ``limit`` rows.
    One-line HessflowErrors for a missing column or a value that is not a number."""
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        for c in ("smiles", *columns):
            if c not in fields:
                raise HessflowError(f"{path}: no {c!r} column (MoleculeNet QM9 CSV expected)")
        for row in reader:
            try:
                values = {c: float(row[c]) for c in columns}
            except ValueError:
                raise HessflowError(f"{path}: {row.get('mol_id') or row['smiles']}: "
                                    f"non-numeric value in {list(columns)}") from None
            out.append({"mol_id": row.get("mol_id", ""), "smiles": row["smiles"], **values})
            if limit and len(out) >= limit:
                break
    return out


def load_qm9_csv(path, target: str, limit: int | None = None) -> list[dict]:
    """Molecules of MoleculeNet's qm9.csv (SMILES only: no geometry) with ``target`` as the
    label, in QM9's units (see :func:`read_qm9_csv`)."""
    _, prop = target_columns(target)
    if prop is None or target in VECTOR_TARGETS:
        raise HessflowError(f"--target: {target!r} is not a column of the QM9 CSV"
                            + (" (frequencies: use the extended XYZ files or a store)"
                               if target in VECTOR_TARGETS else ""))
    return [{"name": r["mol_id"], "smiles": r["smiles"], "numbers": None, "coords_bohr": None,
             "masses_amu": None, "hessian": None, "label": r[prop]}
            for r in read_qm9_csv(path, [prop], limit)]


def load_qm9_xyz(path, target: str, limit: int | None = None) -> list[dict]:
    """QM9's extended XYZ files (one file, or the folder of dsgdb9nsd_*.xyz): the B3LYP geometry
    and the label from the property line."""
    from ...qm.molecules.inputs import read_molecules
    _, prop = target_columns(target)
    key = {"mu": "mu"}.get(prop, prop)
    out = []
    for m in read_molecules(path, limit=limit):
        if not hasattr(m, "numbers") or "reference" not in m.extra:
            continue
        if target in VECTOR_TARGETS:
            freqs = m.extra.get("reference_frequencies_cm1")
            if not freqs:
                continue
            label = np.sort(np.asarray(freqs, float))
        else:
            label = float(m.extra["reference"][key])
        out.append({"name": m.name, "smiles": m.smiles, "numbers": m.numbers,
                    "coords_bohr": m.coords_bohr, "masses_amu": m.masses_amu, "hessian": None,
                    "label": label})
    return out


def load(path, target: str, limit: int | None = None, progress: bool = False,
         need_hessian: bool = False) -> list[dict]:
    """The molecules of ``path`` with ``target`` as their label: a hessflow store (``.h5``,
    ``.hdf5``; see :func:`load_store`), a MoleculeNet QM9 CSV (``.csv``) or QM9 extended XYZ
    (a file or a folder of them); the first ``limit`` molecules where given."""
    p = Path(path)
    if p.suffix in (".h5", ".hdf5"):
        return load_store(p, target, progress, need_hessian, limit)
    if p.suffix == ".csv":
        return load_qm9_csv(p, target, limit)
    return load_qm9_xyz(p, target, limit)
