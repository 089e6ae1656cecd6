"""Checked file I/O: every byte written or an ``OSError``, fsync of a folder, one-line causes."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def write_all(fd: int, data: bytes):
    """Write every byte of ``data`` to ``fd`` at its offset, looping over short writes;
    ``OSError`` (ENOSPC when the file system takes no more bytes) if they cannot all be written."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]


def pwrite_all(fd: int, data: bytes, offset: int):
    """``os.pwrite`` every byte of ``data`` at ``offset``, looping over short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[n:], offset + n


def fsync_dir(path: Path):
    """fsync the directory ``path`` (makes a file's creation, rename or removal in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cause(exc: BaseException) -> str:
    """A one-line cause of an I/O failure: ``strerror (ERRNO)`` for an ``OSError``."""
    if isinstance(exc, OSError) and exc.errno:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        text = " ".join(str(exc.strerror or os.strerror(exc.errno)).split())
        if len(text) > 200:  # HDF5's own messages: the first part says what failed
            text = text[:200] + "..."
        return f"{text} ({name})"
    return " ".join(str(exc).split()) or type(exc).__name__


def remedy(exc: BaseException) -> str:
    """What to do about an I/O failure, in a few words: free space for a full disk or quota,
    else check the disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space"
    return "check the disk"
