"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

The file's layout is in :mod:`hessflow.store.columns`, its columns in
:mod:`hessflow.store.schema`; both are documented in ``docs/store.md``.

Crash safety (the design of SQLite: a write-ahead log for commits, a rollback journal for
checkpoints):

- Creating a store writes an empty, valid ``FILE.h5`` (through a temporary file, renamed), with a
  random ``store_id``; its log ``FILE.h5.wal`` starts with a frame naming that id, so a log found
  beside another ``.h5`` (a moved or recreated store) is refused instead of merged.
- ``put`` appends the record to the log (:mod:`hessflow.store.log`: framed entries, magic,
  length, CRC32, payload), every byte checked, and fsyncs before returning; returning *is* the
  report that the record is stored. A short write, a full disk or quota (ENOSPC, EDQUOT) or an
  I/O error cuts the partial entry off again and raises one :class:`StoreError` naming the store
  and the cause; the records stored before are untouched.
- Opening the store replays the log on top of the HDF5 file. A torn last entry (a kill in the
  middle of a write) fails its CRC and is ignored; a damaged entry in the middle is skipped by
  resynchronising on the next intact frame, and reported in :attr:`Store.problems`; records are
  keyed, so an entry that a checkpoint already merged is not duplicated.
- A checkpoint merges the log into ``FILE.h5`` *in place* through a rollback journal
  (:mod:`hessflow.store.journal`); a journal found at open means a checkpoint was interrupted,
  and the file is recovered from it (readers do so in memory, writing nothing).
- A writer checkpoints on a budget — the log over ``checkpoint_bytes``, ``checkpoint_records``
  records waiting, or the oldest waiting record ``checkpoint_seconds`` old (a background timer
  sees to that even when no more records come) — on :meth:`Store.checkpoint` and on ``close()``,
  so ``FILE.h5`` is a current HDF5 file for plain h5py, at most about a minute behind.
- Every value in ``FILE.h5`` has a CRC32 (:mod:`hessflow.store.checksum`); reads check them and
  raise :class:`StoreError` naming the record and the field instead of returning damage.

One writer (:mod:`hessflow.store.lock`): ``flock`` on ``FILE.h5.lock`` and on the log, both
checked before every commit; readers need no write access.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
import time
import uuid
import warnings
import weakref
from pathlib import Path
from typing import Iterable, Iterator

import h5py
import numpy as np

from ..errors import StoreError
from ..qm.record import LABELS
from ..settings import from_mapping, meta
from .checksum import records_crcs
from .columns import add_checksums, init_file, write_rows
from .fileio import cause, fsync_dir, write_all
from .journal import JournaledFile, rollback
from .lock import StoreLocks, open_locked, same_file
from .log import LogScan, encode, identity_frame, read_log
from .reader import (bad_rows, describe_damage, open_h5, read_column, read_index,
                     read_ragged_index, read_rows)
from .schema import FIXED, RAGGED, SCALARS, SCHEMA_VERSION, column_dtype, normalise


@dataclasses.dataclass
class StoreSettings:
    """When a writer checkpoints its log into the HDF5 file, and whether each put is fsync'ed."""
    checkpoint_bytes: int = dataclasses.field(
        default=64 << 20, metadata=meta("checkpoint once the log holds this many bytes",
                                        minimum=0, unit="bytes"))
    checkpoint_records: int = dataclasses.field(
        default=1000, metadata=meta("checkpoint once this many records wait in the log "
                                    "(0: no record budget)", minimum=0))
    checkpoint_seconds: float = dataclasses.field(
        default=60.0, metadata=meta("checkpoint once the oldest record waiting in the log is this "
                                    "old, even if no more come (0: no time budget)", minimum=0.0,
                                    unit="s"))
    durable: bool = dataclasses.field(
        default=True, metadata=meta("fsync the log before put returns (False: faster, but a "
                                    "crash can lose the records put since the last fsync)"))


class _Stale(Exception):
    """A checkpoint came since the reader loaded its index (internal: reload and retry)."""


