"""The hessflow HDF5 store: one file per dataset, columnar, crash-safe, one writer at a time.

The file's layout is in :mod:`hessflow.store.columns`, its columns in
:mod:`hessflow.store.schema`; both are documented in ``docs/store.md``. :class:`Store` opens a
store (as a reader or its one writer) and writes it; what it reads comes from
:class:`~hessflow.store.view.StoreView`.

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
  (:mod:`hessflow.store.update`, :mod:`hessflow.store.journal`); a journal found at open means a
  checkpoint was interrupted, and the file is recovered from it (readers do so in memory,
  writing nothing).
- A writer checkpoints on a budget (:mod:`hessflow.store.budget`) — the log over
  ``checkpoint_bytes``, ``checkpoint_records`` records waiting, or the oldest waiting record
  ``checkpoint_seconds`` old (a background timer sees to that even when no more records come) —
  on :meth:`Store.checkpoint` and on ``close()``, so ``FILE.h5`` is a current HDF5 file for plain
  h5py, at most about a minute behind.
- Every value in ``FILE.h5`` has a CRC32 (:mod:`hessflow.store.checksum`); reads check them and
  raise :class:`StoreError` naming the record and the field instead of returning damage.

One writer (:mod:`hessflow.store.lock`): ``flock`` on ``FILE.h5.lock`` and on the log, both
checked before every commit; readers need no write access.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
import warnings
from typing import Iterable

import numpy as np

from ..errors import StoreError
from ..settings import from_mapping
from .budget import CheckpointTimer, StoreSettings
from .checksum import records_crcs
from .columns import add_checksums, add_columns, init_file, write_rows
from .fileio import cause, remedy, write_all
from .journal import rollback
from .lock import open_locked, same_file
from .reader import missing_columns
from .log import LogScan, encode, identity_frame, read_log
from .schema import RAGGED, SCHEMA_VERSION, normalise
from .update import create_file, update_file
from .view import StoreView

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Store(StoreView):
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
        super().__init__(path, mode)
        self.checkpoint_error: str | None = None  # the last failed automatic checkpoint
        self._wal_fd = None
        self._wal_end = 0
        self._closed = False
        self._broken: str | None = None
        self._timer = None
        self._last_checkpoint = time.monotonic()
        self._oldest_pending: float | None = None
        self._retry_at = 0.0
        self._new_log = False
        if mode == "r" and not self.path.exists() and not self.wal_path.exists():
            raise StoreError(f"{self.path}: no such store")
        self._check_file()
        try:
            if mode == "a":
                self._open_writer()
            else:
                self._open_reader()
        except BaseException:
            if self._wal_fd is not None and self._new_log and not os.fstat(self._wal_fd).st_size:
                self.wal_path.unlink(missing_ok=True)  # made by this failed open: nothing in it
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


    def _check_file(self):
        """:class:`StoreError` before anything is created beside ``path`` if it is not a store
        file: a folder, an empty file, a file that is not HDF5."""
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a store file")
        if not self.path.exists() or self.journal_path.exists():
            return  # (an interrupted checkpoint: the file is judged as its journal recovers it)
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(HDF5_SIGNATURE))
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read: {cause(exc)}") from None
        if head != HDF5_SIGNATURE:
            raise StoreError(f"{self.path}: not a hessflow store ("
                             f"{'an empty file' if not head else 'not an HDF5 file'})")

    # -- opening ------------------------------------------------------------------------------
    def _open_writer(self):
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {cause(exc)}") from None
        self._locks.acquire_writer()
        self._new_log = not self.wal_path.exists()
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
        if self._version < SCHEMA_VERSION:
            self._upgrade()
        size = os.fstat(self._wal_fd).st_size
        if size != scan.end:
            self._truncate_log(scan.end)  # a torn tail: a write that never returned
        self._wal_end = scan.end
        if self._wal_end == 0:
            self._append(identity_frame(self._store_id))
        if self.settings.checkpoint_seconds > 0:
            self._timer = CheckpointTimer(self, self.settings.checkpoint_seconds)

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
        """Write a new, empty store file with a new identity."""
        create_file(self.path, lambda f: init_file(f, uuid.uuid4().hex))

    def _upgrade(self):
        """Bring an older file to this schema version (one journaled update, done once by its
        first writer): the columns of fields added since, "not computed" in every row; for a
        version 1 file also an identity and the checksums of its rows."""
        missing = self._read(missing_columns)
        if self._version == 1:
            rows = [self._h5_rows[k] for k in self._h5_keys if k in self._h5_rows]
            recs = list(self._read_file_rows(sorted(rows), list(RAGGED)).values())
            crcs, rows = records_crcs([normalise(r) for r in recs]), sorted(rows)
        else:  # the file's checksums (read by name) with those of the fields added
            crcs = self._crcs if self._crcs is not None else np.zeros((0, 0), np.uint32)
            rows = list(range(min(len(crcs), len(self._h5_keys))))
            crcs = crcs[:len(rows)]

        def change(f):
            add_columns(f, missing, len(self._h5_keys))
            if "checksum" in f["records"]:
                del f["records"]["checksum"]
            add_checksums(f, len(self._h5_keys))
            if len(rows):
                f["records"]["checksum"][rows] = crcs
            if self._version == 1:
                f.attrs["store_id"] = uuid.uuid4().hex
            f.attrs["schema_version"] = SCHEMA_VERSION
        self._update_file(change)
        added = f", columns added: {', '.join(missing)}" if missing else ""
        self._opened.append(f"{self.path}: upgraded from schema version {self._version} to "
                            f"{SCHEMA_VERSION}{added}")
        self._load(read_log(self.wal_path))

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
                             f"safe): {remedy(exc)} and rerun") from None
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
        """Apply ``change(f)`` to the HDF5 file in place (journaled), no reader reading it
        meanwhile. :class:`StoreError` (nothing changed) on failure."""
        with self._locks.exclusive():
            update_file(self.path, self.journal_path, change,
                        f"; the records are safe in its log {self.wal_path.name}: {{remedy}} "
                        f"and reopen")

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



__all__ = ["Store", "StoreSettings"]
