"""Windows-only services behind small typed functions: code pages, DPAPI, Credential Manager,
the Event Log, byte-range locks.

Everything goes through ctypes (no pywin32). The module imports on any platform: the DLLs are
loaded on first use, and each function either takes an injectable hook (so its non-Windows
behaviour is unit-tested on Linux) or raises NotOnWindowsError off Windows.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import ctypes
import functools
import sys
from collections.abc import Callable
from ctypes import POINTER, Structure, byref, c_char, c_uint32, c_void_p, c_wchar_p
from typing import Any

# winnt.h / wincrypt.h / wincred.h / winerror.h
_DWORD = c_uint32  # DWORD is 32 bits on both x86 and x64 Windows (c_ulong would be 64 on Linux)
CP_UTF8 = 65001
CRYPTPROTECT_UI_FORBIDDEN = 0x1
CRYPTPROTECT_LOCAL_MACHINE = 0x4
CRED_TYPE_GENERIC = 1
CRED_PERSIST_LOCAL_MACHINE = 2
ERROR_NOT_FOUND = 1168
ERROR_LOCK_VIOLATION = 33
ERROR_IO_PENDING = 997
LOCKFILE_FAIL_IMMEDIATELY = 0x1
LOCKFILE_EXCLUSIVE_LOCK = 0x2

PROTECTED_MAGIC = b"SMail-DPAPI/1"
_SCOPES = (b"USER", b"MACHINE")
_MAGIC_PREFIX = b"SMAIL-DPAPI/"


class NotOnWindowsError(OSError):
    """A Windows-only feature (DPAPI, Credential Manager) was asked for on another system."""


class DATA_BLOB(Structure):
    """wincrypt.h DATA_BLOB: the byte buffer DPAPI reads and writes."""

    _fields_ = [("cbData", _DWORD), ("pbData", POINTER(c_char))]


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


class OVERLAPPED(Structure):
    """minwinbase.h OVERLAPPED (the offset of a byte-range lock); 20 bytes on x86, 32 on x64."""

    _fields_ = [("Internal", c_void_p), ("InternalHigh", c_void_p), ("Offset", _DWORD), ("OffsetHigh", _DWORD),
                ("hEvent", c_void_p)]


def _code_page(number: int, default: str) -> str:
    """A Python codec name for a Windows code page number."""
    if number == CP_UTF8:
        return "utf-8"
    name = f"cp{number}"
    try:
        codecs.lookup(name)
    except LookupError:
        return default  # e.g. cp20127: "mbcs"/"oem" are Python's codecs for "whatever the ANSI/OEM page is"
    return name


def ansi_code_page(get_acp: Callable[[], int] | None = None) -> str:
    """The ANSI code page's codec (Notepad's "ANSI" files), "cp1252" off Windows."""
    if get_acp is None:
        if sys.platform != "win32":
            return "cp1252"
        get_acp = _kernel32().GetACP
    return _code_page(int(get_acp()), "mbcs")


def oem_code_page(get_oemcp: Callable[[], int] | None = None) -> str:
    """The OEM code page's codec (what cmd.exe pipes carry), "cp850" off Windows."""
    if get_oemcp is None:
        if sys.platform != "win32":
            return "cp850"
        get_oemcp = _kernel32().GetOEMCP
    return _code_page(int(get_oemcp()), "oem")


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


@functools.cache
def _kernel32() -> Any:
    kernel32 = _dll("kernel32")
    _prototype(kernel32.GetACP, ctypes.c_uint)
    _prototype(kernel32.GetOEMCP, ctypes.c_uint)
    _prototype(kernel32.LocalFree, c_void_p, c_void_p)
    # BOOL LockFileEx(hFile, dwFlags, dwReserved, nNumberOfBytesToLockLow, ...High, lpOverlapped)
    _prototype(kernel32.LockFileEx, ctypes.c_int, c_void_p, _DWORD, _DWORD, _DWORD, _DWORD, POINTER(OVERLAPPED))
    # BOOL UnlockFileEx(hFile, dwReserved, nNumberOfBytesToUnlockLow, ...High, lpOverlapped)
    _prototype(kernel32.UnlockFileEx, ctypes.c_int, c_void_p, _DWORD, _DWORD, _DWORD, POINTER(OVERLAPPED))
    return kernel32


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
def _advapi32() -> Any:
    advapi32 = _dll("advapi32")
    _prototype(advapi32.CredReadW, ctypes.c_int, c_wchar_p, _DWORD, _DWORD, POINTER(POINTER(CREDENTIALW)))
    _prototype(advapi32.CredWriteW, ctypes.c_int, POINTER(CREDENTIALW), _DWORD)
    _prototype(advapi32.CredDeleteW, ctypes.c_int, c_wchar_p, _DWORD, _DWORD)
    _prototype(advapi32.CredFree, None, c_void_p)
    declare_event_log(advapi32)
    return advapi32