class Store:
    """Open a store for reading (``mode="r"``) or as its single writer (``mode="a"``).

    ``path`` is the HDF5 file (its log, journal and lock files sit next to it: ``path.wal``,
    ``path.journal``, ``path.lock``, ``path.readers``). A writer creates the file if it does not
    exist. The checkpoint budget and ``durable`` are :class:`StoreSettings` (keyword arguments
    here). Readers write nothing and need only read access.

    >>> with Store("data.h5", "a") as st:
    ...     st.put(record)        # durable when it returns
    ...     st.table(["key", "zpve_hartree"])
    """

    def __init__(self, path, mode: str = "r", **settings):
        if mode not in ("r", "a"):
            raise StoreError(f"store mode {mode!r} is not 'r' or 'a'")
        self.settings = from_mapping(StoreSettings, settings, "store")
        self.path = Path(path)
        self.wal_path = self.path.with_name(self.path.name + ".wal")
        self._locks = StoreLocks(self.path)
        self.lock_path = self._locks.lock_path
        self.readers_path = self._locks.readers_path
        self.journal_path = self._locks.journal_path
        self.mode = mode
        self._opened: list[str] = []   # recoveries and upgrades done when opening
        self._found: list[str] = []    # damage found in the index and the log
        self.checkpoint_error: str | None = None  # the last failed automatic checkpoint
        self._lock = threading.RLock()
        self._wal_fd = None
        self._wal_end = 0
        self._closed = False
        self._broken: str | None = None
        self._timer = None
        self._last_checkpoint = time.monotonic()
        self._oldest_pending: float | None = None
        self._retry_at = 0.0
        self._generation = None
        if mode == "r" and not self.path.exists() and not self.wal_path.exists():
            raise StoreError(f"{self.path}: no such store")
        try:
            if mode == "a":
                self._open_writer()
            else:
                self._open_reader()
        except BaseException:
            self._release()
            raise

    @property
    def durable(self) -> bool:
        return self.settings.durable

    @property
    def checkpoint_bytes(self) -> int:
        return self.settings.checkpoint_bytes

    # context manager
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return len(self._where)

    def __contains__(self, key):
        return key in self._where

    # -- opening ------------------------------------------------------------------------------
    def _open_writer(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {cause(exc)}") from None
        self._locks.acquire_writer()
        try:
            self._wal_fd = open_locked(self.wal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        except BlockingIOError:
            raise StoreError(f"{self.path}: its log {self.wal_path.name} is locked by another "
                             f"writer (its lock file was removed or replaced?)") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open its log {self.wal_path.name}: "
                             f"{cause(exc)}") from None
        try:
            tmp = self.path.with_name(self.path.name + ".tmp")
            if tmp.exists():
                tmp.unlink()  # a creation killed half-way
            with self._locks.exclusive():
                how = rollback(self.path, self.journal_path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot recover an interrupted checkpoint: "
                             f"{cause(exc)}") from None
        if how:
            self._opened.append(f"{self.path}: interrupted checkpoint recovered ({how})")
        scan = read_log(self.wal_path)
        if scan.store_id is not None and not scan.records and not scan.damage and (
                not self.path.exists() or scan.store_id != self._file_store_id()):
            scan = LogScan(records=[])  # an empty log of another store: nothing to lose
        if not self.path.exists() and scan.store_id is None:
            self._create()
        self._load(scan)
        for line in self._found:  # about to be merged: say so once, loudly
            warnings.warn(line, RuntimeWarning, stacklevel=3)
        if self._version == 1:
            self._upgrade()
        size = os.fstat(self._wal_fd).st_size
        if size != scan.end:
            self._truncate_log(scan.end)  # a torn tail: a write that never returned
        self._wal_end = scan.end
        if self._wal_end == 0:
            self._append(identity_frame(self._store_id))
        if self.settings.checkpoint_seconds > 0:
            self._timer = _Timer(self, self.settings.checkpoint_seconds)

    def _open_reader(self):
        if self.journal_path.exists():
            self._recover_if_alone()
        try:
            scan = read_log(self.wal_path)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read its log {self.wal_path.name}: "
                             f"{cause(exc)}") from None
        self._load(scan)

    def _recover_if_alone(self):
        """A writer died inside a checkpoint: roll the file back on disk if no writer is alive
        and this user may write it (else every read sees the recovered file in memory)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
                with self._locks.exclusive():
                    how = rollback(self.path, self.journal_path)
                if how:
                    self._opened.append(f"{self.path}: interrupted checkpoint recovered ({how})")
        except (OSError, StoreError):
            pass  # a writer is alive, or no write access: recovered in memory on every read
        finally:
            os.close(fd)

    def _create(self):
        """Write a new, empty store file (via ``FILE.h5.tmp``, renamed) with a new identity."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        jf = None
        try:
            jf = JournaledFile(tmp, self.journal_path, create=True)
            with h5py.File(jf, "w") as f:
                init_file(f, uuid.uuid4().hex)
            jf.commit()
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except BaseException as exc:
            err = jf.error if jf is not None and jf.error is not None else exc
            if jf is not None:
                jf.abandon()
            tmp.unlink(missing_ok=True)
            if isinstance(exc, Exception):
                raise StoreError(f"{self.path}: cannot create the store: {cause(err)}") from None
            raise

    def _upgrade(self):
        """Bring a schema version 1 file to version 2: an identity and the checksums of its rows
        (one journaled update, done once by its first writer)."""
        rows = [self._h5_rows[k] for k in self._h5_keys if k in self._h5_rows]
        recs = list(self._read_file_rows(sorted(rows), list(RAGGED)).values())
        crcs = records_crcs([normalise(r) for r in recs])

        def change(f):
            add_checksums(f, len(self._h5_keys))
            if len(recs):
                f["records"]["checksum"][sorted(rows)] = crcs
            f.attrs["store_id"] = uuid.uuid4().hex
            f.attrs["schema_version"] = SCHEMA_VERSION
        self._update_file(change)
        self._opened.append(f"{self.path}: upgraded from schema version 1 to {SCHEMA_VERSION}")
        self._load(read_log(self.wal_path))

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
                             f"({n} records of store {scan.store_id[:8]}): the .h5 was moved or "
                             f"deleted; put it back, or move the .wal away to start a new store")
        raise StoreError(f"{self.wal_path}: belongs to another store (id {scan.store_id[:8]}, "
                         f"not {self.path.name}'s {str(self._store_id)[:8]}): the store was "
                         f"moved or recreated; move the .wal next to its own .h5, or delete it "
                         f"to drop its {n} records")

    def _column(self, col: str):
        """One whole scalar column of the HDF5 file and the set of its rows that fail their
        checksums (cached until the next checkpoint)."""
        if col not in self._colcache:
            if not self._h5_keys:
                v = np.zeros(0, column_dtype(col))
            else:
                v = self._read(lambda f: read_column(f, col))
            self._colcache[col] = (v, set(bad_rows(col, v, self._crcs).tolist()))
        return self._colcache[col]

    def _damaged(self, row: int, field: str) -> StoreError:
        names = self._colcache.get("name", (None, ()))
        return StoreError(describe_damage(self.path, row, field, self._h5_keys,
                                          None if row in names[1] else names[0]))

    def _remember(self, rec: dict):
        key = rec["key"]
        self._where[key] = "wal"
        self._pending.pop(key, None)  # re-insert: a replaced record moves to the end of the log
        self._pending[key] = rec

    # -- writing -----------------------------------------------------------------------------
    def _check_writer(self, checkpoint: bool = False):
        """Before a commit: still the one writer of this store (lock file and log unswapped, the
        log as this writer left it). After a log entry could not be cut off again, puts are
        refused; a checkpoint (of the records known durable) is still allowed."""
        if self._broken and not checkpoint:
            raise StoreError(f"{self.path}: not writable since an earlier failure "
                             f"({self._broken}); reopen the store")
        self._locks.check_writer()
        if not same_file(self.wal_path, self._wal_fd):
            raise StoreError(f"{self.path}: its log {self.wal_path.name} was removed or replaced "
                             f"while this writer held it: stopping; reopen the store")
        if not self._broken and os.fstat(self._wal_fd).st_size != self._wal_end:
            raise StoreError(f"{self.path}: its log {self.wal_path.name} changed behind this "
                             f"writer's back (another writer?): stopping; reopen the store")

    def _append(self, blob: bytes, what: str = "the log's identity"):
        """Append ``blob`` to the log, every byte, fsync'ed (if durable); on failure cut it off
        again and raise a :class:`StoreError` naming the cause."""
        try:
            write_all(self._wal_fd, blob)
            if self.durable:
                os.fsync(self._wal_fd)
        except OSError as exc:
            self._truncate_log(self._wal_end)
            raise StoreError(f"{self.path}: cannot write its log {self.wal_path.name}: "
                             f"{cause(exc)}; {what} not stored (records stored before are "
                             f"safe): free space and rerun") from None
        self._wal_end += len(blob)

    def _truncate_log(self, size: int):
        try:
            os.ftruncate(self._wal_fd, size)
            os.fsync(self._wal_fd)
        except OSError as exc:
            self._broken = f"cannot cut a partial log entry off: {cause(exc)}"

    def put(self, record: dict) -> str:
        """Store (or replace) one record; durable on return. Returns its key."""
        return self.put_many([record])[0]

    def put_many(self, records: Iterable[dict]) -> list[str]:
        """Store several records with a single fsync; all are durable on return, or none is
        reported stored (:class:`StoreError` naming the cause: full disk, quota, I/O error)."""
        with self._lock:
            if self.mode != "a" or self._closed:
                raise StoreError(f"{self.path}: not open for writing")
            recs = [normalise(r) for r in records]
            if not recs:
                return []
            self._check_writer()
            blob = b"".join(encode(r) for r in recs)
            if self._wal_end == 0:
                blob = identity_frame(self._store_id) + blob
            self._append(blob, f"{len(recs)} record(s) of this put")
            for r in recs:
                self._remember(r)
            if self._oldest_pending is None:
                self._oldest_pending = time.monotonic()
            if self._due():
                self._auto_checkpoint()
            return [r["key"] for r in recs]

    def _due(self) -> bool:
        s, now = self.settings, time.monotonic()
        if not self._pending or now < self._retry_at:
            return False
        return (self._wal_end > s.checkpoint_bytes
                or (s.checkpoint_records and len(self._pending) >= s.checkpoint_records)
                or (s.checkpoint_seconds and self._oldest_pending is not None
                    and now - self._oldest_pending >= s.checkpoint_seconds))

    def _auto_checkpoint(self):
        """A checkpoint on the budget: its failure does not unstore the records (they are in the
        log); it is kept in :attr:`checkpoint_error`, warned about and retried later."""
        try:
            self.checkpoint()
        except StoreError as exc:
            self.checkpoint_error = str(exc)
            self._retry_at = time.monotonic() + max(self.settings.checkpoint_seconds, 5.0)
            warnings.warn(str(exc), RuntimeWarning, stacklevel=3)

    def _update_file(self, change):
        """Apply ``change(f)`` to the HDF5 file in place, journaled, under the exclusive readers'
        lock, counting it in the ``generation`` attribute. :class:`StoreError` (nothing changed)
        on failure."""
        with self._locks.exclusive():
            jf = None
            try:
                jf = JournaledFile(self.path, self.journal_path)
                with h5py.File(jf, "r+", locking=False) as f:
                    change(f)
                    f.attrs["generation"] = int(f.attrs.get("generation", 0)) + 1
                jf.commit()
            except BaseException as exc:
                err = jf.error if jf is not None and jf.error is not None else exc
                if jf is not None:
                    jf.abandon()
                if isinstance(exc, Exception):
                    raise StoreError(f"{self.path}: checkpoint failed: {cause(err)}; the records "
                                     f"are safe in its log {self.wal_path.name}: free space and "
                                     f"reopen") from None
                raise

    def checkpoint(self):
        """Merge the log into the HDF5 file (journaled, in place), then empty the log."""
        with self._lock:
            if self.mode != "a" or self._closed:
                raise StoreError(f"{self.path}: not open for writing")
            if not self._pending:
                self._oldest_pending = None
                return
            self._check_writer(checkpoint=True)
            recs = list(self._pending.values())
            self._update_file(lambda f: write_rows(f, recs, [self._h5_rows.get(r["key"])
                                                             for r in recs]))
            # the merged entries may stay in the log meanwhile: replayed, they replace
            # themselves (records are keyed)
            self._broken = None
            self._truncate_log(0)  # (broken again if even that fails)
            self._wal_end = 0
            if not self._broken:
                try:
                    self._append(identity_frame(self._store_id))
                except StoreError:
                    pass  # the next put writes the identity first
            self._load(LogScan(records=[], store_id=self._store_id))
            self._oldest_pending = None
            self._last_checkpoint = time.monotonic()
            self.checkpoint_error = None
            self._retry_at = 0.0

    def close(self):
        """Checkpoint the log (a writer), remove a log left with no record, release the writer
        lock. A failed checkpoint raises (the records are safe in the log) after the release."""
        if self._closed:
            return
        if self._timer is not None:
            self._timer.stop()
        with self._lock:
            try:
                if self.mode == "a":
                    self.checkpoint()
                    if self._wal_fd is not None and not self._pending and \
                            self._wal_end <= len(identity_frame(self._store_id)):
                        self.wal_path.unlink(missing_ok=True)
            finally:
                self._release()
                self._closed = True

    def _release(self):
        """Close the log and release the writer lock (if held): on close, and if opening fails."""
        if self._timer is not None:
            self._timer.stop()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        self._locks.release_writer()

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
            fixed = self._read(lambda f: {c: f["records"][c][...] for c in need_file})
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


class _Timer:
    """The writer's time budget: a daemon thread that checkpoints once the oldest record waiting
    in the log is ``seconds`` old, even when no more records come."""

    def __init__(self, store: Store, seconds: float):
        self._stop = threading.Event()
        ref = weakref.ref(store)
        tick = max(0.05, min(seconds / 4, 5.0))

        def run():
            while not self._stop.wait(tick):
                st = ref()
                if st is None or st._closed:
                    return
                if st._lock.acquire(blocking=False):
                    try:
                        if not st._closed and st._due():
                            st._auto_checkpoint()
                    finally:
                        st._lock.release()
                del st
        self._thread = threading.Thread(target=run, name=f"hessflow-checkpoint:{store.path.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


__all__ = ["Store", "StoreSettings"]
