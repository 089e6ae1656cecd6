"""Reading a store: its index and log loaded together, and the read API (:class:`StoreView`).

:class:`StoreView` holds what a store holds — the HDF5 file's index and checksums, the records
still in the log — and answers ``keys``, ``status``, ``get``, ``get_many``, ``records``,
``table`` and ``summary``, checking every value read against its checksum. It reads the HDF5
file only under the readers' lock (:mod:`hessflow.store.lock`), as its journal recovers it
(:mod:`hessflow.store.reader`), and reloads when a checkpoint came meanwhile; it never writes.
:class:`~hessflow.store.store.Store` adds opening and writing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import StoreError
from ..qm.record import LABELS
from .fileio import cause
from .lock import StoreLocks
from .log import LogScan, read_log
from .reader import (bad_rows, describe_damage, open_h5, read_column, read_index,
                     read_ragged_index, read_rows)
from .schema import FIXED, RAGGED, SCALARS, SCHEMA_VERSION, column_dtype


class _Stale(Exception):
    """A checkpoint came since the reader loaded its index (internal: reload and retry)."""



class StoreView:
    """The loaded state and the read API of the store file ``path`` (see the module
    docstring); ``mode`` is the opening mode of the :class:`~hessflow.store.store.Store` built
    on it."""

    def __init__(self, path, mode: str):
        self.path = Path(path)
        self.wal_path = self.path.with_name(self.path.name + ".wal")
        self._locks = StoreLocks(self.path)
        self.lock_path = self._locks.lock_path
        self.readers_path = self._locks.readers_path
        self.journal_path = self._locks.journal_path
        self.mode = mode
        self._opened: list[str] = []   # recoveries and upgrades done when opening
        self._found: list[str] = []    # damage found in the index and the log
        self._lock = threading.RLock()
        self._generation = None

    def __len__(self):
        return len(self._where)

    def __contains__(self, key):
        return key in self._where

    @property
    def problems(self) -> list[str]:
        """One line per recovery, upgrade or damage found so far (in the index, the log; values
        are checked as they are read, and all at once by :func:`hessflow.store.verify.verify`)."""
        return self._opened + self._found

    # -- loading ------------------------------------------------------------------------------
    def _file_store_id(self):
        if not self.path.exists():
            return None
        return self._read(lambda f: f.attrs.get("store_id"))

    def _read(self, fn):
        """``fn(f)`` on the HDF5 file open for reading, never half-merged: under the readers'
        lock (or, without one, retried until no writer checkpointed meanwhile). :class:`_Stale`
        if a checkpoint came since the index was loaded (:meth:`_fresh` reloads and retries)."""
        for _ in range(200):
            with self._locks.shared() as guard:
                with open_h5(self.path, self.journal_path) as f:
                    if self._generation is not None and \
                            int(f.attrs.get("generation", 0)) != self._generation:
                        raise _Stale
                    try:
                        out = fn(f)
                    except (StoreError, _Stale):
                        raise
                    except Exception as exc:  # h5py on a damaged file: KeyError, OSError...
                        raise StoreError(f"{self.path}: cannot read the HDF5 file (damaged?): "
                                         f"{cause(exc)}; `hessflow verify {self.path}` checks "
                                         f"it") from None
            if guard.ok():
                return out
            time.sleep(0.05)
        raise StoreError(f"{self.path}: the file kept changing while being read")

    def _fresh(self, op):
        """``op()``, reloading the index and retrying when a checkpoint came meanwhile."""
        for _ in range(50):
            try:
                return op()
            except _Stale:
                self._load()
        raise StoreError(f"{self.path}: the file kept changing while being read")

    def _load(self, scan: LogScan | None = None):
        """Read the index (keys, checksums) of the HDF5 file and the log, together (under the
        readers' lock). Other columns are read on demand (:meth:`_column`)."""
        self._generation = None
        if self.path.exists():
            self._read(lambda f: self._load_from(f, scan if scan is not None
                                                 else read_log(self.wal_path)))
        else:
            self._load_from(None, scan if scan is not None else read_log(self.wal_path))

    def _load_from(self, f, scan: LogScan):
        idx = read_index(f, self.path) if f is not None else None
        self._version = idx.version if idx else SCHEMA_VERSION
        self._store_id = idx.store_id if idx else None
        self._crcs = idx.crcs if idx else None
        self._h5_keys = idx.keys if idx else []
        bad = set(idx.bad_keys) if idx else set()
        self._colcache: dict[str, tuple] = {}
        self._ragged = None
        self._h5_rows = {k: i for i, k in enumerate(self._h5_keys) if i not in bad}
        self._where: dict[str, object] = dict(self._h5_rows)
        self._pending: dict[str, dict] = {}
        self._check_identity(scan)
        found = [f"{self.path}: row {r}: the key fails its checksum (damaged on disk): the record "
                 f"is left out; `hessflow verify` lists all damage" for r in sorted(bad)]
        found += [f"{self.wal_path}: {d.describe()}" for d in scan.damage]
        if scan.id_damaged:
            found.append(f"{self.wal_path}: the log's identity frame is damaged: replayed "
                         f"without checking that it belongs to {self.path.name}")
        self._found = found
        self._scan = scan
        for rec in scan.records:
            self._remember(rec)
        self._generation = idx.generation if idx else 0

    def _check_identity(self, scan: LogScan):
        """:class:`StoreError` if the log names another store than the file (or the file is
        gone) and holds something to lose."""
        if scan.store_id is None or scan.store_id == self._store_id:
            return
        if not (scan.records or scan.damage):
            scan.records = []  # an empty log of another store: nothing to lose, ignored
            return
        n = len(scan.records)
        if not self.path.exists():
            raise StoreError(f"{self.path}: missing, but its log {self.wal_path.name} is there "
                             f"({n} record(s) of store {scan.store_id[:8]}): the .h5 was moved or "
                             f"deleted; put it back, or move the .wal away to start a new store")
        raise StoreError(f"{self.wal_path}: belongs to another store (id {scan.store_id[:8]}, "
                         f"not {self.path.name}'s {str(self._store_id)[:8]}): the store was "
                         f"moved or recreated; move the .wal next to its own .h5, or delete it "
                         f"to drop its {n} record(s)")

    def _column(self, col: str):
        """One whole scalar column of the HDF5 file and the set of its rows that fail their
        checksums (cached until the next checkpoint; so is a column that cannot be read)."""
        if col not in self._colcache:
            if not self._h5_keys:
                v = np.zeros(0, column_dtype(col))
            else:
                try:
                    v = self._read(lambda f: read_column(f, col))
                except StoreError as exc:
                    self._colcache[col] = exc  # damaged: not read again for every record
                    raise
            self._colcache[col] = (v, set(bad_rows(col, v, self._crcs).tolist()))
        got = self._colcache[col]
        if isinstance(got, StoreError):
            raise StoreError(str(got))
        return got

    def _damaged(self, row: int, field: str) -> StoreError:
        names = self._colcache.get("name")
        names = names if isinstance(names, tuple) else (None, ())
        return StoreError(describe_damage(self.path, row, field, self._h5_keys,
                                          None if row in names[1] else names[0]))

    def _remember(self, rec: dict):
        key = rec["key"]
        self._where[key] = "wal"
        self._pending.pop(key, None)  # re-insert: a replaced record moves to the end of the log
        self._pending[key] = rec


    # -- reading -----------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """All keys in storage order: checkpointed rows first, then the log's records."""
        with self._lock:
            return [k for k in self._h5_rows if k not in self._pending] + list(self._pending)

    def status(self, key: str) -> str | None:
        """The status (``done``, ``failed``, ``pending``) of the record ``key``; None if absent."""
        def op():
            w = self._where.get(key)
            if w is None:
                return None
            if w == "wal":
                return self._pending[key]["status"]
            values, bad = self._column("status")
            if w in bad:
                raise self._damaged(w, "status")
            return str(values[w])
        with self._lock:
            return self._fresh(op)

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
        Every value read is checked against its checksum (:class:`StoreError` if damaged).
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
            def op():
                where = [self._where[k] for k in part]
                rows = sorted({w for w in where if w != "wal"})
                block = self._read_file_rows(rows, ragged, check=True) if rows else {}
                return [dict(self._pending[k]) if w == "wal" else block[w]
                        for k, w in zip(part, where)]
            with self._lock:
                got = self._fresh(op)
            yield from got

    def _read_file_rows(self, rows: list[int], ragged: list[str], check: bool = False):
        """Records of the HDF5 rows ``rows`` (sorted, unique), keyed by row; with ``check``,
        :class:`StoreError` for the first damaged value."""
        if self._ragged is None:
            self._ragged = self._read(read_ragged_index)
        for col in SCALARS:
            self._column(col)
        out, damage = self._read(lambda f: read_rows(f, rows, ragged, self._column, self._ragged,
                                                     self._crcs))
        if check and damage:
            raise self._damaged(*damage[0])
        return out

    def records(self) -> Iterator[dict]:
        """Every record, in :meth:`keys` order (bulk reads: see :meth:`get_many`)."""
        return self.get_many(self.keys())

    def table(self, columns: Iterable[str] = ("key",) + LABELS) -> dict[str, np.ndarray]:
        """Scalar/fixed columns for every record, in :meth:`keys` order (columnar reads):
        ``{column: array}``, strings as object arrays, fixed tensors as ``(n_records, *shape)``.
        The default columns are the key and the labels (:data:`hessflow.qm.record.LABELS`).
        A damaged value raises :class:`StoreError` naming the record and the column."""
        columns = list(columns)
        for c in columns:
            if c not in SCALARS and c not in FIXED:
                raise StoreError(f"unknown column {c!r}")
        with self._lock:
            return self._fresh(lambda: self._table(columns))

    def _table(self, columns: list[str]) -> dict[str, np.ndarray]:
        if not self._pending and len(self._h5_rows) == len(self._h5_keys):
            rows_h5 = np.arange(len(self._h5_keys), dtype=np.int64)
        else:
            rows_h5 = np.array([i for k, i in self._h5_rows.items() if k not in self._pending],
                               dtype=np.int64)
        wal_keys = list(self._pending)
        need_file = [c for c in columns if c in FIXED]
        fixed = {}
        if need_file and len(rows_h5):
            fixed = self._read(lambda f: {
                c: f["records"][c][...] if c in f["records"] else   # added after the file
                np.full((len(self._h5_keys), *FIXED[c][0]), np.nan) for c in need_file})
        out = {}
        for c in columns:
            if c in SCALARS:
                values, bad = self._column(c)
                hit = bad.intersection(rows_h5.tolist()) if bad else ()
                base = values[rows_h5]
            else:
                shape = FIXED[c][0]
                base = fixed[c][rows_h5] if len(rows_h5) else np.zeros((0, *shape))
                hit = rows_h5[bad_rows(c, base, self._crcs, rows_h5)].tolist()
            if len(hit):
                raise self._damaged(min(hit), c)
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


