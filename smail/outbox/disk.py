"""Durable writes in the outbox (fsynced files and folders) and the lock a /FLUSH holds."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from smail import files
from smail.outbox.layout import LOCK

LOCK_POLL: Final = 0.1


# -- the lock ----------------------------------------------------------------------------------

def lock(folder: Path, wait: float, *, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> int | None:
    """The outbox's lock file, locked by us; None when another flush still holds it after `wait` s.

    The file locked must still be the one the outbox names: a lock file deleted and created
    again meanwhile (by hand, by a cleaner) would let two flushes run at once.
    """
    deadline = clock() + wait
    while True:
        # O_NOFOLLOW: a link named .lock is not SMail's, and nothing is created through it.
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
                     | getattr(os, "O_NOINHERIT", 0) | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            while not files.lock_file(fd):
                if clock() >= deadline:
                    os.close(fd)
                    return None
                sleep(LOCK_POLL)
            if holds_lock(folder, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def holds_lock(folder: Path, fd: int) -> bool:
    """Whether the locked file `fd` is still the outbox's lock file."""
    try:
        held, named = os.fstat(fd), os.stat(folder / LOCK)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino) if held.st_ino else True


# -- durable files -----------------------------------------------------------------------------

def fsync_dir(path: Path) -> None:
    """Make the names created, renamed or deleted in a folder durable; NTFS journals them itself."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a folder; their renames are synchronous
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """A new file written whole and fsynced before anything can depend on it; never through a
    link (FileExistsError when the name exists)."""
    files.write_new(path, data)
