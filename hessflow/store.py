"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

Layout (schema version 1, documented in ``docs/store.md``)::

    FILE.h5
      attrs: schema_version, format="hessflow-store", created, hessflow_version
      /records/<column>          one row per record (scalars, strings, fixed-shape tensors)
      /ragged/<field>/data       all records' values concatenated along axis 0
      /ragged/<field>/offsets    (n_records + 1,) int64: record i owns data[offsets[i]:offsets[i+1]]

Reading the labels of 100,000 records reads a handful of contiguous datasets, not 100,000 groups.

Crash safety. ``FILE.h5`` is never modified in place: it is only ever replaced as a whole by
``os.replace`` of a fully written and fsync'ed temporary file. New records go first to an append-only
write-ahead log ``FILE.h5.wal`` (length + CRC32 framed entries, fsync'ed before ``put`` returns);
``put`` returning *is* the report that a record is stored. Opening the store replays the log on top
of the file (a torn last entry from a crash is ignored and truncated); the log is merged into the
HDF5 file ("checkpoint") when it grows large and on ``close()``. A SIGKILL at any instant therefore
leaves either the old or the new HDF5 file, plus a log whose valid entries are replayed, keyed by
content hash, so nothing reported as stored is lost and nothing is duplicated.

One writer: a writer holds an exclusive ``flock`` on ``FILE.h5.lock`` (released by the kernel if the
process dies). Readers take no lock and see the HDF5 file plus the valid prefix of the log.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import io
import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from . import __version__
from .errors import StoreError

SCHEMA_VERSION = 1
FORMAT = "hessflow-store"

STATUSES = ("done", "failed", "pending")  # pending: some requested tasks still to run

# column -> (dtype, unit). Strings are stored as variable-length UTF-8.
STR = h5py.string_dtype("utf-8")
SCALARS: dict[str, tuple] = {
    "key": (STR, ""),
    "name": (STR, ""),
    "smiles": (STR, ""),
    "formula": (STR, ""),
    "status": (STR, ""),
    "reason": (STR, ""),
    "engine": (STR, ""),
    "method": (STR, ""),
    "basis": (STR, ""),
    "tasks": (STR, "comma-separated tasks completed: opt,freq,polar,hyperpolar"),
    "flags": (STR, "comma-separated warnings, e.g. imaginary_remaining"),
    "provenance": (STR, "JSON: engine version, settings, host, wall times, attempts, date"),
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
    "wall_time_s": (np.float64, "s"),
    "created_unix": (np.float64, "s since epoch (record first written)"),
    "updated_unix": (np.float64, "s since epoch (last result folded in)"),
}
FIXED = {  # column -> (shape, unit)
    "dipole_au": ((3,), "e*Bohr"),
    "alpha_bohr3": ((3, 3), "Bohr^3"),
    "beta_au": ((3, 3, 3), "atomic units"),
}
# ragged field -> (dtype, unit, shape rule); n = atoms, m = modes
RAGGED = {
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
}
LABELS = ("energy_hartree", "zpve_hartree", "alpha_iso_bohr3", "beta_par_au", "beta_vec_au",
          "homo_hartree", "lumo_hartree", "gap_hartree", "dipole_debye", "n_imag")

_MAGIC = b"HFW1"
_HEADER = struct.Struct("<4sQI")  # magic, payload length, crc32


def empty_record() -> dict:
    """A record with every field present and 'not computed' values (NaN, -1, '' or None)."""
    rec: dict = {}
    for col, (dt, _) in SCALARS.items():
        if dt is STR:
            rec[col] = ""
        elif np.issubdtype(np.dtype(dt), np.integer):
            rec[col] = -1 if col == "n_imag" else 0
        else:
            rec[col] = float("nan")
    for col, (shape, _) in FIXED.items():
        rec[col] = np.full(shape, np.nan)
    for f in RAGGED:
        rec[f] = None
    return rec


def _shape(rule, n_atoms: int, n_modes: int):
    sub = {"n": n_atoms, "3n": 3 * n_atoms, "m": n_modes}
    return tuple(sub.get(r, r) for r in rule)


def _normalise(record: dict) -> dict:
    rec = empty_record()
    unknown = set(record) - set(rec)
    if unknown:
        raise StoreError(f"record {record.get('name', '?')}: unknown field(s) {sorted(unknown)}")
    rec.update(record)
    if not rec["key"]:
        raise StoreError(f"record {rec['name']!r}: empty key")
    if rec["status"] not in STATUSES:
        raise StoreError(f"record {rec['name']}: status {rec['status']!r} not in {STATUSES}")
    n = int(rec["n_atoms"])
    m = 0 if rec["frequencies_cm1"] is None else len(rec["frequencies_cm1"])
    for f, (dt, _, rule) in RAGGED.items():
        v = rec[f]
        if v is None:
            continue
        v = np.asarray(v, dtype=dt)
        want = _shape(rule, n, m)
        if v.size == 0:
            rec[f] = None
            continue
        if v.shape != want:
            raise StoreError(f"record {rec['name']}: {f} has shape {v.shape}, expected {want}")
        rec[f] = v
    for col, (shape, _) in FIXED.items():
        rec[col] = np.asarray(rec[col], dtype=np.float64).reshape(shape)
    return rec


# -- write-ahead log ---------------------------------------------------------------------------
def _encode(rec: dict) -> bytes:
    arrays = {}
    for k, v in rec.items():
        if v is None:
            continue
        if isinstance(v, str):
            arrays[k] = np.array(v, dtype=np.str_)
        else:
            arrays[k] = np.asarray(v)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    payload = buf.getvalue()
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> dict:
    rec = empty_record()
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        for k in z.files:
            v = z[k]
            if v.dtype.kind == "U":
                rec[k] = str(v)
            elif v.ndim == 0:
                rec[k] = v.item()
            else:
                rec[k] = v
    return rec


def _read_wal(path: Path):
    """Valid entries of the log and the byte length of its valid prefix."""
    out = []
    if not path.exists():
        return out, 0
    data = path.read_bytes()
    pos = 0
    while pos + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if magic != _MAGIC or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(_decode(payload))
        except Exception:
            break
        pos = end
    return out, pos


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the store -------------------------------------------------------------------------------
class Store:
    """Open a store for reading (``mode="r"``) or as its single writer (``mode="a"``).

    >>> with Store("data.h5", "a") as st:
    ...     st.put(record)        # durable when it returns
    ...     st.table(["key", "zpve_hartree"])
    """

    def __init__(self, path, mode: str = "r", checkpoint_bytes: int = 64 << 20, durable: bool = True):
        if mode not in ("r", "a"):
            raise StoreError(f"store mode {mode!r} is not 'r' or 'a'")
        self.path = Path(path)
        self.wal_path = self.path.with_name(self.path.name + ".wal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.mode = mode
        self.durable = durable
        self.checkpoint_bytes = checkpoint_bytes
        self._lock_fd = None
        self._wal_fd = None
        self._closed = False
        if mode == "r" and not self.path.exists() and not self.wal_path.exists():
            raise StoreError(f"{self.path}: no such store")
        if mode == "a":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
        try:
            self._load()
            if mode == "a":
                self._open_wal()
        except Exception:
            self._release_lock()
            raise

    # context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return len(self._where)

    def __contains__(self, key):
        return key in self._where

    # -- locking --------------------------------------------------------------------------
    def _acquire_lock(self):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode().strip() or "?"
            finally:
                os.close(fd)
            raise StoreError(f"{self.path}: already open for writing by another process "
                             f"(pid {holder}); HDF5 allows one writer at a time") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self):
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- loading ------------------------------------------------------------------------------
    def _load(self):
        self._h5_keys: list[str] = []
        self._cols: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                with h5py.File(self.path, "r") as f:
                    if f.attrs.get("format") != FORMAT:
                        raise StoreError(f"{self.path}: not a hessflow store")
                    ver = int(f.attrs.get("schema_version", -1))
                    if ver != SCHEMA_VERSION:
                        raise StoreError(f"{self.path}: schema version {ver}, this hessflow reads "
                                         f"{SCHEMA_VERSION}")
                    for col in SCALARS:
                        d = f["records"][col]
                        self._cols[col] = (d.asstr()[...] if SCALARS[col][0] is STR else d[...])
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"{self.path}: cannot read store: {exc}") from exc
            self._h5_keys = list(self._cols["key"])
        self._where: dict[str, object] = {k: i for i, k in enumerate(self._h5_keys)}
        self._pending: dict[str, dict] = {}
        wal, valid = _read_wal(self.wal_path)
        self._wal_valid = valid
        for rec in wal:
            self._remember(rec)

    def _remember(self, rec: dict):
        key = rec["key"]
        self._where[key] = "wal"
        self._pending.pop(key, None)  # re-insert: a replaced record moves to the end of the log
        self._pending[key] = rec

    def _open_wal(self):
        self._wal_fd = os.open(self.wal_path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._wal_fd).st_size != self._wal_valid:
            os.ftruncate(self._wal_fd, self._wal_valid)  # drop a torn tail from a crash
            os.fsync(self._wal_fd)
        os.lseek(self._wal_fd, 0, os.SEEK_END)

    # -- writing -----------------------------------------------------------------------------
    def put(self, record: dict) -> str:
        """Store (or replace) one record; durable on return. Returns its key."""
        return self.put_many([record])[0]

    def put_many(self, records: Iterable[dict]) -> list[str]:
        """Store several records with a single fsync; all are durable on return."""
        if self.mode != "a" or self._closed:
            raise StoreError(f"{self.path}: not open for writing")
        recs = [_normalise(r) for r in records]
        blob = b"".join(_encode(r) for r in recs)
        os.write(self._wal_fd, blob)
        if self.durable:
            os.fsync(self._wal_fd)
        for r in recs:
            self._remember(r)
        self._wal_valid += len(blob)
        if self._wal_valid > self.checkpoint_bytes:
            self.checkpoint()
        return [r["key"] for r in recs]

    def checkpoint(self):
        """Merge the log into the HDF5 file (atomic replace), then empty the log."""
        if self.mode != "a":
            raise StoreError(f"{self.path}: not open for writing")
        if not self._pending:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        h5_keys = set(self._h5_keys)
        replaced = [k for k in self._pending if k in h5_keys]
        if self.path.exists() and not replaced:
            shutil.copyfile(self.path, tmp)
            with h5py.File(tmp, "a") as f:
                self._append(f, list(self._pending.values()))
        else:
            records = [self.get(k) for k in self.keys()]
            if tmp.exists():
                tmp.unlink()
            with h5py.File(tmp, "w") as f:
                self._init_file(f)
                self._append(f, records)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        os.ftruncate(self._wal_fd, 0)
        os.lseek(self._wal_fd, 0, os.SEEK_SET)
        os.fsync(self._wal_fd)
        self._wal_valid = 0
        self._load()

    @staticmethod
    def _init_file(f: h5py.File):
        f.attrs["format"] = FORMAT
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        f.attrs["hessflow_version"] = __version__
        g = f.create_group("records")
        for col, (dt, unit) in SCALARS.items():
            d = g.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dt, chunks=(4096,))
            d.attrs["unit"] = unit
        for col, (shape, unit) in FIXED.items():
            d = g.create_dataset(col, shape=(0, *shape), maxshape=(None, *shape), dtype="f8",
                                 chunks=(1024, *shape))
            d.attrs["unit"] = unit
        r = f.create_group("ragged")
        for fld, (dt, unit, rule) in RAGGED.items():
            g2 = r.create_group(fld)
            d = g2.create_dataset("data", shape=(0,), maxshape=(None,), dtype=dt, chunks=(65536,))
            d.attrs["unit"] = unit
            d.attrs["shape"] = json.dumps(rule)
            g2.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(4096,))

    @staticmethod
    def _append(f: h5py.File, records: list[dict]):
        if "records" not in f:
            Store._init_file(f)
        g = f["records"]
        n0 = g["key"].shape[0]
        k = len(records)
        for col in SCALARS:
            d = g[col]
            d.resize((n0 + k,))
            d[n0:] = [r[col] for r in records]
        for col in FIXED:
            d = g[col]
            d.resize((n0 + k, *d.shape[1:]))
            d[n0:] = np.stack([np.asarray(r[col], float) for r in records])
        for fld in RAGGED:
            data, offs = f["ragged"][fld]["data"], f["ragged"][fld]["offsets"]
            chunks = [np.asarray(r[fld]).ravel() if r[fld] is not None else np.zeros(0)
                      for r in records]
            lens = np.array([c.size for c in chunks], np.int64)
            start = int(offs[n0])
            data.resize((start + int(lens.sum()),))
            if lens.sum():
                data[start:] = np.concatenate(chunks).astype(data.dtype)
            offs.resize((n0 + k + 1,))
            offs[n0 + 1:] = start + np.cumsum(lens)

    def close(self):
        if self._closed:
            return
        try:
            if self.mode == "a":
                self.checkpoint()
                if self._wal_fd is not None:
                    os.close(self._wal_fd)
                    self._wal_fd = None
                if self.wal_path.exists() and self.wal_path.stat().st_size == 0:
                    self.wal_path.unlink()
        finally:
            self._release_lock()
            self._closed = True

    # -- reading -----------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """All keys in storage order: checkpointed rows first, then the log's records."""
        return [k for k in self._h5_keys if k not in self._pending] + list(self._pending)

    def status(self, key: str) -> str | None:
        w = self._where.get(key)
        if w is None:
            return None
        if w == "wal":
            return self._pending[key]["status"]
        return str(self._cols["status"][w])

    def column(self, name: str, key: str):
        w = self._where[key]
        return self._pending[key][name] if w == "wal" else self._cols[name][w]

    def get(self, key: str) -> dict:
        """The full record (with ragged arrays reshaped), or KeyError."""
        w = self._where[key]
        if w == "wal":
            return dict(self._pending[key])
        rec = empty_record()
        for col in SCALARS:
            v = self._cols[col][w]
            rec[col] = v if isinstance(v, str) else v.item()
        with h5py.File(self.path, "r") as f:
            for col in FIXED:
                rec[col] = f["records"][col][w]
            n, m = rec["n_atoms"], None
            for fld, (_, _, rule) in RAGGED.items():
                offs = f["ragged"][fld]["offsets"][w:w + 2]
                if offs[1] == offs[0]:
                    continue
                flat = f["ragged"][fld]["data"][offs[0]:offs[1]]
                if fld == "frequencies_cm1":
                    m = flat.size
                if m is None and "m" in rule:
                    fo = f["ragged"]["frequencies_cm1"]["offsets"][w:w + 2]
                    m = int(fo[1] - fo[0])
                rec[fld] = flat.reshape(_shape(rule, n, m or 0))
        return rec

    def records(self) -> Iterator[dict]:
        for k in self.keys():
            yield self.get(k)

    def table(self, columns: Iterable[str] = ("key",) + LABELS) -> dict[str, np.ndarray]:
        """Scalar/fixed columns for every record, in store order (fast: columnar reads)."""
        columns = list(columns)
        out = {}
        if self._pending:
            rows_h5 = np.array([i for i, k in enumerate(self._h5_keys) if k not in self._pending],
                               dtype=np.int64)
        else:
            rows_h5 = slice(None)
        wal_keys = list(self._pending)
        need_file = [c for c in columns if c in FIXED]
        fixed = {}
        if need_file and self._h5_keys:
            with h5py.File(self.path, "r") as f:
                for c in need_file:
                    fixed[c] = f["records"][c][...]
        for c in columns:
            if c in SCALARS:
                base = self._cols[c][rows_h5] if self._h5_keys else np.zeros(0, self._dtype(c))
            elif c in FIXED:
                shape = FIXED[c][0]
                base = fixed[c][rows_h5] if self._h5_keys else np.zeros((0, *shape))
            else:
                raise StoreError(f"unknown column {c!r}")
            extra = [self._pending[k][c] for k in wal_keys]
            if extra:
                base = np.concatenate([base, np.asarray(extra, dtype=base.dtype)])
            out[c] = base
        return out

    @staticmethod
    def _dtype(c):
        dt = SCALARS[c][0]
        return object if dt is STR else dt

    def summary(self) -> dict:
        t = self.table(["status", "engine", "method", "basis"])
        out = {"records": len(self), "by_status": {}, "engines": {}, "methods": {}}
        for s in t["status"]:
            out["by_status"][s] = out["by_status"].get(s, 0) + 1
        for e in t["engine"]:
            out["engines"][e] = out["engines"].get(e, 0) + 1
        for m, b in zip(t["method"], t["basis"]):
            lvl = f"{m}/{b}" if b else m
            out["methods"][lvl] = out["methods"].get(lvl, 0) + 1
        return out


def now_unix() -> float:
    return _dt.datetime.now(_dt.timezone.utc).timestamp()