# -- the Event Log (winbase.h, winnt.h) ----------------------------------------------------------

EVENTLOG_ERROR_TYPE = 0x0001
EVENTLOG_WARNING_TYPE = 0x0002
EVENTLOG_INFORMATION_TYPE = 0x0004
_WORD = ctypes.c_uint16
_HANDLE = c_void_p
# The key that makes a source known to the Application log, and the message file that .NET's
# EventLog.CreateEventSource and PowerShell's New-EventLog register: its message for every event
# ID is "%1", so that the entry's description is exactly the text SMail writes.
EVENT_LOG_KEY = r"SYSTEM\CurrentControlSet\Services\EventLog\Application"
EVENT_MESSAGE_FILE = r"%SystemRoot%\Microsoft.NET\Framework\v4.0.30319\EventLogMessages.dll"
REG_EXPAND_SZ = 2
REG_DWORD = 4


def declare_event_log(advapi32: Any) -> None:
    """The prototypes of the three Event Log functions SMail calls, on `advapi32`."""
    # HANDLE RegisterEventSourceW(LPCWSTR lpUNCServerName, LPCWSTR lpSourceName)
    _prototype(advapi32.RegisterEventSourceW, _HANDLE, c_wchar_p, c_wchar_p)
    # BOOL ReportEventW(HANDLE, WORD wType, WORD wCategory, DWORD dwEventID, PSID lpUserSid,
    #                   WORD wNumStrings, DWORD dwDataSize, LPCWSTR *lpStrings, LPVOID lpRawData)
    _prototype(advapi32.ReportEventW, ctypes.c_int, _HANDLE, _WORD, _WORD, _DWORD, c_void_p, _WORD, _DWORD,
               POINTER(c_wchar_p), c_void_p)
    # BOOL DeregisterEventSource(HANDLE hEventLog)
    _prototype(advapi32.DeregisterEventSource, ctypes.c_int, _HANDLE)


def event_strings(*texts: str) -> Any:
    """The LPCWSTR array ReportEventW takes: each text cut to the 31,839 characters one insertion
    string may hold (ReportEventW's documentation), NUL characters removed."""
    cleaned = [text.replace("\0", "")[:31839] for text in texts]
    return (c_wchar_p * len(cleaned))(*cleaned)


def report_event(source: str, event_type: int, event_id: int, text: str, *, advapi32: Any = None) -> None:
    """Write one entry to the Application log under `source` (registered or not); OSError with
    Windows' reason when it cannot be written."""
    if advapi32 is None:
        _require_windows("The Windows Event Log")
        advapi32 = _advapi32()
    handle = advapi32.RegisterEventSourceW(None, source)
    if not handle:
        raise _last_error(source)
    try:
        strings = event_strings(text)
        if not advapi32.ReportEventW(handle, event_type, 0, event_id, None, len(strings), 0, strings, None):
            raise _last_error(source)
    finally:
        advapi32.DeregisterEventSource(handle)


def event_source_values(message_file: str = EVENT_MESSAGE_FILE) -> list[tuple[str, int, str | int]]:
    """The values of a source's registry key: where its messages are, and the types it writes."""
    types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE
    return [("EventMessageFile", REG_EXPAND_SZ, message_file), ("TypesSupported", REG_DWORD, types)]


def register_event_source(source: str, *, registry: Any = None) -> None:
    """Create the source's key under the Application log (HKLM: administrators only);
    PermissionError when not elevated."""
    if registry is None:
        _require_windows("The Windows Event Log")
        import winreg as registry
    with registry.CreateKeyEx(registry.HKEY_LOCAL_MACHINE, f"{EVENT_LOG_KEY}\\{source}", 0,
                              registry.KEY_SET_VALUE) as key:
        for name, kind, value in event_source_values():
            registry.SetValueEx(key, name, 0, kind, value)


def unregister_event_source(source: str, *, registry: Any = None) -> None:
    """Remove the source's key; FileNotFoundError when there is none."""
    if registry is None:
        _require_windows("The Windows Event Log")
        import winreg as registry
    registry.DeleteKey(registry.HKEY_LOCAL_MACHINE, f"{EVENT_LOG_KEY}\\{source}")


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


