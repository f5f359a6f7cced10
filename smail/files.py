"""Files as an unattended tool must treat them.

Inputs: only regular files are read (a FIFO, a device or a folder is refused before it can
block or flood memory), and what is read whole is bounded. Outputs: never block on a FIFO,
replace a result atomically, and remove only a regular file SMail could have written.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

from smail.errors import FileMissingError, SMailError, reason
from smail.i18n import _

# What is read whole into memory: response, configuration, secret, token and CA files.
TEXT_LIMIT: Final = 4 * 1024 * 1024
# A body file is read whole too (it is decoded and may be rewritten); attachments are streamed.
BODY_LIMIT: Final = 64 * 1024 * 1024

_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS: Final = (os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
                      | getattr(os, "O_NOCTTY", 0))


def _tolerant(check: Callable[[], bool]) -> bool:
    """A Path check that says False for names the OS rejects (too long, NUL...) instead of raising."""
    try:
        return check()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    return _tolerant(path.is_file)


def exists(path: Path) -> bool:
    return _tolerant(path.exists)


def is_dir(path: Path) -> bool:
    return _tolerant(path.is_dir)


def not_regular(path: Path) -> FileMissingError:
    """The refusal of a folder, device or FIFO given where a file is expected (exit 8)."""
    if is_dir(path):
        return FileMissingError(_("{path} is a folder, not a file.").format(path=path))
    return FileMissingError(_("{path} is not a regular file (a device, a pipe or a socket).").format(
        path=path))


def open_input(path: Path) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a FIFO; exit 8 otherwise."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except ValueError:  # a NUL character in the name
        raise FileMissingError.not_found(path) from None
    except OSError as exc:
        if is_dir(path):
            raise not_regular(path) from None
        raise FileMissingError.unreadable(path, exc) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular(path)
        if _NONBLOCK:  # undone only where it was set: Windows can unblock pipes only
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


class TooLargeError(FileMissingError):
    """A file larger than what its use may read whole (exit 8)."""


def read_bounded(path: Path, limit: int = TEXT_LIMIT) -> bytes:
    """The whole content of a regular file of at most `limit` bytes (exit 8 otherwise)."""
    blocks: list[bytes] = []
    size = 0
    with open_input(path) as stream:
        try:  # in blocks: read(n) would reserve n bytes at once, whatever the file's size
            while size <= limit and (block := stream.read(min(1 << 20, limit + 1 - size))):
                blocks.append(block)
                size += len(block)
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
    data = b"".join(blocks)
    if len(data) > limit:
        raise TooLargeError(_("{path} is larger than {limit} MB, too large for its use.").format(
            path=path, limit=limit // (1024 * 1024)))
    return data


def _windows_1252_undefined(err: UnicodeError) -> tuple[str, int]:
    """The five bytes Windows-1252 leaves undefined map to the same code points (as Notepad)."""
    assert isinstance(err, UnicodeDecodeError)
    return "".join(chr(b) for b in err.object[err.start:err.end]), err.end


# The error handler of Notepad's "ANSI": data.decode("cp1252", WINDOWS_1252), or a stream's.
WINDOWS_1252: Final = "smail-cp1252"
codecs.register_error(WINDOWS_1252, _windows_1252_undefined)


def decode_windows_1252(data: bytes) -> str:
    """Notepad "ANSI"; the five bytes cp1252 leaves undefined map to the same code points."""
    return data.decode("cp1252", WINDOWS_1252)


def decode_text(data: bytes) -> str:
    """How Notepad and PowerShell save: a BOM (UTF-8, UTF-16 LE/BE: "Unicode", and what
    PowerShell 5's `>` writes), else UTF-8, else Windows-1252 ("ANSI")."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_windows_1252(data)


def read_text_file(path: Path, limit: int = TEXT_LIMIT) -> str:
    """A small text file (options, configuration, secret): regular, bounded, UTF-8 or ANSI."""
    return decode_text(read_bounded(path, limit))


def expand_wildcards(pattern: str) -> list[Path]:
    """`*.pdf` -> the matching regular files, sorted; a pattern matching nothing is exit 8.

    Only `*` and `?` are wildcards, as in cmd: `[` in a name (`Report[1].pdf`) is literal.
    """
    if "*" not in pattern and "?" not in pattern:
        return [Path(pattern)]
    import glob

    matches = sorted(Path(p) for p in glob.glob(pattern.replace("[", "[[]")) if is_file(Path(p)))
    if not matches:
        raise FileMissingError(_("No file matches {pattern}").format(pattern=pattern))
    return matches


def identity(path: Path) -> tuple[str, object]:
    """A key equal for two names of the same file: device and inode when it exists."""
    try:
        info = os.stat(path)
        if info.st_ino:
            return ("inode", (info.st_dev, info.st_ino))
    except (OSError, ValueError):
        pass
    return ("name", os.path.normcase(os.path.abspath(path)))


def open_output(path: Path, *, append: bool = False) -> BinaryIO:
    """Open an output for writing; a FIFO without a reader fails at once instead of blocking."""
    flags = (os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_NOCTTY", 0) | (os.O_APPEND if append else 0))
    fd = os.open(path, flags, 0o666)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory")
        if stat.S_ISREG(info.st_mode) and not append:
            os.ftruncate(fd, 0)
        if _NONBLOCK:  # undone only where it was set: Windows can unblock pipes only
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab" if append else "wb")


def is_regular_output(path: Path) -> bool:
    """Whether `path` is a regular file itself (not a symlink, device, FIFO or folder)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def remove_output(path: Path) -> None:
    """Delete a file SMail writes (the error file) only when it is a regular file itself."""
    if is_regular_output(path):
        path.unlink(missing_ok=True)


def rename(source: str | Path, target: str | Path, *, replace: bool = False,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """os.rename (os.replace with `replace`), retried for about 2 s on Windows, where an
    antivirus or an indexer holding a file open for a moment makes renaming it fail."""
    move = os.replace if replace else os.rename
    for attempt in range(10 if sys.platform == "win32" else 1):
        try:
            move(source, target)
            return
        except PermissionError:
            if attempt == (9 if sys.platform == "win32" else 0):
                raise
            sleep(0.2)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` all at once (temporary file in the same folder, fsync,
    rename), so that a reader never sees half a file. A device or FIFO is written in place."""
    target = Path(os.path.realpath(path))
    if exists(target) and not is_regular_output(target):
        with open_output(target) as stream:
            stream.write(data)
        return
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _set_mode(fd, target)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        rename(temporary, target, replace=True)
    except BaseException:
        _discard(temporary)
        raise


def _discard(path: str | Path) -> None:
    """Remove a file this module was writing when the write failed; a failure to remove it
    must not hide the write's own error."""
    try:
        os.unlink(path)
    except OSError:
        pass


_NEW_FLAGS: Final = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                     | getattr(os, "O_NOINHERIT", 0))


def write_new(path: Path, data: bytes) -> None:
    """A new file written whole and fsynced; FileExistsError when the name exists, a link
    included (O_EXCL never follows one), so that nothing is written through a link."""
    fd = os.open(path, _NEW_FLAGS, 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        _discard(path)
        raise


def replace_name(path: Path, data: bytes) -> None:
    """Give the name `path` a new file holding `data`, all at once: a link by that name is
    itself replaced, never the file it points to (write_atomically follows links on purpose)."""
    import uuid

    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    write_new(temporary, data)
    try:
        rename(temporary, path, replace=True)
    except BaseException:
        _discard(temporary)
        raise


def real_folder(path: Path) -> bool:
    """Whether `path` is a folder itself, not a link to one (nor a file)."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return False
    # A Windows junction or symbolic link is a reparse point whose tag has the name-surrogate bit.
    return stat.S_ISDIR(info.st_mode) and not getattr(info, "st_reparse_tag", 0) & 0x20000000


def _set_mode(fd: int, target: Path) -> None:
    """The mode a plain open() would give (mkstemp's is 0600): the replaced file's, else
    0666 less the umask."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        mode = 0o666 & ~mask
    os.fchmod(fd, mode)


def lock_file(fd: int) -> bool:
    """Lock an open file without waiting; False when another process holds the lock.

    The OS releases it when the file is closed or its process dies, kill -9 included, so a
    lock whose owner died is simply taken over. On Windows the lock covers one byte far past
    the end: Windows locks are mandatory, and readers must still read the file. The lock is
    the handle's: a second open of the same file, even in the same process, is refused it.
    """
    if sys.platform == "win32":
        from smail import windows

        return windows.lock_byte(fd, _FILE_LOCK, wait=False)
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


_FILE_LOCK: Final = 1 << 40
_APPEND_LOCK: Final = (1 << 40) + 1  # a byte of its own, beside lock_file()'s


def append(fd: int, data: bytes) -> None:
    """Append `data` whole to a file opened for appending, even when other processes append
    to it too (a shared /LOG). On POSIX one write() with O_APPEND is atomic; Windows emulates
    O_APPEND with a seek then a write, so there both happen under a lock of their own byte,
    waited for (each holder holds it for one write). OSError when it could not be written whole."""
    if sys.platform == "win32":
        from smail import windows

        windows.lock_byte(fd, _APPEND_LOCK, wait=True)
        try:
            os.lseek(fd, 0, os.SEEK_END)
            written = os.write(fd, data)
        finally:
            windows.unlock_byte(fd, _APPEND_LOCK)
    else:
        written = os.write(fd, data)
    if written != len(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a short write: the disk is full


def write_failure(path: Path, exc: OSError | ValueError) -> SMailError:
    """An output that could not be written (exit 1), naming it and the OS's reason."""
    return SMailError(_("{path} could not be written: {reason}").format(path=path, reason=reason(exc)))
