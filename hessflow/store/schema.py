"""The store's schema (version 3): the record's fields as HDF5 columns, and a record checked and
normalised into those columns.

The fields, their units and shapes are the QM record's (:mod:`hessflow.qm.record`); this module
adds how each is kept in the file: strings as variable-length UTF-8, the key and the status as
fixed-width ASCII (so the index reads in one contiguous read), fixed tensors as float64 rows,
ragged arrays flattened with their record's start and length. Version 2 adds the store's
identity (``store_id``, which its log repeats), a CRC32 of every field of every record
(``/records/checksum``, :mod:`hessflow.store.checksum`) and ``schema_doc``; version 3 adds the
gradient (``gradient_hartree_bohr``) and matches the checksum table's columns by name (its
``fields`` attribute), so that a field added to the record later reads as "not computed" from an
older file. Older files are read as they are and upgraded by their first writer (the missing
columns added, checksums computed for version 1).
"""

from __future__ import annotations

import h5py
import numpy as np

from ..errors import StoreError
from ..qm.record import (FIXED_FIELDS, RAGGED_FIELDS, SCALAR_FIELDS, STATUSES, empty_record,
                         field_shape)

SCHEMA_VERSION = 3
READS_VERSIONS = (1, 2, 3)   # schema versions this hessflow opens (1: no identity, no checksums)
FORMAT = "hessflow-store"
SCHEMA_DOC = ("hessflow store, schema version 3: the layout, columns, units, checksums and crash "
              "safety are described in docs/store.md of hessflow")

STR = h5py.string_dtype("utf-8")
KEY = np.dtype("S64")      # sha256 hex: fixed width, so the index reads in one contiguous read
STATUS = np.dtype("S8")
_FIXED_WIDTH = {"key": KEY, "status": STATUS}

# column -> (HDF5 dtype, unit)
SCALARS: dict[str, tuple] = {col: ((_FIXED_WIDTH.get(col, STR) if kind is str else kind), unit)
                             for col, (kind, unit) in SCALAR_FIELDS.items()}
FIXED = FIXED_FIELDS     # column -> (shape, unit), float64
RAGGED = RAGGED_FIELDS   # ragged field -> (dtype, unit, shape rule); n = atoms, m = modes


def is_text(col: str) -> bool:
    """Whether scalar column ``col`` holds strings (variable-length or fixed-width)."""
    dt = SCALARS[col][0]
    return dt is STR or dt in (KEY, STATUS)


def column_dtype(col: str):
    """The numpy dtype of scalar column ``col`` in memory: ``object`` for strings."""
    return object if is_text(col) else SCALARS[col][0]


def normalise(record: dict) -> dict:
    """``record`` completed with every field (see :func:`hessflow.qm.record.empty_record`) and
    checked: no unknown field, a 1-64 ASCII key, a known status, ragged arrays of the shape
    their rule gives for ``n_atoms`` and the number of frequencies (empty ones become None),
    fixed tensors as float64 of their shape. Raises :class:`StoreError` naming the field."""
    rec = empty_record()
    unknown = set(record) - set(rec)
    if unknown:
        raise StoreError(f"record {record.get('name', '?')}: unknown field(s) {sorted(unknown)}")
    rec.update(record)
    if not rec["key"] or len(str(rec["key"])) > 64 or not str(rec["key"]).isascii():
        raise StoreError(f"record {rec['name']!r}: key must be 1-64 ASCII characters")
    if rec["status"] not in STATUSES:
        raise StoreError(f"record {rec['name']}: status {rec['status']!r} not in {STATUSES}")
    n = int(rec["n_atoms"])
    m = 0 if rec["frequencies_cm1"] is None else len(rec["frequencies_cm1"])
    for f, (dt, _, rule) in RAGGED.items():
        v = rec[f]
        if v is None:
            continue
        v = np.asarray(v, dtype=dt)
        want = field_shape(rule, n, m)
        if v.size == 0:
            rec[f] = None
            continue
        if v.shape != want:
            raise StoreError(f"record {rec['name']}: {f} has shape {v.shape}, expected {want}")
        rec[f] = v
    for col, (shape, _) in FIXED.items():
        rec[col] = np.asarray(rec[col], dtype=np.float64).reshape(shape)
    return rec