# --- the certificate store and CNG: a certificate's private key signs where it lives ---------------
# wincrypt.h / ncrypt.h / bcrypt.h / winerror.h

_ULONG_PTR = ctypes.c_size_t  # HCRYPTPROV_OR_NCRYPT_KEY_HANDLE, NCRYPT_KEY_HANDLE: pointer-sized integers
CERT_STORE_PROV_SYSTEM_W = 10
CERT_SYSTEM_STORE_CURRENT_USER = 1 << 16
CERT_SYSTEM_STORE_LOCAL_MACHINE = 2 << 16
CERT_STORE_OPEN_EXISTING_FLAG = 0x4000
CERT_STORE_READONLY_FLAG = 0x8000
X509_ASN_ENCODING = 0x1
PKCS_7_ASN_ENCODING = 0x10000
CERT_FIND_SHA1_HASH = 1 << 16
CRYPT_ACQUIRE_SILENT_FLAG = 0x40
CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG = 0x40000
BCRYPT_PAD_PKCS1 = 0x2
BCRYPT_PAD_PSS = 0x8
NCRYPT_SILENT_FLAG = 0x40
# Why a private key cannot be used (winerror.h): each gets its own advice.
CRYPT_E_NOT_FOUND = 0x80092004
CRYPT_E_NO_KEY_PROPERTY = 0x8009200B
NTE_BAD_KEYSET = 0x80090016
NTE_PERM = 0x80090010
NTE_BAD_PROVIDER = 0x80090013
NTE_SILENT_CONTEXT = 0x80090022
E_ACCESSDENIED = 0x80070005
ERROR_ACCESS_DENIED = 5
ERROR_FILE_NOT_FOUND = 2


class CERT_CONTEXT(Structure):
    """wincrypt.h CERT_CONTEXT: the certificate's DER bytes, and the store it came from."""

    _fields_ = [("dwCertEncodingType", _DWORD), ("pbCertEncoded", POINTER(c_char)), ("cbCertEncoded", _DWORD),
                ("pCertInfo", c_void_p), ("hCertStore", c_void_p)]


class BCRYPT_PSS_PADDING_INFO(Structure):
    """bcrypt.h: RSASSA-PSS with this hash and salt length (PS256: SHA256, 32 bytes)."""

    _fields_ = [("pszAlgId", c_wchar_p), ("cbSalt", _DWORD)]  # ULONG: 32 bits on Windows


class BCRYPT_PKCS1_PADDING_INFO(Structure):
    """bcrypt.h: RSASSA-PKCS1-v1_5 with this hash (RS256: SHA256)."""

    _fields_ = [("pszAlgId", c_wchar_p)]


def declare_crypt32_store(crypt32: Any) -> Any:
    """The prototypes of the certificate store functions (every OS checks them)."""
    context = POINTER(CERT_CONTEXT)
    # HCERTSTORE CertOpenStore(LPCSTR provider, DWORD encoding, HCRYPTPROV_LEGACY, DWORD flags, const void *para)
    _prototype(crypt32.CertOpenStore, c_void_p, c_void_p, _DWORD, _ULONG_PTR, _DWORD, c_wchar_p)
    # PCCERT_CONTEXT CertFindCertificateInStore(store, encoding, findFlags, findType, const void *para, prev)
    _prototype(crypt32.CertFindCertificateInStore, context, c_void_p, _DWORD, _DWORD, _DWORD,
               POINTER(DATA_BLOB), context)
    _prototype(crypt32.CertFreeCertificateContext, ctypes.c_int, context)
    _prototype(crypt32.CertCloseStore, ctypes.c_int, c_void_p, _DWORD)
    # BOOL CryptAcquireCertificatePrivateKey(cert, flags, reserved, *key, *keySpec, *callerFree)
    _prototype(crypt32.CryptAcquireCertificatePrivateKey, ctypes.c_int, context, _DWORD, c_void_p,
               POINTER(_ULONG_PTR), POINTER(_DWORD), POINTER(ctypes.c_int))
    return crypt32


def declare_ncrypt(ncrypt: Any) -> Any:
    """The prototypes of the CNG key functions (every OS checks them)."""
    # SECURITY_STATUS NCryptSignHash(key, padding, hash, cbHash, signature, cbSignature, *cbResult, flags)
    _prototype(ncrypt.NCryptSignHash, ctypes.c_int32, _ULONG_PTR, c_void_p, ctypes.c_char_p, _DWORD,
               POINTER(c_char), _DWORD, POINTER(_DWORD), _DWORD)
    _prototype(ncrypt.NCryptFreeObject, ctypes.c_int32, _ULONG_PTR)
    return ncrypt


