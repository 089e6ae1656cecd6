"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

The file's layout is in :mod:`hessflow.store.columns`, its columns in
:mod:`hessflow.store.schema`; both are documented in ``docs/store.md``.

Crash safety (the design of SQLite: a write-ahead log for commits, a rollback journal for
checkpoints):

- ``put`` appends the record to ``FILE.h5.wal`` (:mod:`hessflow.store.log`: framed entries,
  magic, length, CRC32, payload) and fsyncs before returning; returning *is* the report that the
  record is stored.
- Opening the store replays the log on top of the HDF5 file. A torn last entry (a kill in the
  middle of a write) fails its CRC and is ignored; records are keyed, so an entry that a
  checkpoint already merged is not duplicated, and a later entry with the same key replaces it.
- A checkpoint merges the log into ``FILE.h5`` *in place* (new rows appended, replaced rows
  overwritten, replaced ragged data appended and re-pointed), through a file object that first
  copies the old bytes of every region it overwrites into ``FILE.h5.journal`` and fsyncs it
  (:mod:`hessflow.store.journal`). Deleting the journal after the HDF5 file is fsync'ed is the
  commit point; a journal found at open means a checkpoint was interrupted, and its pre-images
  roll the file back to the state before that checkpoint (whose records are still in the log).
  A checkpoint costs what it adds, not the size of the file.
- The log is checkpointed when it exceeds 64 MiB and on ``close()``.

One writer (:mod:`hessflow.store.lock`): a writer holds an exclusive ``flock`` on
``FILE.h5.lock`` (released by the kernel if the process dies). Readers take no writer lock; they
hold a shared ``flock`` on ``FILE.h5.readers`` while they read the HDF5 file, and a checkpoint
takes it exclusively, so a reader never sees a half-merged file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from ..errors import StoreError
from ..qm.record import LABELS, empty_record, field_shape
from .columns import init_file, take, write_rows
from .journal import JournaledFile, fsync_dir, rollback
from .lock import StoreLocks
from .log import encode, read_log
from .schema import (FIXED, FORMAT, KEY, RAGGED, SCALARS, SCHEMA_VERSION, STATUS, STR, column_dtype,
                     normalise)


