"""Reading the HDF5 file: its index, columns and rows, each value checked against its CRC32.

These functions read an open ``h5py.File`` and report damage instead of returning it as a value:
:class:`~hessflow.store.store.Store` raises on the first damaged value it is asked for,
:func:`hessflow.store.verify.verify` collects them all.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import StoreError
from ..qm.record import empty_record, field_shape
from .checksum import FIELDS, INDEX, array_matches, column_crcs, in_field_order
from .columns import take
from .fileio import cause
from .journal import RecoveredView
from .schema import FIXED, FORMAT, KEY, RAGGED, READS_VERSIONS, SCALARS, STATUS, STR


def open_h5(path: Path, journal: Path) -> h5py.File:
    """``path`` open read-only with h5py, as it stands after recovery from ``journal`` when one
    is there (an interrupted checkpoint: see :class:`~hessflow.store.journal.RecoveredView`);
    nothing is written. :class:`StoreError` with the cause when it cannot be read."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read its journal {journal.name}: {cause(exc)}") from None
    try:
        if data is None:
            return h5py.File(path, "r", locking=False)
        return h5py.File(RecoveredView(path, data, str(journal)), "r", locking=False)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"{path}: cannot read the HDF5 file: {cause(exc)}") from None


@dataclasses.dataclass
class Index:
    """The file's attributes and index: ``keys`` (one per row, as read), ``version``,
    ``store_id`` (None for version 1), ``generation`` (checkpoints so far), ``crcs`` (the
    ``(rows, fields)`` checksum table; None for version 1) and ``bad_keys`` (rows whose key fails
    its checksum)."""
    keys: list
    version: int
    store_id: str | None
    generation: int
    crcs: np.ndarray | None
    bad_keys: list


def read_index(f: h5py.File, path) -> Index:
    """The :class:`Index` of the store file ``f`` (``path`` names it in errors)."""
    try:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: not a hessflow store")
        ver = int(f.attrs.get("schema_version", -1))
        if ver not in READS_VERSIONS:
            raise StoreError(f"{path}: schema version {ver}, this hessflow reads "
                             f"{', '.join(map(str, READS_VERSIONS))}")
        raw = f["records"]["key"][...]
        crcs = None
        if "checksum" in f["records"]:
            d = f["records"]["checksum"]
            crcs = d[...]
            if "fields" in d.attrs and crcs.ndim == 2:
                names = json.loads(d.attrs["fields"])
                if len(names) == crcs.shape[1]:
                    crcs = in_field_order(crcs, names)
        sid = f.attrs.get("store_id")
        gen = int(f.attrs.get("generation", 0))
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"{path}: cannot read the store's index: {cause(exc)}") from None
    keys = raw.astype(str).tolist()
    bad = [] if crcs is None else bad_rows("key", raw, crcs).tolist()
    return Index(keys, ver, None if sid is None else str(sid), gen, crcs, bad)


def bad_rows(col: str, values, crcs: np.ndarray | None, rows=None) -> np.ndarray:
    """Rows (indices into ``values``; file rows ``rows`` if given) whose value of column ``col``
    fails its checksum (none without a checksum table)."""
    if crcs is None:
        return np.zeros(0, np.int64)
    rows = np.arange(len(values)) if rows is None else np.asarray(rows, np.int64)
    have = rows < crcs.shape[0]
    got = column_crcs(col, values)
    want = np.zeros(len(rows), np.uint32)
    want[have] = crcs[rows[have], INDEX[col]]
    return np.flatnonzero((got != want) | ~have)


def missing_columns(f: h5py.File) -> list[str]:
    """The fields of the schema (:data:`FIELDS`) that the file has no column for: it was
    written before they were added (see ``docs/store.md``, schema versions). They read as "not
    computed"; the store's first writer adds them."""
    records, ragged = f["records"], f["ragged"]
    return [c for c in FIELDS if c not in (ragged if c in RAGGED else records)]


