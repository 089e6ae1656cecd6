"""Updating the HDF5 file in place, atomically: :class:`JournaledFile` for h5py, and the two
updates the store makes — creating a file (:func:`create_file`) and changing one
(:func:`update_file`, every checkpoint).

Failures never reach h5py as exceptions (its cleanup would write again and again, then crash):
:class:`JournaledFile` keeps the first I/O error and goes on in memory; the update is then
abandoned (nothing old touched, the appended bytes cut off) and the error raised once, as a
one-line :class:`~hessflow.errors.StoreError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from ..errors import StoreError
from .fileio import cause, fsync_dir, pwrite_all, remedy, write_all
from .journal import OverlaidFile, journal_bytes, rollback


class JournaledFile(OverlaidFile):
    """A file object for h5py's ``fileobj`` driver that makes an in-place update atomic.

    Appends beyond the original end of file go straight to the file (a rollback truncates them).
    Overwrites of existing bytes are held in memory (reads see them) until :meth:`commit`, which
    writes the old and new bytes of every overwritten region to the journal, fsyncs it once,
    applies the overwrites and fsyncs the file — the ordering of SQLite's rollback journal.
    The first I/O error is kept in :attr:`error` and never raised into h5py: the update goes on
    in memory (reads stay consistent) and :meth:`commit` raises it instead."""

    def __init__(self, path: Path, journal: Path, create: bool = False):
        """Open ``path`` (the HDF5 file; a new empty one if ``create``) for an update journaled
        to ``journal``."""
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        self.fd = os.open(path, flags, 0o644)
        self.path = Path(path)
        self.size0 = os.fstat(self.fd).st_size
        self.journal = Path(journal)
        self.overlay: dict[int, bytes] = {}  # offset -> bytes, all below size0
        self.pos = 0
        self.size = self.size0
        self.error: OSError | None = None
        self.mem: bytearray | None = None  # the appended bytes, in memory after an error
        self.phase = "writing"  # -> "journal" -> "overwrites" -> "done"

    def writable(self):
        return True

    def regions(self):
        return self.overlay.items()

    def patch(self, data: bytearray, lo: int, hi: int):
        if self.mem is not None and hi > self.size0:  # after an error: appends in memory
            a = max(lo, self.size0)
            part = self.mem[a - self.size0:hi - self.size0]
            data[a - lo:a - lo + len(part)] = part
            data[a - lo + len(part):] = bytes(hi - a - len(part))

    def write(self, b):
        b = bytes(b)
        lo, hi = self.pos, self.pos + len(b)
        if lo < self.size0:  # the part over existing bytes waits for commit
            cut = min(hi, self.size0)
            self._overlay(lo, b[:cut - lo])
            rest, lo = b[cut - lo:], cut
        else:
            rest = b
        if rest and self.mem is None:
            try:
                pwrite_all(self.fd, rest, lo)
            except OSError as exc:
                # never raised into h5py (whose cleanup would write again and again, then
                # crash): the update goes on in memory, and commit raises the error instead
                self.error = exc
                self.mem = bytearray(os.pread(self.fd, max(0, self.size - self.size0),
                                              self.size0))
        if rest and self.mem is not None:
            a = lo - self.size0
            if len(self.mem) < a + len(rest):
                self.mem.extend(bytes(a + len(rest) - len(self.mem)))
            self.mem[a:a + len(rest)] = rest
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
        if self.mem is not None:
            del self.mem[max(0, size - self.size0):]
        else:
            try:
                os.ftruncate(self.fd, size)
            except OSError as exc:
                self.error = exc
                self.mem = bytearray(os.pread(self.fd, max(0, size - self.size0), self.size0))
        self.size = size
        return size

    def flush(self):
        pass

    def commit(self):
        """Make the update durable: appended bytes, then the journal, then the overwrites;
        deleting the journal is the commit point. Closes the file. On an error before the
        overwrites nothing old was touched (:meth:`abandon` cuts the appends off); on one while
        they are written, the journal rolls the file back (:func:`rollback`)."""
        if self.error is not None:
            raise self.error
        os.fsync(self.fd)  # appended data first: a rollback only truncates it
        if self.overlay:
            self.phase = "journal"
            regions = [(off, os.pread(self.fd, len(chunk), off), chunk)
                       for off, chunk in sorted(self.overlay.items())]
            jfd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_all(jfd, journal_bytes(self.size0, self.size, regions))
                os.fsync(jfd)
            finally:
                os.close(jfd)
            fsync_dir(self.journal.parent)
            self.phase = "overwrites"
            for off, _, chunk in regions:
                pwrite_all(self.fd, chunk, off)
            os.fsync(self.fd)
        self.phase = "done"
        os.close(self.fd)
        self.fd = None
        if self.journal.exists():
            self.journal.unlink()  # the commit point
            fsync_dir(self.journal.parent)

    def abandon(self):
        """Give the update up after a failed :meth:`commit` or h5py write: before the
        overwrites, cut the appended bytes off and drop a partial journal; once they started,
        roll the file back from the journal. Closes the file; never raises for a cleanup that
        the next writer's open can finish (the journal stays then)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if self.phase in ("writing", "journal"):
                os.ftruncate(fd, self.size0)  # nothing below size0 was touched
                if self.phase == "journal" and self.journal.exists():
                    self.journal.unlink()
            elif self.phase == "overwrites":
                os.close(fd)
                fd = None
                rollback(self.path, self.journal)
        except (OSError, StoreError):
            pass  # the journal (if any) is still there: the next open recovers
        finally:
            if fd is not None:
                os.close(fd)


def create_file(path: Path, init):
    """Write a new HDF5 file at ``path``: ``init(f)`` fills it, through ``path.tmp`` (fsync'ed,
    then renamed), so ``path`` is never a half-written file. :class:`StoreError` with the cause
    (the temporary file removed) on failure."""
    tmp = path.with_name(path.name + ".tmp")
    jf = None
    try:
        jf = JournaledFile(tmp, path.with_name(path.name + ".journal"), create=True)
        with h5py.File(jf, "w", locking=False) as f:
            init(f)
        jf.commit()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        err = jf.error if jf is not None and jf.error is not None else exc
        if jf is not None:
            jf.abandon()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise StoreError(f"{path}: cannot create the store: {cause(err)}") from None
        raise


def update_file(path: Path, journal: Path, change, advice: str = ""):
    """Apply ``change(f)`` to the HDF5 file ``path`` in place, journaled to ``journal``,
    counting it in the ``generation`` attribute (readers reload when it changes).
    :class:`StoreError` naming the cause, followed by ``advice`` (where ``{remedy}`` becomes what
    to do: free space, check the disk), on failure (nothing changed)."""
    jf = None
    try:
        jf = JournaledFile(path, journal)
        with h5py.File(jf, "r+", locking=False) as f:
            change(f)
            f.attrs["generation"] = int(f.attrs.get("generation", 0)) + 1
        jf.commit()
    except BaseException as exc:
        err = jf.error if jf is not None and jf.error is not None else exc
        if jf is not None:
            jf.abandon()
        if isinstance(exc, Exception):
            raise StoreError(f"{path}: checkpoint failed: {cause(err)}"
                             f"{advice.format(remedy=remedy(err))}") from None
        raise


__all__ = ["JournaledFile", "create_file", "update_file"]