class Store:
    """Open a store for reading (``mode="r"``) or as its single writer (``mode="a"``).

    ``path`` is the HDF5 file (its log, journal and lock files sit next to it: ``path.wal``,
    ``path.journal``, ``path.lock``, ``path.readers``). A writer checkpoints the log into the file
    once it exceeds ``checkpoint_bytes`` bytes (and on close). ``durable=False`` skips the fsync
    of each ``put``: faster, but records put since the last fsync can be lost in a crash.

    >>> with Store("data.h5", "a") as st:
    ...     st.put(record)        # durable when it returns
    ...     st.table(["key", "zpve_hartree"])
    """

    def __init__(self, path, mode: str = "r", checkpoint_bytes: int = 64 << 20,
                 durable: bool = True):
        if mode not in ("r", "a"):
            raise StoreError(f"store mode {mode!r} is not 'r' or 'a'")
        self.path = Path(path)
        self.wal_path = self.path.with_name(self.path.name + ".wal")
        self._locks = StoreLocks(self.path)
        self.lock_path = self._locks.lock_path
        self.readers_path = self._locks.readers_path
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.mode = mode
        self.durable = durable
        self.checkpoint_bytes = checkpoint_bytes
        self._wal_fd = None
        self._closed = False
        if mode == "r" and not self.path.exists() and not self.wal_path.exists():
            raise StoreError(f"{self.path}: no such store")
        if mode == "a":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._locks.acquire_writer()
        try:
            if mode == "a":
                with self._locks.exclusive():
                    rollback(self.path, self.journal_path)
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
    def _release_lock(self):
        """Release the writer lock (if held): done on close, and if opening fails."""
        self._locks.release_writer()

    def _recover_as_reader(self):
        """A writer died inside a checkpoint: roll it back, if no other writer is there to."""
        for _ in range(100):
            try:
                self._locks.acquire_writer()
            except StoreError:
                time.sleep(0.05)  # a live writer rolls back when it opens; wait for it
                if not self.journal_path.exists():
                    return
                continue
            try:
                with self._locks.exclusive():
                    rollback(self.path, self.journal_path)
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
                with self._locks.shared(), h5py.File(self.path, "r") as f:
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
        wal, valid = read_log(self.wal_path)
        self._wal_valid = valid
        for rec in wal:
            self._remember(rec)

    def _column(self, col: str) -> np.ndarray:
        """One whole scalar column of the HDF5 file (cached until the next checkpoint)."""
        if col not in self._colcache:
            if not self._h5_keys:
                self._colcache[col] = np.zeros(0, column_dtype(col))
            else:
                with self._locks.shared(), h5py.File(self.path, "r") as f:
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
        recs = [normalise(r) for r in records]
        blob = b"".join(encode(r) for r in recs)
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
        with self._locks.exclusive():
            if not self.path.exists():
                tmp = self.path.with_name(self.path.name + ".tmp")
                with h5py.File(tmp, "w") as f:
                    init_file(f)
                    write_rows(f, list(self._pending.values()), [None] * len(self._pending))
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
                fsync_dir(self.path.parent)
            else:
                jf = JournaledFile(self.path, self.journal_path)
                try:
                    with h5py.File(jf, "r+") as f:
                        recs = list(self._pending.values())
                        write_rows(f, recs, [self._h5_row.get(r["key"]) for r in recs])
                except BaseException:
                    jf.abandon()
                    raise
                jf.commit()
            os.ftruncate(self._wal_fd, 0)
            os.lseek(self._wal_fd, 0, os.SEEK_SET)
            os.fsync(self._wal_fd)
            self._wal_valid = 0
        self._load()

    def close(self):
        """Checkpoint the log (a writer), remove an empty log, release the writer lock."""
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
        """The status (``done``, ``failed``, ``pending``) of the record ``key``; None if absent."""
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
        with self._locks.shared(), h5py.File(self.path, "r") as f:
            for col in FIXED:
                vals = take(f["records"][col], np.asarray(rows), np.ones(len(rows), np.int64))
                for w, v in zip(rows, vals):
                    out[w][col] = v[0]
            for fld in ragged:
                start, length = index[fld][0][rows], index[fld][1][rows]
                pieces = take(f["ragged"][fld]["data"], start, length)
                rule = RAGGED[fld][2]
                for w, p in zip(rows, pieces):
                    if len(p):
                        shape = field_shape(rule, out[w]["n_atoms"], int(modes[w]))
                        out[w][fld] = p.reshape(shape)
        return out

    def _ragged_index(self) -> dict:
        """(start, length) arrays of every ragged field (cached until the next checkpoint)."""
        if "_ragged" not in self._colcache:
            with self._locks.shared(), h5py.File(self.path, "r") as f:
                self._colcache["_ragged"] = {fld: (f["ragged"][fld]["start"][...],
                                                   f["ragged"][fld]["length"][...])
                                             for fld in RAGGED}
        return self._colcache["_ragged"]

    def records(self) -> Iterator[dict]:
        """Every record, in :meth:`keys` order (bulk reads: see :meth:`get_many`)."""
        return self.get_many(self.keys())

    def table(self, columns: Iterable[str] = ("key",) + LABELS) -> dict[str, np.ndarray]:
        """Scalar/fixed columns for every record, in :meth:`keys` order (columnar reads):
        ``{column: array}``, strings as object arrays, fixed tensors as ``(n_records, *shape)``.
        The default columns are the key and the labels (:data:`hessflow.qm.record.LABELS`)."""
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
            with self._locks.shared(), h5py.File(self.path, "r") as f:
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

    def summary(self) -> dict:
        """Counts of records: ``{"records": n, "by_status", "engines", "methods": {name: n}}``
        (methods as ``method/basis``, or the method alone when there is no basis)."""
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