def read_column(f: h5py.File, col: str):
    """One whole scalar column: strings as an object array, numbers as their dtype (a column
    the file does not have: its "not computed" value in every row)."""
    if col not in f["records"]:
        n = f["records"]["key"].shape[0]
        fill = empty_record()[col]
        return np.full(n, fill, dtype=object if isinstance(fill, str) else SCALARS[col][0])
    d = f["records"][col]
    dt = SCALARS[col][0]
    if dt is STR:
        return d.asstr()[...].astype(object)
    if dt in (KEY, STATUS):
        return d[...].astype(str).astype(object)
    return d[...]


def read_ragged_index(f: h5py.File) -> dict:
    """``{field: (start, length)}`` of every ragged field (a field the file has no column for:
    every record's slice empty)."""
    n = f["records"]["key"].shape[0]
    none = (np.zeros(n, np.int64), np.zeros(n, np.int64))
    return {fld: (f["ragged"][fld]["start"][...], f["ragged"][fld]["length"][...])
            if fld in f["ragged"] else none for fld in RAGGED}


def read_rows(f: h5py.File, rows: list[int], ragged: list[str], column, ragged_index: dict,
              crcs: np.ndarray | None):
    """Records of the file rows ``rows`` (sorted, unique), ``{row: record}``, and the damage
    found, ``[(row, field)]``: a damaged field comes back as None. ``column(col)`` gives a whole
    scalar column and the set of its damaged rows; ``ragged`` names the ragged fields to read."""
    out, damage = {}, []
    for w in rows:
        rec = empty_record()
        for col in SCALARS:
            values, bad = column(col)
            if w in bad:
                damage.append((w, col))
                rec[col] = None
                continue
            v = values[w]
            rec[col] = v if isinstance(v, str) else v.item()
        out[w] = rec
    rows_a = np.asarray(rows, np.int64)
    records, ragged_group = f["records"], f["ragged"]
    for col in FIXED:
        if col not in records:   # a field added after this file was written: not computed
            continue
        vals = take(records[col], rows_a, np.ones(len(rows), np.int64))
        for w, v in zip(rows, vals):
            if crcs is not None and (w >= len(crcs) or
                                     not array_matches(col, v[0], crcs[w, INDEX[col]])):
                damage.append((w, col))
                out[w][col] = None
            else:
                out[w][col] = v[0]
    modes = ragged_index["frequencies_cm1"][1]
    for fld in ragged:
        if fld not in ragged_group:   # a field added after this file was written: not computed
            continue
        start, length = ragged_index[fld][0][rows_a], ragged_index[fld][1][rows_a]
        data = ragged_group[fld]["data"]
        n = data.shape[0]
        sane = (start >= 0) & (length >= 0) & (start + length <= n)
        pieces = take(data, np.where(sane, start, 0), np.where(sane, length, 0))
        rule = RAGGED[fld][2]
        for w, p, ok in zip(rows, pieces, sane):
            rec = out[w]
            if not ok or (crcs is not None and (w >= len(crcs) or
                                                not array_matches(fld, p, crcs[w, INDEX[fld]]))):
                damage.append((w, fld))
                continue
            if len(p):
                n_atoms, m = rec["n_atoms"], int(modes[w])
                shape = field_shape(rule, n_atoms if n_atoms is not None else -1, m)
                if math.prod(shape) != p.size or min(shape) < 0:
                    damage.append((w, fld))  # unchecked (version 1) and inconsistent
                    continue
                rec[fld] = p.reshape(shape)
    return out, damage


def describe_damage(path, row: int, field: str, keys: list, names) -> str:
    """One line naming a damaged value: the store, the record (key and name if readable), the
    field."""
    key = keys[row] if row < len(keys) else "?"
    name = ""
    if names is not None and field != "name":
        try:
            name = f" ({names[row]})"
        except Exception:
            name = ""
    return (f"{path}: record {key}{name} (row {row}): {field} fails its checksum "
            f"(damaged on disk); `hessflow verify {os.fspath(path)}` lists all damage")


__all__ = ["FIELDS", "Index", "bad_rows", "describe_damage", "open_h5", "read_column",
           "missing_columns", "read_index", "read_ragged_index", "read_rows"]
