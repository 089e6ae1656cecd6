"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

Layout (schema version 1, documented in ``docs/store.md``)::

    FILE.h5
      attrs: schema_version, format="hessflow-store", created, hessflow_version
      /records/<column>          one row per record (scalars, strings, fixed-shape tensors)
      /ragged/<field>/data       records' values, flattened, appended along axis 0
      /ragged/<field>/start      (n_records,) int64  record i owns data[start[i]:start[i]+length[i]]
      /ragged/<field>/length     (n_records,) int64

Reading the labels of 100,000 records reads a handful of contiguous datasets, not 100,000 groups.

Crash safety (the design of SQLite: a write-ahead log for commits, a rollback journal for
checkpoints):

- ``put`` appends the record to ``FILE.h5.wal`` (framed entries: magic, length, CRC32, payload)
  and fsyncs before returning; returning *is* the report that the record is stored.
- Opening the store replays the log on top of the HDF5 file. A torn last entry (a kill in the
  middle of a write) fails its CRC and is ignored; records are keyed, so an entry that a
  checkpoint already merged is not duplicated, and a later entry with the same key replaces it.
- A checkpoint merges the log into ``FILE.h5`` *in place* (new rows appended, replaced rows
  overwritten, replaced ragged data appended and re-pointed), through a file object that first
  copies the old bytes of every region it overwrites into ``FILE.h5.journal`` and fsyncs it.
  Deleting the journal after the HDF5 file is fsync'ed is the commit point; a journal found at
  open means a checkpoint was interrupted, and its pre-images roll the file back to the state
  before that checkpoint (whose records are still in the log). A checkpoint costs what it adds,
  not the size of the file.
- The log is checkpointed when it exceeds 64 MiB and on ``close()``.