@functools.cache
def _crypt32_store() -> Any:
    return declare_crypt32_store(_dll("crypt32"))


@functools.cache
def _ncrypt() -> Any:
    return declare_ncrypt(_dll("ncrypt"))


def _status_error(status: int, target: str | None = None) -> OSError:
    """An OSError for an HRESULT / SECURITY_STATUS (NTE_*, CRYPT_E_*) with Windows' message."""
    code = status & 0xFFFFFFFF
    message = ctypes.FormatError(code).strip()  # type: ignore[attr-defined,unused-ignore]
    return OSError(0, message, target, code)


def open_store(*, machine: bool) -> int:
    """The "My" store of the current user, or of the computer, read-only; close_store() it."""
    _require_windows("The Windows certificate store")
    flags = (CERT_SYSTEM_STORE_LOCAL_MACHINE if machine else CERT_SYSTEM_STORE_CURRENT_USER) \
        | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG
    store = _crypt32_store().CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, flags, "MY")
    if not store:
        raise _last_error("Cert:\\LocalMachine\\My" if machine else "Cert:\\CurrentUser\\My")
    return int(store)


def close_store(store: int) -> None:
    _crypt32_store().CertCloseStore(store, 0)


def find_certificate(store: int, sha1: bytes) -> Any:
    """The certificate context whose SHA-1 thumbprint is `sha1`, or None; free_certificate() it."""
    digest = ctypes.create_string_buffer(sha1, len(sha1))
    blob = DATA_BLOB(len(sha1), ctypes.cast(digest, POINTER(c_char)))
    context = _crypt32_store().CertFindCertificateInStore(
        store, X509_ASN_ENCODING | PKCS_7_ASN_ENCODING, 0, CERT_FIND_SHA1_HASH, byref(blob), None)
    if not context:
        code = ctypes.get_last_error()  # type: ignore[attr-defined,unused-ignore]
        if code & 0xFFFFFFFF in (CRYPT_E_NOT_FOUND, 0):
            return None
        raise _last_error()
    return context


def certificate_der(context: Any) -> bytes:
    """The DER bytes of a certificate context."""
    return ctypes.string_at(context.contents.pbCertEncoded, context.contents.cbCertEncoded)


def free_certificate(context: Any) -> None:
    _crypt32_store().CertFreeCertificateContext(context)


def acquire_key(context: Any) -> tuple[int, bool]:
    """The CNG key handle of the certificate's private key, and whether to free it.

    CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG: the key is used through CNG where it lives (software
    KSP, smart card, TPM), so a key marked non-exportable works; SILENT: a scheduled task has
    nobody to answer a prompt. OSError with Windows' code when the account may not use it.
    """
    key, spec, caller_frees = _ULONG_PTR(0), _DWORD(0), ctypes.c_int(0)
    if not _crypt32_store().CryptAcquireCertificatePrivateKey(
            context, CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | CRYPT_ACQUIRE_SILENT_FLAG, None,
            byref(key), byref(spec), byref(caller_frees)):
        raise _last_error()
    return int(key.value), bool(caller_frees.value)


def free_key(key: int) -> None:
    _ncrypt().NCryptFreeObject(key)


def sign_hash(key: int, digest: bytes, *, pss: bool) -> bytes:
    """RSA signature of a SHA-256 digest by a CNG key: PSS (salt 32 bytes, PS256) or PKCS#1 v1.5 (RS256)."""
    ncrypt = _ncrypt()
    padding: Any = BCRYPT_PSS_PADDING_INFO("SHA256", len(digest)) if pss else BCRYPT_PKCS1_PADDING_INFO("SHA256")
    flags = (BCRYPT_PAD_PSS if pss else BCRYPT_PAD_PKCS1) | NCRYPT_SILENT_FLAG
    size = _DWORD(0)
    # First call: the signature's size; second: the signature.
    status = ncrypt.NCryptSignHash(key, byref(padding), digest, len(digest), None, 0, byref(size), flags)
    if status:
        raise _status_error(status)
    signature = ctypes.create_string_buffer(size.value)
    status = ncrypt.NCryptSignHash(key, byref(padding), digest, len(digest),
                                   ctypes.cast(signature, POINTER(c_char)), size.value, byref(size), flags)
    if status:
        raise _status_error(status)
    return signature.raw[:size.value]
