"""Byte-range locks (LockFileEx): the answer comes from Windows itself, not from the C
runtime's errno mapping."""

from __future__ import annotations

import ctypes
import functools
from ctypes import POINTER, Structure, byref, c_void_p
from typing import Any

from smail.windows.native import _DWORD, _dll, _last_error, _prototype, _require_windows

# winerror.h / minwinbase.h
ERROR_LOCK_VIOLATION = 33
ERROR_IO_PENDING = 997
LOCKFILE_FAIL_IMMEDIATELY = 0x1
LOCKFILE_EXCLUSIVE_LOCK = 0x2


class OVERLAPPED(Structure):
    """minwinbase.h OVERLAPPED (the offset of a byte-range lock); 20 bytes on x86, 32 on x64."""

    _fields_ = [("Internal", c_void_p), ("InternalHigh", c_void_p), ("Offset", _DWORD), ("OffsetHigh", _DWORD),
                ("hEvent", c_void_p)]


@functools.cache
def _kernel32() -> Any:
    kernel32 = _dll("kernel32")
    # BOOL LockFileEx(hFile, dwFlags, dwReserved, nNumberOfBytesToLockLow, ...High, lpOverlapped)
    _prototype(kernel32.LockFileEx, ctypes.c_int, c_void_p, _DWORD, _DWORD, _DWORD, _DWORD, POINTER(OVERLAPPED))
    # BOOL UnlockFileEx(hFile, dwReserved, nNumberOfBytesToUnlockLow, ...High, lpOverlapped)
    _prototype(kernel32.UnlockFileEx, ctypes.c_int, c_void_p, _DWORD, _DWORD, _DWORD, POINTER(OVERLAPPED))
    return kernel32


def _overlapped(offset: int) -> OVERLAPPED:
    return OVERLAPPED(Offset=offset & 0xFFFFFFFF, OffsetHigh=offset >> 32)


def lock_byte(fd: int, offset: int, *, wait: bool) -> bool:
    """Lock the byte at `offset` of an open file for this handle alone (LockFileEx, exclusive).

    Without `wait`, False when another handle holds it (ERROR_LOCK_VIOLATION); with it, waits
    until granted. Any other failure raises OSError with Windows' code and reason: the answer
    comes from Windows itself, not from the C runtime's errno mapping (msvcrt.locking), which
    differs between runtimes (Wine's gives errno 0 or ENOENT for a lock held elsewhere)."""
    _require_windows("Byte-range locking")
    import msvcrt

    handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined,unused-ignore]
    flags = LOCKFILE_EXCLUSIVE_LOCK | (0 if wait else LOCKFILE_FAIL_IMMEDIATELY)
    if _kernel32().LockFileEx(handle, flags, 0, 1, 0, byref(_overlapped(offset))):
        return True
    if not wait and ctypes.get_last_error() in (ERROR_LOCK_VIOLATION, ERROR_IO_PENDING):  # type: ignore[attr-defined,unused-ignore]
        return False
    raise _last_error()


def unlock_byte(fd: int, offset: int) -> None:
    """Release a lock_byte() lock."""
    _require_windows("Byte-range locking")
    import msvcrt

    handle = msvcrt.get_osfhandle(fd)  # type: ignore[attr-defined,unused-ignore]
    if not _kernel32().UnlockFileEx(handle, 0, 1, 0, byref(_overlapped(offset))):
        raise _last_error()
