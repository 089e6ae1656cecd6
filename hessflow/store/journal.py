"""The rollback journal (``FILE.h5.journal``) that makes an in-place checkpoint atomic.

Journal layout (``HFJ2``), little-endian::

    head     magic "HFJ2", u64 size of FILE.h5 before the checkpoint, u64 size after it,
             u32 number of entries, u32 CRC32 of these head fields
    entry    u64 offset, u64 length, u32 CRC32 of the old bytes, u32 CRC32 of the new bytes,
             the old bytes, the new bytes                      (one per overwritten region)
    trailer  magic "HFJE", u32 CRC32 of every byte before it

The journal is written and fsync'ed whole before FILE.h5's existing bytes are touched; deleting
it after FILE.h5 is fsync'ed is the commit point. A journal found at open means a checkpoint was
interrupted (:func:`recovery_plan`), and the file's bytes show how far it went:

- a journal not written whole (the crash came while it was written): the overwrites never
  started, the appended bytes are cut off (truncate to the old size);
- a whole journal: every region that does not hold its old bytes gets them back and the file is
  truncated to its old size — or, if damage on disk hit an old image that is needed but every
  new image needed is intact, the checkpoint is finished with the new bytes instead (its records
  are also in the log, which replays over them);
- damaged beyond both: :class:`StoreError`, nothing touched.

Readers never write: :class:`RecoveredView` shows them the file as the plan restores it. The
file object that writes a journaled update is :class:`hessflow.store.update.JournaledFile`.
Journals of the first format (``HFJ1``: no sizes after, no new images, no trailer) are still
rolled back.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zlib
from pathlib import Path

from ..errors import StoreError
from .fileio import fsync_dir, pwrite_all

MAGIC = b"HFJ2"
MAGIC_V1 = b"HFJ1"
END = b"HFJE"
HEAD = struct.Struct("<4sQQI")      # magic, size before, size after, entries (+ u32 crc)
ENTRY = struct.Struct("<QQII")      # offset, length, crc32 old, crc32 new
TRAIL = struct.Struct("<4sI")       # "HFJE", crc32 of all before
HEAD_V1 = struct.Struct("<4sQ")
ENTRY_V1 = struct.Struct("<QQI")
_U32 = struct.Struct("<I")


@dataclasses.dataclass
class Plan:
    """How to recover a file from its journal: write ``regions`` (offset, bytes), then truncate
    to ``size`` (None: leave the size). ``how`` says which way, for messages."""
    size: int | None
    regions: list
    how: str


def _head_ok(data: bytes):
    if len(data) < HEAD.size + 4:
        return None
    head = data[:HEAD.size]
    (crc,) = _U32.unpack_from(data, HEAD.size)
    if zlib.crc32(head) != crc or head[:4] != MAGIC:
        return None
    return HEAD.unpack(head)[1:]


def _entries(data: bytes, pos: int, count: int | None):
    """Entries parsed from ``pos`` (``count`` of them, or until the trailer):
    ``[(offset, old, crc_old, new, crc_new)]``, and whether they end just before a trailer."""
    out = []
    while (count is None or len(out) < count) and pos + ENTRY.size <= len(data):
        if count is None and data[pos:pos + 4] == END and pos + TRAIL.size == len(data):
            break
        off, n, crc_old, crc_new = ENTRY.unpack_from(data, pos)
        a = pos + ENTRY.size
        if 2 * n > len(data) - a:
            break
        out.append((off, data[a:a + n], crc_old, data[a + n:a + 2 * n], crc_new))
        pos = a + 2 * n
    return out, pos + TRAIL.size == len(data) and data[pos:pos + 4] == END


def recovery_plan(data: bytes, current, name: str = "journal") -> Plan:
    """The :class:`Plan` that recovers a file from the bytes of its journal; ``current(offset,
    length)`` reads the file's bytes as they are now. Every region whose bytes are not its old
    bytes gets its old image back (and the file its old size); if an old image needed is damaged
    and every new image needed is intact, the checkpoint is finished instead. A journal that was
    never written whole (its overwrites never started) only cuts the appended bytes off.
    :class:`StoreError` when the journal is damaged beyond recovery."""
    if data[:4] == MAGIC_V1:
        return _plan_v1(data)
    head = _head_ok(data)
    size0, size1, count = head if head is not None else (None, None, None)
    entries, whole = _entries(data, HEAD.size + 4, count)
    whole = whole and (count is None or len(entries) == count)
    now = [zlib.crc32(current(off, len(old))) for off, old, *_ in entries]
    if not whole:
        if all(c == crc_old for c, (_, _, crc_old, _, _) in zip(now, entries)):
            # the journal itself was being written: nothing old was touched yet
            return Plan(size0, [], "incomplete journal: appended bytes cut off")
        raise StoreError(f"{name}: damaged (cannot be parsed to its end) after its checkpoint "
                         f"started overwriting: the interrupted checkpoint cannot be undone")
    back = [(off, old, zlib.crc32(old) == crc_old) for c, (off, old, crc_old, _, _)
            in zip(now, entries) if c != crc_old]
    if all(ok for *_, ok in back):
        return Plan(size0, [(off, old) for off, old, _ in back], "rolled back")
    fwd = [(off, new, zlib.crc32(new) == crc_new) for c, (off, _, _, new, crc_new)
           in zip(now, entries) if c != crc_new]
    if size1 is not None and all(ok for *_, ok in fwd):
        return Plan(size1, [(off, new) for off, new, _ in fwd],
                    "damaged old images: checkpoint finished from its new images")
    bad = next(off for off, _, ok in back if not ok)
    raise StoreError(f"{name}: damaged (the region at byte {bad} fails its checksums): the "
                     f"interrupted checkpoint can be neither undone nor finished")


def _plan_v1(data: bytes) -> Plan:
    if len(data) < HEAD_V1.size:
        return Plan(None, [], "incomplete journal")
    _, size0 = HEAD_V1.unpack_from(data, 0)
    regions, pos = [], HEAD_V1.size
    while pos + ENTRY_V1.size <= len(data):
        off, n, crc = ENTRY_V1.unpack_from(data, pos)
        old = data[pos + ENTRY_V1.size:pos + ENTRY_V1.size + n]
        if len(old) != n or zlib.crc32(old) != crc:
            break  # torn entry: its overwrite never started
        regions.append((off, old))
        pos += ENTRY_V1.size + n
    return Plan(size0, regions, "rolled back")


def journal_bytes(size0: int, size1: int, regions: list) -> bytes:
    """The journal of a checkpoint that overwrites ``regions`` ``[(offset, old, new)]`` of a file
    of ``size0`` bytes grown to ``size1``."""
    head = HEAD.pack(MAGIC, size0, size1, len(regions))
    parts = [head, _U32.pack(zlib.crc32(head))]
    for off, old, new in regions:
        parts += [ENTRY.pack(off, len(old), zlib.crc32(old), zlib.crc32(new)), old, new]
    body = b"".join(parts)
    return body + TRAIL.pack(END, zlib.crc32(body))


def rollback(path: Path, journal: Path) -> str | None:
    """Recover the file ``path`` from its ``journal`` (see :func:`recovery_plan`), on disk, and
    delete the journal. Returns how, or None if there was no journal."""
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return None
    if not path.exists():
        journal.unlink()
        fsync_dir(journal.parent)
        return "no file to recover"
    fd = os.open(path, os.O_RDWR)
    try:
        plan = recovery_plan(data, lambda off, n: os.pread(fd, n, off), str(journal))
        for off, chunk in plan.regions:
            pwrite_all(fd, chunk, off)
        if plan.size is not None:
            os.ftruncate(fd, plan.size)
        os.fsync(fd)
    finally:
        os.close(fd)
    journal.unlink()
    fsync_dir(journal.parent)
    return plan.how


class OverlaidFile(io.RawIOBase):
    """A seekable file object for h5py over the descriptor ``fd``, ``size`` bytes long, whose
    reads see :meth:`regions` (``(offset, bytes)``) laid over the file's bytes."""
    fd: int | None
    size: int
    pos: int = 0

    def regions(self):
        """The ``(offset, bytes)`` laid over the file's bytes when read."""
        return ()

    def patch(self, data: bytearray, lo: int, hi: int):
        """Last changes to the bytes ``data`` read at ``[lo, hi)`` (none here)."""

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        data = bytearray(os.pread(self.fd, n, self.pos).ljust(n, b"\0"))
        lo, hi = self.pos, self.pos + n
        for off, chunk in self.regions():
            a, z = max(lo, off), min(hi, off + len(chunk))
            if a < z:
                data[a - lo:z - lo] = chunk[a - off:z - off]
        self.patch(data, lo, hi)
        b[:n] = data
        self.pos += n
        return n

    def seek(self, offset, whence=0):
        self.pos = offset if whence == 0 else (self.pos + offset if whence == 1
                                               else self.size + offset)
        return self.pos

    def tell(self):
        return self.pos


class RecoveredView(OverlaidFile):
    """A read-only file object for h5py: the file ``path`` as its journal's :class:`Plan`
    recovers it, without writing anything (for readers)."""

    def __init__(self, path: Path, journal_data: bytes, name: str = "journal"):
        """Open ``path`` read-only, as the journal (bytes ``journal_data``) recovers it."""
        self.fd = os.open(path, os.O_RDONLY)
        try:
            plan = recovery_plan(journal_data, lambda off, n: os.pread(self.fd, n, off), name)
        except BaseException:
            os.close(self.fd)
            raise
        real = os.fstat(self.fd).st_size
        self.size = real if plan.size is None else plan.size
        self.plan = plan
        self.pos = 0

    def regions(self):
        return self.plan.regions

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        super().close()


__all__ = ["OverlaidFile", "Plan", "RecoveredView", "journal_bytes", "recovery_plan", "rollback"]
