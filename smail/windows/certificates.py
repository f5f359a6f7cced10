"""The Windows certificate store and CNG: a certificate found by thumbprint, and its private
key signing where it lives (software KSP, smart card, TPM)."""

from __future__ import annotations

import ctypes
import functools
from ctypes import POINTER, Structure, byref, c_char, c_void_p, c_wchar_p
from typing import Any

from smail.windows.native import _DWORD, DATA_BLOB, _dll, _last_error, _prototype, _require_windows

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


def open_store(*, machine: bool, name: str = "MY") -> int:
    """A system store of the current user, or of the computer, read-only: "MY" (Personal),
    where certificates with their keys are, or "AddressBook" (Other People), where the
    certificates of correspondents are; close_store() it."""
    _require_windows("The Windows certificate store")
    flags = (CERT_SYSTEM_STORE_LOCAL_MACHINE if machine else CERT_SYSTEM_STORE_CURRENT_USER) \
        | CERT_STORE_OPEN_EXISTING_FLAG | CERT_STORE_READONLY_FLAG
    store = _crypt32_store().CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, flags, name)
    if not store:
        raise _last_error(f"Cert:\\{'LocalMachine' if machine else 'CurrentUser'}\\{'My' if name == 'MY' else name}")
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
