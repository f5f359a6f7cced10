"""Windows Credential Manager: generic credentials read, written and deleted (CredReadW...)."""

from __future__ import annotations

import ctypes
import functools
from ctypes import POINTER, Structure, byref, c_char, c_void_p, c_wchar_p
from typing import Any

from smail.windows.native import _DWORD, _dll, _last_error, _prototype, _require_windows

# wincred.h / winerror.h
CRED_TYPE_GENERIC = 1
CRED_PERSIST_LOCAL_MACHINE = 2
ERROR_NOT_FOUND = 1168


class FILETIME(Structure):
    """minwinbase.h FILETIME (two DWORDs, so 4-byte aligned inside CREDENTIALW)."""

    _fields_ = [("dwLowDateTime", _DWORD), ("dwHighDateTime", _DWORD)]


class CREDENTIALW(Structure):
    """wincred.h CREDENTIALW; 52 bytes on x86 and 80 on x64, where CredentialBlob is padded to 8."""

    _fields_ = [
        ("Flags", _DWORD),
        ("Type", _DWORD),
        ("TargetName", c_wchar_p),
        ("Comment", c_wchar_p),
        ("LastWritten", FILETIME),
        ("CredentialBlobSize", _DWORD),
        ("CredentialBlob", POINTER(c_char)),
        ("Persist", _DWORD),
        ("AttributeCount", _DWORD),
        ("Attributes", c_void_p),
        ("TargetAlias", c_wchar_p),
        ("UserName", c_wchar_p),
    ]



@functools.cache
def _advapi32() -> Any:
    advapi32 = _dll("advapi32")
    _prototype(advapi32.CredReadW, ctypes.c_int, c_wchar_p, _DWORD, _DWORD, POINTER(POINTER(CREDENTIALW)))
    _prototype(advapi32.CredWriteW, ctypes.c_int, POINTER(CREDENTIALW), _DWORD)
    _prototype(advapi32.CredDeleteW, ctypes.c_int, c_wchar_p, _DWORD, _DWORD)
    _prototype(advapi32.CredFree, None, c_void_p)
    return advapi32


def decode_secret(blob: bytes) -> str:
    """A credential blob as text: UTF-16-LE (cmdkey, most tools) or else UTF-8 (git, docker)."""
    # An ASCII UTF-8 secret of even length is also valid UTF-16-LE (b"ab" -> "\u6261"), so UTF-16 is
    # chosen only when the bytes hold a NUL (Latin text in UTF-16) or are not UTF-8 at all.
    if len(blob) % 2 == 0 and (b"\x00" in blob or not _is_utf8(blob)):
        try:
            return blob.decode("utf-16-le").rstrip("\x00")
        except UnicodeDecodeError:
            pass
    return blob.decode("utf-8").rstrip("\x00")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_credential(target: str) -> str:
    """The secret of a generic Windows credential; OSError (ERROR_NOT_FOUND...) when unreadable."""
    _require_windows("Windows Credential Manager")
    advapi32 = _advapi32()
    pointer = POINTER(CREDENTIALW)()
    if not advapi32.CredReadW(target, CRED_TYPE_GENERIC, 0, byref(pointer)):
        raise _last_error(target)
    try:
        credential = pointer.contents
        blob = ctypes.string_at(credential.CredentialBlob, credential.CredentialBlobSize)
    finally:
        advapi32.CredFree(pointer)
    try:
        return decode_secret(blob)
    except UnicodeDecodeError as exc:
        raise OSError(f"The credential {target!r} is neither UTF-16 nor UTF-8 text.") from exc


def write_credential(target: str, secret: str) -> None:
    """Store `secret` as a generic credential of this user, UTF-16-LE like cmdkey /generic."""
    _require_windows("Windows Credential Manager")
    data = secret.encode("utf-16-le")
    buffer = ctypes.create_string_buffer(data, len(data))
    credential = CREDENTIALW(Type=CRED_TYPE_GENERIC, TargetName=target, CredentialBlobSize=len(data),
                             CredentialBlob=ctypes.cast(buffer, POINTER(c_char)),
                             Persist=CRED_PERSIST_LOCAL_MACHINE, UserName="SMail")
    if not _advapi32().CredWriteW(byref(credential), 0):
        raise _last_error(target)


def delete_credential(target: str) -> None:
    """Remove a generic credential; OSError (ERROR_NOT_FOUND) when there is none."""
    _require_windows("Windows Credential Manager")
    if not _advapi32().CredDeleteW(target, CRED_TYPE_GENERIC, 0):
        raise _last_error(target)
