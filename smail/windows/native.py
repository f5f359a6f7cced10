"""The ctypes plumbing every Windows call of SMail shares: the DLLs loaded with
use_last_error, prototypes declared, Windows' own error codes and messages as OSError.

The package imports on any platform: the DLLs are loaded on first use, and each function either
takes an injectable hook (so its non-Windows behaviour is unit-tested on Linux) or raises
NotOnWindowsError off Windows.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import POINTER, Structure, c_char, c_uint32
from typing import Any

# winnt.h / wincrypt.h
_DWORD = c_uint32  # DWORD is 32 bits on both x86 and x64 Windows (c_ulong would be 64 on Linux)


class NotOnWindowsError(OSError):
    """A Windows-only feature (DPAPI, Credential Manager) was asked for on another system."""


class DATA_BLOB(Structure):
    """wincrypt.h DATA_BLOB: the byte buffer DPAPI reads and writes."""

    _fields_ = [("cbData", _DWORD), ("pbData", POINTER(c_char))]



def _require_windows(feature: str) -> None:
    if sys.platform != "win32":
        raise NotOnWindowsError(f"{feature} is only available on Windows.")


def _last_error(target: str | None = None) -> OSError:
    """An OSError carrying GetLastError()'s code and Windows' own message (in the UI language)."""
    code = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
    message = ctypes.FormatError(code).strip()  # type: ignore[attr-defined,unused-ignore]
    # OSError(errno, strerror, filename, winerror): Windows maps winerror to errno and prints
    # "[WinError 1168] Element not found: 'target'".
    return OSError(0, message, target, code)


def _dll(name: str) -> Any:
    # use_last_error: ctypes saves GetLastError() right after the call, before Python can clobber it.
    return ctypes.WinDLL(name, use_last_error=True)  # type: ignore[attr-defined,unused-ignore]


def _prototype(function: Any, restype: Any, *argtypes: Any) -> None:
    function.restype, function.argtypes = restype, list(argtypes)
