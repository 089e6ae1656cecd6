"""The rollback journal (``FILE.h5.journal``) that makes an in-place checkpoint atomic.

Journal layout, little-endian: ``magic "HFJ1", u64 size of FILE.h5 before the checkpoint``, then
one entry per overwritten region: ``u64 offset, u64 length, u32 CRC32 of the old bytes``, the old
bytes. Deleting the journal after FILE.h5 is fsync'ed is the commit point; a journal found at open
means a checkpoint was interrupted, and :func:`rollback` restores the file as it was before it.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path


def fsync_dir(path: Path):
    """fsync the directory ``path`` (makes a file's creation, rename or removal in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MAGIC = b"HFJ1"
HEAD = struct.Struct("<4sQ")      # magic, size of the file before the checkpoint
ENTRY = struct.Struct("<QQI")     # offset, length, crc32 of the pre-image


class JournaledFile(io.RawIOBase):
    """A file object for h5py's ``fileobj`` driver that makes an in-place update atomic.

    Appends beyond the original end of file go straight to the file (a rollback truncates them).
    Overwrites of existing bytes are held in memory (reads see them) until :meth:`commit`, which
    writes the old bytes of every overwritten region to the journal, fsyncs it once, applies the
    overwrites and fsyncs the file — the ordering of SQLite's rollback journal."""

    def __init__(self, path: Path, journal: Path):
        """Open ``path`` (the HDF5 file) for an update journaled to ``journal``."""
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
        """Make the update durable: appended bytes, then the journal of pre-images, then the
        overwrites; deleting the journal is the commit point. Closes the file."""
        os.fsync(self.fd)  # appended data first: a rollback only truncates it
        if self.overlay:
            with open(self.journal, "wb") as j:
                j.write(HEAD.pack(MAGIC, self.size0))
                for off, chunk in sorted(self.overlay.items()):
                    old = os.pread(self.fd, len(chunk), off)
                    j.write(ENTRY.pack(off, len(old), zlib.crc32(old)) + old)
                j.flush()
                os.fsync(j.fileno())
            fsync_dir(self.journal.parent)
            for off, chunk in self.overlay.items():
                os.pwrite(self.fd, chunk, off)
            os.fsync(self.fd)
        os.close(self.fd)
        if self.journal.exists():
            self.journal.unlink()  # the commit point
            fsync_dir(self.journal.parent)

    def abandon(self):
        """Give the update up: truncate the appended bytes and close (nothing older was written)."""
        os.ftruncate(self.fd, self.size0)  # nothing below size0 was touched
        os.close(self.fd)


def rollback(path: Path, journal: Path) -> bool:
    """Undo an interrupted checkpoint of the file ``path`` from its ``journal``: write the
    pre-images back, truncate to the former size, delete the journal. Returns True if there was
    one. A torn last entry is skipped: its overwrite never started."""
    if not journal.exists():
        return False
    data = journal.read_bytes()
    if len(data) >= HEAD.size and path.exists():
        magic, size0 = HEAD.unpack_from(data, 0)
        if magic == MAGIC:
            fd = os.open(path, os.O_RDWR)
            try:
                pos = HEAD.size
                while pos + ENTRY.size <= len(data):
                    off, n, crc = ENTRY.unpack_from(data, pos)
                    old = data[pos + ENTRY.size:pos + ENTRY.size + n]
                    if len(old) != n or zlib.crc32(old) != crc:
                        break  # torn entry: its overwrite never started
                    os.pwrite(fd, old, off)
                    pos += ENTRY.size + n
                os.ftruncate(fd, size0)
                os.fsync(fd)
            finally:
                os.close(fd)
    journal.unlink()
    fsync_dir(journal.parent)
    return True
