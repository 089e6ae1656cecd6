"""The store's locks: one writer at a time, and no reader inside a checkpoint.

- The writer holds an exclusive ``flock`` on ``FILE.h5.lock`` (the kernel releases it when the
  process dies, even by SIGKILL) and writes its pid there, so a second writer's error names it.
- Readers hold a shared ``flock`` on ``FILE.h5.readers`` while they read the HDF5 file; a
  checkpoint (and a rollback) holds it exclusively, so no reader sees a half-merged file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import StoreError


class StoreLocks:
    """The writer lock and the readers' lock of the store file ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.readers_path = self.path.with_name(self.path.name + ".readers")
        self.fd = None  # the writer lock's file descriptor while it is held

    def acquire_writer(self, blocking: bool = False) -> bool:
        """Take the writer lock (waiting for it if ``blocking``); :class:`StoreError` naming the
        holder's pid if another process has it."""
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
        self.fd = fd
        return True

    def release_writer(self):
        """Release the writer lock if this object holds it."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @contextlib.contextmanager
    def _readers(self, how):
        fd = os.open(self.readers_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, how)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def shared(self):
        """Held while reading FILE.h5: no checkpoint rewrites it meanwhile."""
        return self._readers(fcntl.LOCK_SH)

    def exclusive(self):
        """Held while a checkpoint or a rollback rewrites FILE.h5: no reader reads it meanwhile."""
        return self._readers(fcntl.LOCK_EX)
