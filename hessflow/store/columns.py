"""The columnar HDF5 file: create its datasets, write records into rows, read spans of rows.

Layout (schema version 3, see :mod:`hessflow.store.schema` and ``docs/store.md``)::

    FILE.h5
      attrs: format="hessflow-store", schema_version, store_id, schema_doc, created,
             hessflow_version
      /records/<column>          one row per record (scalars, strings, fixed-shape tensors)
      /records/checksum          (n_records, n_fields) uint32: CRC32 of each field (attrs: fields)
      /ragged/<field>/data       records' values, flattened, appended along axis 0
      /ragged/<field>/start      (n_records,) int64  record i owns data[start[i]:start[i]+length[i]]
      /ragged/<field>/length     (n_records,) int64
"""

from __future__ import annotations

import datetime as _dt
import json

import h5py
import numpy as np

from .. import __version__
from ..qm.record import empty_record
from .checksum import ALGORITHM, FIELDS, records_crcs
from .schema import FIXED, FORMAT, KEY, RAGGED, SCALARS, SCHEMA_DOC, SCHEMA_VERSION, STATUS, STR


def init_file(f: h5py.File, store_id: str):
    """Write the attributes and the empty datasets of a new store file ``f`` (schema version
    :data:`~hessflow.store.schema.SCHEMA_VERSION`) whose identity is ``store_id``."""
    f.attrs["format"] = FORMAT
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
    f.attrs["hessflow_version"] = __version__
    f.attrs["store_id"] = store_id
    f.attrs["schema_doc"] = SCHEMA_DOC
    f.create_group("records")
    f.create_group("ragged")
    add_columns(f, FIELDS, 0)
    add_checksums(f, 0)


def add_columns(f: h5py.File, fields, n_rows: int):
    """Create the datasets of ``fields`` (scalar, fixed or ragged, of :data:`FIELDS`) for
    ``n_rows`` rows, each row "not computed" (:func:`hessflow.qm.record.empty_record`): new
    files get every field, older files the ones added to the schema since (see ``docs/store.md``,
    schema versions)."""
    g, r, empty = f["records"], f["ragged"], empty_record()
    for col in fields:
        if col in SCALARS:
            dt, unit = SCALARS[col]
            d = g.create_dataset(col, shape=(n_rows,), maxshape=(None,), dtype=dt,
                                 chunks=(4096,))
            if n_rows:
                d[:] = [empty[col]] * n_rows if dt is STR else np.full(n_rows, empty[col], dt)
        elif col in FIXED:
            shape, unit = FIXED[col]
            d = g.create_dataset(col, shape=(n_rows, *shape), maxshape=(None, *shape), dtype="f8",
                                 chunks=(1024, *shape), fillvalue=np.nan)
        else:
            dt, unit, rule = RAGGED[col]
            g2 = r.create_group(col)
            d = g2.create_dataset("data", shape=(0,), maxshape=(None,), dtype=dt, chunks=(65536,))
            d.attrs["shape"] = json.dumps(rule)
            for idx in ("start", "length"):
                g2.create_dataset(idx, shape=(n_rows,), maxshape=(None,), dtype=np.int64,
                                  chunks=(4096,), fillvalue=0)
        d.attrs["unit"] = unit


def add_checksums(f: h5py.File, n_rows: int):
    """Create ``/records/checksum`` for ``n_rows`` rows (zeros: the caller fills them)."""
    d = f["records"].create_dataset("checksum", shape=(n_rows, len(FIELDS)),
                                    maxshape=(None, len(FIELDS)), dtype=np.uint32,
                                    chunks=(1024, len(FIELDS)))
    d.attrs["fields"] = json.dumps(list(FIELDS))
    d.attrs["algorithm"] = ALGORITHM


def write_rows(f: h5py.File, records: list[dict], rows: list):
    """Write normalised ``records`` into the store file ``f``, with their checksums: ``rows[i]``
    is the row that records[i] replaces, or None to append it. Ragged values are always appended
    (the replaced values become unreferenced space)."""
    g = f["records"]
    n0 = g["key"].shape[0]
    new = [i for i, r in enumerate(rows) if r is None]
    target = np.array([n0 + new.index(i) if r is None else r for i, r in enumerate(rows)],
                      dtype=np.int64)
    n1 = n0 + len(new)
    order = np.argsort(target)  # h5py fancy indexing needs increasing rows
    tgt = target[order]

    def put(d, values):
        if d.shape[0] != n1:
            d.resize((n1, *d.shape[1:]))
        vals = [values[i] for i in order]
        if len(tgt) and tgt[-1] - tgt[0] + 1 == len(tgt):  # contiguous block
            d[int(tgt[0]):int(tgt[-1]) + 1] = vals
        else:
            for t, v in zip(tgt, vals):
                d[int(t)] = v

    for col, (dt, _) in SCALARS.items():
        vals = [r[col] for r in records]
        if dt in (KEY, STATUS):
            vals = [str(v).encode("ascii") for v in vals]
        put(g[col], vals)
    for col in FIXED:
        put(g[col], [np.asarray(r[col], float) for r in records])
    put(g["checksum"], list(records_crcs(records)))
    for fld in RAGGED:
        grp = f["ragged"][fld]
        data = grp["data"]
        chunks = [np.asarray(r[fld]).ravel() if r[fld] is not None else np.zeros(0)
                  for r in records]
        lens = np.array([c.size for c in chunks], np.int64)
        end = data.shape[0]
        starts = end + np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        if lens.sum():
            data.resize((end + int(lens.sum()),))
            data[end:] = np.concatenate(chunks).astype(data.dtype)
        put(grp["start"], list(np.where(lens > 0, starts, 0)))
        put(grp["length"], list(lens))


def take(data, start: np.ndarray, length: np.ndarray) -> list[np.ndarray]:
    """Slices ``data[start[i]:start[i]+length[i]]`` of an HDF5 dataset: one read of the span
    that covers them when they fill a good part of it, else one read each."""
    start = np.asarray(start, np.int64)
    length = np.asarray(length, np.int64)
    if not len(start):
        return []
    lo, hi = int(start.min()), int((start + length).max())
    if hi - lo <= 4 * int(length.sum()) + 4096:
        span = data[lo:hi]
        return [span[s - lo:s - lo + n] for s, n in zip(start, length)]
    return [data[s:s + n] if n else data[0:0] for s, n in zip(start, length)]
