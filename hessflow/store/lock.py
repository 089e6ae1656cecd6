"""The store's locks: one writer at a time, and no reader inside a checkpoint.

- The writer holds an exclusive ``flock`` on ``FILE.h5.lock`` (the kernel releases it when the
  process dies, even by SIGKILL) and writes its pid there, so a second writer's error names it.
  It also holds one on its log (``FILE.h5.wal``), and before every commit it checks that both
  paths still name the files it locked (:meth:`StoreLocks.check_writer`): removing or replacing
  the lock file mid-run cannot let a second writer in unnoticed — the first refuses to write on.
- Readers hold a shared ``flock`` on ``FILE.h5.readers`` while they read the HDF5 file; a
  checkpoint (and a rollback) holds it exclusively, so no reader sees a half-merged file. A
  reader opens it read-only, so a read-only or foreign-owned store needs no write access. Where
  it does not exist (no writer has opened the store since it was made) the reader reads unlocked
  and checks afterwards that no writer appeared meanwhile (:class:`ReadGuard`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from pathlib import Path

from ..errors import StoreError
from .fileio import cause, write_all


def identity(st: os.stat_result) -> tuple[int, int]:
    """A file's identity: ``(st_dev, st_ino)``."""
    return st.st_dev, st.st_ino


def open_locked(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """Open ``path`` and take an exclusive, non-blocking ``flock`` on it, making sure the path
    still names the locked file (it was not removed or replaced between the open and the lock).
    Returns the descriptor; ``BlockingIOError`` if another process holds the lock."""
    for _ in range(100):
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                same = identity(os.stat(path)) == identity(os.fstat(fd))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            return fd
        os.close(fd)  # removed or replaced meanwhile: lock the file that is there now
    raise BlockingIOError(f"{path}: replaced again and again while being locked")


def same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        return identity(os.stat(path)) == identity(os.fstat(fd))
    except FileNotFoundError:
        return False


@dataclasses.dataclass
class ReadGuard:
    """Says whether a read made under :meth:`StoreLocks.shared` can be trusted: always when the
    readers' lock was held; when it could not be (no ``FILE.h5.readers`` yet, or one this user
    cannot open), only if no writer can have checkpointed meanwhile."""
    locks: "StoreLocks"
    locked: bool
    before: tuple | None = None

    def ok(self) -> bool:
        return self.locked or self.locks.unlocked_state() == self.before


class StoreLocks:
    """The writer lock and the readers' lock of the store file ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.readers_path = self.path.with_name(self.path.name + ".readers")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.fd = None  # the writer lock's file descriptor while it is held

    def acquire_writer(self):
        """Take the writer lock; :class:`StoreError` naming the holder's pid if another process
        has it, or the cause if this user cannot create it (read-only file system, permissions).
        Creates ``FILE.h5.readers`` (mode 0644) so readers can lock without write access."""
        try:
            fd = open_locked(self.lock_path)
        except BlockingIOError:
            try:
                holder = self.lock_path.read_text(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            raise StoreError(f"{self.path}: already open for writing by another process "
                             f"(pid {holder}); HDF5 allows one writer at a time") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open for writing: lock file "
                             f"{self.lock_path.name}: {cause(exc)}") from None
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            write_all(fd, str(os.getpid()).encode())
        except OSError:
            pass  # the pid is only for the message a second writer gets
        try:
            rfd = os.open(self.readers_path, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                if os.fstat(rfd).st_uid == os.geteuid():
                    os.fchmod(rfd, 0o644)  # readable by whoever may read the store
            finally:
                os.close(rfd)
        except OSError as exc:
            self.release_writer()
            raise StoreError(f"{self.path}: cannot open for writing: readers' lock file "
                             f"{self.readers_path.name}: {cause(exc)}") from None

    def check_writer(self):
        """:class:`StoreError` unless ``FILE.h5.lock`` still is the file this writer locked."""
        if self.fd is None or not same_file(self.lock_path, self.fd):
            raise StoreError(f"{self.path}: the lock file {self.lock_path.name} was removed or "
                             f"replaced while this writer held it, so another writer may be in: "
                             f"stopping; records stored so far are safe, reopen to go on")

    def release_writer(self):
        """Release the writer lock if this object holds it."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def unlocked_state(self) -> tuple:
        """What an unlocked reader compares before and after its read: whether the readers'
        lock file and the journal exist, and the HDF5 file's identity, size and mtime."""
        try:
            st = os.stat(self.path)
            h5 = (*identity(st), st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            h5 = None
        return self.readers_path.exists(), self.journal_path.exists(), h5

    @contextlib.contextmanager
    def shared(self):
        """Held while reading FILE.h5: no checkpoint rewrites it meanwhile. Yields a
        :class:`ReadGuard` whose ``ok()`` says, after the read, whether to trust it."""
        try:
            fd = os.open(self.readers_path, os.O_RDONLY)
        except OSError:
            yield ReadGuard(self, False, self.unlocked_state())
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield ReadGuard(self, True)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self):
        """Held while a checkpoint or a rollback rewrites FILE.h5: no reader reads it meanwhile."""
        fd = os.open(self.readers_path, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