One writer: a writer holds an exclusive ``flock`` on ``FILE.h5.lock`` (released by the kernel if
the process dies). Readers take no writer lock; they hold a shared ``flock`` on
``FILE.h5.readers`` while they read the HDF5 file, and a checkpoint takes it exclusively, so a
reader never sees a half-merged file.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import io
import json
import os
import struct
import time
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
KEY = np.dtype("S64")      # sha256 hex: fixed width, so the index reads in one contiguous read
STATUS = np.dtype("S8")
SCALARS: dict[str, tuple] = {
    "key": (KEY, "sha256 hex of the request"),
    "name": (STR, ""),
    "smiles": (STR, ""),
    "formula": (STR, ""),
    "status": (STATUS, "done | failed | pending"),
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

_MAGIC = b"HFW2"
_MAGIC_NPZ = b"HFW1"
_HEADER = struct.Struct("<4sQI")  # magic, payload length, crc32


def empty_record() -> dict:
    """A record with every field present and 'not computed' values (NaN, -1, '' or None)."""
    rec: dict = {}
    for col, (dt, _) in SCALARS.items():
        if dt is STR or dt in (KEY, STATUS):
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
# Entry payload (HFW2): u32 length of a JSON header, the header {"s": scalar and string fields,
# "a": [[field, dtype, shape], ...]}, then the arrays' bytes in that order. HFW1 payloads (an
# .npz archive per record: the first log format, ~10x slower to encode, ~6x to decode) are still read.
_U32 = struct.Struct("<I")


def _encode(rec: dict) -> bytes:
    scalars, meta, blobs = {}, [], []
    for k, v in rec.items():
        if v is None:
            continue
        if isinstance(v, str):
            scalars[k] = v
        elif isinstance(v, (int, float, np.generic)) or np.ndim(v) == 0:
            scalars[k] = v.item() if hasattr(v, "item") else v
        else:
            a = np.ascontiguousarray(v)
            meta.append([k, a.dtype.str, list(a.shape)])
            blobs.append(a.tobytes())
    head = json.dumps({"s": scalars, "a": meta}).encode()
    payload = b"".join([_U32.pack(len(head)), head, *blobs])
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _decode(payload: bytes) -> dict:
    rec = empty_record()
    (n,) = _U32.unpack_from(payload, 0)
    head = json.loads(payload[_U32.size:_U32.size + n])
    rec.update(head["s"])
    pos = _U32.size + n
    for k, dtype, shape in head["a"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        rec[k] = np.frombuffer(payload, dt, count, pos).reshape(shape).copy()
        pos += count * dt.itemsize
    if pos != len(payload):
        raise ValueError("log entry: trailing bytes")
    return rec


def _decode_npz(payload: bytes) -> dict:
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


_DECODERS = {_MAGIC: _decode, _MAGIC_NPZ: _decode_npz}


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
        if magic not in _DECODERS or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(_DECODERS[magic](payload))
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


# -- rollback journal for in-place checkpoints ---------------------------------------------------
_JMAGIC = b"HFJ1"
_JHEAD = struct.Struct("<4sQ")      # magic, size of the file before the checkpoint
_JENTRY = struct.Struct("<QQI")     # offset, length, crc32 of the pre-image


class _JournaledFile(io.RawIOBase):
    """A file object for h5py's ``fileobj`` driver that makes an in-place update atomic.

    Appends beyond the original end of file go straight to the file (a rollback truncates them).
    Overwrites of existing bytes are held in memory (reads see them) until :meth:`commit`, which
    writes the old bytes of every overwritten region to the journal, fsyncs it once, applies the
    overwrites and fsyncs the file — the ordering of SQLite's rollback journal."""

    def __init__(self, path: Path, journal: Path):
        self.fd = os.open(path, os.O_RDWR)
        self.size0 = os.fstat(self.fd).st_size
        self.journal = journal
        self.overlay: dict[int, bytes] = {}  # offset -> bytes, all below size0
        self.pos = 0
        self.size = self.size0

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        data = bytearray(os.pread(self.fd, n, self.pos).ljust(n, b"\0"))
        lo, hi = self.pos, self.pos + n
        for off, chunk in self.overlay.items():
            a, z = max(lo, off), min(hi, off + len(chunk))
            if a < z:
                data[a - lo:z - lo] = chunk[a - off:z - off]
        b[:n] = data
        self.pos += n
        return n

    def seek(self, offset, whence=0):
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = self.size + offset
        return self.pos

    def tell(self):
        return self.pos

    def write(self, b):
        b = bytes(b)
        lo, hi = self.pos, self.pos + len(b)
        if lo < self.size0:  # the part over existing bytes waits for commit
            cut = min(hi, self.size0)
            self._overlay(lo, b[:cut - lo])
            rest, lo = b[cut - lo:], cut
        else:
            rest = b
        if rest:
            os.pwrite(self.fd, rest, lo)
        self.pos = hi
        self.size = max(self.size, hi)
        return len(b)

    def _overlay(self, off, data):
        # fold into overlapping/adjacent segments so the overlay stays small
        lo, hi = off, off + len(data)
        merged = bytearray()
        for o in sorted(self.overlay):
            c = self.overlay[o]
            if o <= hi and o + len(c) >= lo:
                nlo, nhi = min(lo, o), max(hi, o + len(c))
                buf = bytearray(nhi - nlo)
                buf[o - nlo:o - nlo + len(c)] = c
                cur = bytes(merged) if merged else data
                cur_lo = lo
                buf[cur_lo - nlo:cur_lo - nlo + len(cur)] = cur
                del self.overlay[o]
                lo, hi, merged = nlo, nhi, buf
                data = bytes(buf)
        self.overlay[lo] = bytes(merged) if merged else data

    def truncate(self, size=None):
        size = self.pos if size is None else size
        if size < self.size0:
            raise OSError("hessflow store: refusing to shrink the file inside a checkpoint")
        os.ftruncate(self.fd, size)
        self.size = size
        return size

    def flush(self):
        pass

    def commit(self):
        os.fsync(self.fd)  # appended data first: a rollback only truncates it
        if self.overlay:
            with open(self.journal, "wb") as j:
                j.write(_JHEAD.pack(_JMAGIC, self.size0))
                for off, chunk in sorted(self.overlay.items()):
                    old = os.pread(self.fd, len(chunk), off)
                    j.write(_JENTRY.pack(off, len(old), zlib.crc32(old)) + old)
                j.flush()
                os.fsync(j.fileno())
            _fsync_dir(self.journal.parent)
            for off, chunk in self.overlay.items():
                os.pwrite(self.fd, chunk, off)
            os.fsync(self.fd)
        os.close(self.fd)
        if self.journal.exists():
            self.journal.unlink()  # the commit point
            _fsync_dir(self.journal.parent)

    def abandon(self):
        os.ftruncate(self.fd, self.size0)  # nothing below size0 was touched
        os.close(self.fd)


def _rollback(path: Path, journal: Path) -> bool:
    """Undo an interrupted checkpoint. Returns True if there was one."""
    if not journal.exists():
        return False
    data = journal.read_bytes()
    if len(data) >= _JHEAD.size and path.exists():
        magic, size0 = _JHEAD.unpack_from(data, 0)
        if magic == _JMAGIC:
            fd = os.open(path, os.O_RDWR)
            try:
                pos = _JHEAD.size
                while pos + _JENTRY.size <= len(data):
                    off, n, crc = _JENTRY.unpack_from(data, pos)
                    old = data[pos + _JENTRY.size:pos + _JENTRY.size + n]
                    if len(old) != n or zlib.crc32(old) != crc:
                        break  # torn entry: its overwrite never started
                    os.pwrite(fd, old, off)
                    pos += _JENTRY.size + n
                os.ftruncate(fd, size0)
                os.fsync(fd)
            finally:
                os.close(fd)
    journal.unlink()
    _fsync_dir(journal.parent)
    return True


def _take(data, start: np.ndarray, length: np.ndarray) -> list[np.ndarray]:
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
        self.readers_path = self.path.with_name(self.path.name + ".readers")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
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
            if mode == "a":
                with self._exclusive():
                    _rollback(self.path, self.journal_path)
            elif self.journal_path.exists():
                self._recover_as_reader()
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
    def _acquire_lock(self, blocking=False) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
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
        return True

    def _release_lock(self):
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def _flock(self, how):
        fd = os.open(self.readers_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _shared(self):
        """Held while reading FILE.h5: no checkpoint rewrites it meanwhile."""
        return self._flock(fcntl.LOCK_SH)

    def _exclusive(self):
        return self._flock(fcntl.LOCK_EX)

    def _recover_as_reader(self):
        """A writer died inside a checkpoint: roll it back, if no other writer is there to."""
        for _ in range(100):
            try:
                self._acquire_lock()
            except StoreError:
                time.sleep(0.05)  # a live writer rolls back when it opens; wait for it
                if not self.journal_path.exists():
                    return
                continue
            try:
                with self._exclusive():
                    _rollback(self.path, self.journal_path)
            finally:
                self._release_lock()
            return
        raise StoreError(f"{self.path}: an interrupted checkpoint awaits recovery by its writer")

    # -- loading ------------------------------------------------------------------------------
    def _load(self):
        """Read the index (keys) of the HDF5 file and replay the log. Other columns are read on
        demand (:meth:`_column`), so opening a large store costs one contiguous read."""
        self._h5_keys: list[str] = []
        self._colcache: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                with self._shared(), h5py.File(self.path, "r") as f:
                    if f.attrs.get("format") != FORMAT:
                        raise StoreError(f"{self.path}: not a hessflow store")
                    ver = int(f.attrs.get("schema_version", -1))
                    if ver != SCHEMA_VERSION:
                        raise StoreError(f"{self.path}: schema version {ver}, this hessflow reads "
                                         f"{SCHEMA_VERSION}")
                    keys = f["records"]["key"][...]
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"{self.path}: cannot read store: {exc}") from exc
            self._h5_keys = keys.astype(str).tolist()
        self._where: dict[str, object] = {k: i for i, k in enumerate(self._h5_keys)}
        self._h5_row = dict(self._where)
        self._pending: dict[str, dict] = {}
        wal, valid = _read_wal(self.wal_path)
        self._wal_valid = valid
        for rec in wal:
            self._remember(rec)

    def _column(self, col: str) -> np.ndarray:
        """One whole scalar column of the HDF5 file (cached until the next checkpoint)."""
        if col not in self._colcache:
            if not self._h5_keys:
                self._colcache[col] = np.zeros(0, self._dtype(col))
            else:
                with self._shared(), h5py.File(self.path, "r") as f:
                    d = f["records"][col]
                    dt = SCALARS[col][0]
                    if dt is STR:
                        v = d.asstr()[...].astype(object)
                    elif dt in (KEY, STATUS):
                        v = d[...].astype(str).astype(object)
                    else:
                        v = d[...]
                self._colcache[col] = v
        return self._colcache[col]

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
        """Merge the log into the HDF5 file (journaled, in place), then empty the log."""
        if self.mode != "a":
            raise StoreError(f"{self.path}: not open for writing")
        if not self._pending:
            return
        with self._exclusive():
            if not self.path.exists():
                tmp = self.path.with_name(self.path.name + ".tmp")
                with h5py.File(tmp, "w") as f:
                    self._init_file(f)
                    self._write_rows(f, list(self._pending.values()), [None] * len(self._pending))
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
            else:
                jf = _JournaledFile(self.path, self.journal_path)
                try:
                    with h5py.File(jf, "r+") as f:
                        recs = list(self._pending.values())
                        self._write_rows(f, recs, [self._h5_row.get(r["key"]) for r in recs])
                except BaseException:
                    jf.abandon()
                    raise
                jf.commit()
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
            for idx in ("start", "length"):
                g2.create_dataset(idx, shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))

    @staticmethod
    def _write_rows(f: h5py.File, records: list[dict], rows: list):
        """Append records whose row is None; overwrite the others in place. Ragged values are
        always appended (the replaced values become unreferenced space)."""
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
        return str(self._column("status")[w])

    def get(self, key: str) -> dict:
        """The full record (with ragged arrays reshaped), or KeyError."""
        return next(self.get_many([key]))

    def get_many(self, keys: Iterable[str], fields: Iterable[str] | None = None,
                 chunk: int = 4096) -> Iterator[dict]:
        """Full records for many keys, in the order given (KeyError for an unknown key).

        The HDF5 file is opened once per ``chunk`` keys and each array field is read as one
        contiguous span of rows where the rows are dense enough, so reading a whole store costs
        a few reads per field rather than one file open per record. ``fields`` limits which
        ragged arrays are read from the file (e.g. skip the modes when only Hessians are
        needed); the others come back as None. Records still in the log come back whole.
        """
        ragged = list(RAGGED)
        if fields is not None:
            fields = set(fields)
            unknown = fields - set(SCALARS) - set(FIXED) - set(RAGGED)
            if unknown:
                raise StoreError(f"unknown field(s) {sorted(unknown)}")
            ragged = [f for f in RAGGED if f in fields]
        keys = list(keys)
        for lo in range(0, len(keys), chunk):
            part = keys[lo:lo + chunk]
            where = [self._where[k] for k in part]
            rows = sorted({w for w in where if w != "wal"})
            block = self._read_rows(rows, ragged) if rows else {}
            for k, w in zip(part, where):
                yield dict(self._pending[k]) if w == "wal" else block[w]

    def _read_rows(self, rows: list[int], ragged: list[str]) -> dict[int, dict]:
        """Records of the HDF5 rows ``rows`` (sorted, unique), keyed by row."""
        out = {}
        for w in rows:
            rec = empty_record()
            for col in SCALARS:  # whole columns, read once and cached: O(1) per record after
                v = self._column(col)[w]
                rec[col] = v if isinstance(v, str) else v.item()
            out[w] = rec
        index = self._ragged_index()
        modes = index["frequencies_cm1"][1]
        with self._shared(), h5py.File(self.path, "r") as f:
            for col in FIXED:
                vals = _take(f["records"][col], np.asarray(rows), np.ones(len(rows), np.int64))
                for w, v in zip(rows, vals):
                    out[w][col] = v[0]
            for fld in ragged:
                start, length = index[fld][0][rows], index[fld][1][rows]
                pieces = _take(f["ragged"][fld]["data"], start, length)
                rule = RAGGED[fld][2]
                for w, p in zip(rows, pieces):
                    if len(p):
                        out[w][fld] = p.reshape(_shape(rule, out[w]["n_atoms"], int(modes[w])))
        return out

    def _ragged_index(self) -> dict:
        """(start, length) arrays of every ragged field (cached until the next checkpoint)."""
        if "_ragged" not in self._colcache:
            with self._shared(), h5py.File(self.path, "r") as f:
                self._colcache["_ragged"] = {fld: (f["ragged"][fld]["start"][...],
                                                   f["ragged"][fld]["length"][...])
                                             for fld in RAGGED}
        return self._colcache["_ragged"]

    def records(self) -> Iterator[dict]:
        """Every record, in :meth:`keys` order (bulk reads: see :meth:`get_many`)."""
        return self.get_many(self.keys())

    def table(self, columns: Iterable[str] = ("key",) + LABELS) -> dict[str, np.ndarray]:
        """Scalar/fixed columns for every record, in :meth:`keys` order (columnar reads)."""
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
            with self._shared(), h5py.File(self.path, "r") as f:
                for c in need_file:
                    fixed[c] = f["records"][c][...]
        for c in columns:
            if c in SCALARS:
                base = self._column(c)[rows_h5]
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
        return object if dt is STR or dt in (KEY, STATUS) else dt

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
