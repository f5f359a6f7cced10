"""DPAPI: a secret encrypted for this Windows user (or this computer), and the text file that
holds it (/PROTECT_SECRET writes it, the password options read it)."""

from __future__ import annotations

import base64
import binascii
import codecs
import ctypes
import functools
from ctypes import POINTER, byref, c_char, c_void_p, c_wchar_p
from typing import Any

from smail.windows.native import _DWORD, DATA_BLOB, _dll, _last_error, _prototype, _require_windows

# wincrypt.h
CRYPTPROTECT_UI_FORBIDDEN = 0x1
CRYPTPROTECT_LOCAL_MACHINE = 0x4

PROTECTED_MAGIC = b"SMail-DPAPI/1"
_SCOPES = (b"USER", b"MACHINE")
_MAGIC_PREFIX = b"SMAIL-DPAPI/"


@functools.cache
def _crypt32() -> Any:
    crypt32 = _dll("crypt32")
    blob, void = POINTER(DATA_BLOB), c_void_p
    # BOOL CryptProtectData(in, szDataDescr, entropy, reserved, prompt, flags, out)
    _prototype(crypt32.CryptProtectData, ctypes.c_int, blob, c_wchar_p, blob, void, void, _DWORD, blob)
    # BOOL CryptUnprotectData(in, ppszDataDescr, entropy, reserved, prompt, flags, out)
    _prototype(crypt32.CryptUnprotectData, ctypes.c_int, blob, void, blob, void, void, _DWORD, blob)
    return crypt32



@functools.cache
def _kernel32() -> Any:
    kernel32 = _dll("kernel32")
    _prototype(kernel32.LocalFree, c_void_p, c_void_p)
    return kernel32


def _dpapi(call: str, data: bytes, flags: int) -> bytes:
    """Run CryptProtectData or CryptUnprotectData on `data`; the output is freed with LocalFree."""
    buffer = ctypes.create_string_buffer(data, len(data))
    blob_in = DATA_BLOB(len(data), ctypes.cast(buffer, POINTER(c_char)))
    blob_out = DATA_BLOB()
    if not getattr(_crypt32(), call)(byref(blob_in), None, None, None, None, flags, byref(blob_out)):
        raise _last_error()
    try:
        return ctypes.string_at(blob_out.pbData, blob_out.cbData)
    finally:
        _kernel32().LocalFree(ctypes.cast(blob_out.pbData, c_void_p))


def protect(data: bytes, *, machine: bool = False) -> bytes:
    """Encrypt for this Windows user (or, with machine=True, any account on this machine)."""
    _require_windows("DPAPI")
    return _dpapi("CryptProtectData", data,
                  CRYPTPROTECT_UI_FORBIDDEN | (CRYPTPROTECT_LOCAL_MACHINE if machine else 0))


def unprotect(blob: bytes) -> bytes:
    """Decrypt a DPAPI blob; another user's or machine's blob raises OSError with Windows' reason."""
    _require_windows("DPAPI")
    return _dpapi("CryptUnprotectData", blob, CRYPTPROTECT_UI_FORBIDDEN)


def format_protected(blob: bytes, *, machine: bool) -> bytes:
    """The text file that holds a DPAPI blob: a header naming the scope, then base64 lines, CRLF."""
    encoded = base64.b64encode(blob)
    lines = [PROTECTED_MAGIC + (b" MACHINE" if machine else b" USER")]
    lines += [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
    return b"\r\n".join(lines) + b"\r\n"


def parse_protected(data: bytes) -> bytes | None:
    """The blob of a format_protected() file, None for any other file; ValueError when corrupt."""
    text = _ascii_text(data)
    header, _newline, body = text.partition(b"\n")
    words = header.upper().split()
    if not words or not words[0].startswith(_MAGIC_PREFIX):
        return None  # an ordinary password file
    if words[0] != PROTECTED_MAGIC.upper() or len(words) != 2 or words[1] not in _SCOPES:
        raise ValueError(f"unsupported protected-secret header {header.strip()[:40]!r}")
    try:
        blob = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"corrupt protected secret: {exc}") from exc
    if not blob:
        raise ValueError("corrupt protected secret: no data after the header")
    return blob


def _ascii_text(data: bytes) -> bytes:
    """`data` without its BOM; UTF-16 (what PowerShell 5's `>` writes) re-encoded as ASCII when it can be."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").encode("ascii")
        except UnicodeError:
            return b""
    return data.removeprefix(codecs.BOM_UTF8)
