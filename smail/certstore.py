"""/O365_CERT_THUMBPRINT: a certificate credential of the Windows certificate store ("My" of the
current user or of the computer). The private key never leaves the store: the client assertion
is signed by CNG (smail.windows), so keys marked non-exportable, or held by a TPM, work.

Every Windows call goes through the `api` object (smail.windows by default), so that what is
decided here (which store, which advice for which failure) is tested on every OS.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from smail import certificate, windows
from smail.assertion import Sign
from smail.cloud import CertStore
from smail.errors import AuthError, ParamError
from smail.i18n import _


def _store_path(name: str, store: CertStore) -> str:
    """How PowerShell names the system store `name` ("MY", "AddressBook") of `store`."""
    return f"Cert:\\{'LocalMachine' if store is CertStore.MACHINE else 'CurrentUser'}\\{'My' if name == 'MY' else name}"


_WHERE = {store: _store_path("MY", store) for store in CertStore}
# Failures that mean "this account may not use the key": the advice is the right to grant.
_DENIED = frozenset({windows.NTE_PERM, windows.E_ACCESSDENIED, windows.ERROR_ACCESS_DENIED,
                     windows.NTE_BAD_KEYSET, windows.NTE_SILENT_CONTEXT})


@dataclass(frozen=True)
class StoreCertificate:
    """A certificate found in a store: its DER bytes, and a signer that uses its private key."""

    thumbprint: str
    store: CertStore
    der: bytes
    sign: Sign

    @property
    def where(self) -> str:
        return _WHERE[self.store]


def _stores(store: CertStore | None) -> tuple[CertStore, ...]:
    return (store,) if store is not None else (CertStore.USER, CertStore.MACHINE)


def _account() -> str:
    try:
        return os.environ.get("USERNAME") or getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "?"


@contextmanager
def _context(api: Any, store: CertStore, thumbprint: str, name: str = "MY") -> Iterator[Any]:
    """The certificate context in the store `name` of `store` (None when absent), freed and
    closed afterwards."""
    handle = api.open_store(machine=store is CertStore.MACHINE, name=name)
    try:
        context = api.find_certificate(handle, bytes.fromhex(thumbprint))
        try:
            yield context
        finally:
            if context:
                api.free_certificate(context)
    finally:
        api.close_store(handle)


def windows_code(exc: OSError) -> int:
    """The Windows error code an OSError carries: winerror on Windows; off Windows, where
    OSError drops it, the fourth argument smail.windows gives it."""
    code = getattr(exc, "winerror", None)
    if not isinstance(code, int):
        code = exc.args[3] if len(exc.args) >= 4 and isinstance(exc.args[3], int) else exc.errno or 0
    return code & 0xFFFFFFFF


def key_error(exc: OSError, found: StoreCertificate) -> AuthError:
    """Why the private key cannot be used, with the advice that fits (exit 4)."""
    code = windows_code(exc)
    reason = exc.strerror or str(exc)
    if code == windows.CRYPT_E_NO_KEY_PROPERTY:
        return AuthError(_("The certificate {thumbprint} in {where} has no private key on this computer: import it with its key (a .pfx), or create it here.").format(
            thumbprint=found.thumbprint, where=found.where))
    if code in _DENIED:
        return AuthError(_("The account {user} may not use the private key of the certificate {thumbprint} ({where}): grant it Read permission on the private key (certlm.msc > the certificate > All Tasks > Manage Private Keys). Windows says: {reason}").format(
            user=_account(), thumbprint=found.thumbprint, where=found.where, reason=reason))
    if code == windows.NTE_BAD_PROVIDER:
        return AuthError(_("The private key of the certificate {thumbprint} ({where}) is held by a legacy CryptoAPI provider, which CNG cannot use: import it again with a CNG provider (Microsoft Software Key Storage Provider). Windows says: {reason}").format(
            thumbprint=found.thumbprint, where=found.where, reason=reason))
    return AuthError(_("The private key of the certificate {thumbprint} ({where}) could not be used: {reason}").format(
        thumbprint=found.thumbprint, where=found.where, reason=reason))


def _signer(api: Any, store: CertStore, thumbprint: str) -> Sign:
    def sign(digest: bytes, pss: bool) -> bytes:
        with _context(api, store, thumbprint) as context:
            if not context:
                raise OSError(0, "the certificate left the store", None, windows.CRYPT_E_NOT_FOUND)
            key, must_free = api.acquire_key(context)
            try:
                return bytes(api.sign_hash(key, digest, pss=pss))
            finally:
                if must_free:
                    api.free_key(key)
    return sign


def find(thumbprint: str, store: CertStore | None, *, api: Any = windows) -> StoreCertificate:
    """The certificate with this SHA-1 thumbprint, in `store` or else the user's then the
    computer's; AuthError (exit 4) when no store holds it or a store cannot be opened."""
    for where in _stores(store):
        try:
            with _context(api, where, thumbprint) as context:
                if context:
                    return StoreCertificate(thumbprint, where, api.certificate_der(context),
                                            _signer(api, where, thumbprint))
        except OSError as exc:
            if windows_code(exc) == windows.ERROR_FILE_NOT_FOUND:
                continue  # a profile whose My store was never created holds no certificate
            raise AuthError(_("The certificate store {where} could not be opened: {reason}").format(
                where=_WHERE[where], reason=exc.strerror or exc)) from None
    raise AuthError(_("No certificate with the thumbprint {thumbprint} is in {stores}: check /O365_CERT_THUMBPRINT and /O365_CERT_STORE (certlm.msc shows the computer's, certmgr.msc the user's).").format(
        thumbprint=thumbprint, stores=" / ".join(_WHERE[s] for s in _stores(store))))


def open_signer(thumbprint: str, store: CertStore | None, *, api: Any = windows) -> StoreCertificate:
    """find(), after checking that the certificate has not expired and its key can sign."""
    found = find(thumbprint, store, api=api)
    check(found)
    try:
        found.sign(b"\0" * 32, True)  # the key is opened (and refused) now, not mid-way
    except OSError as exc:
        raise key_error(exc, found) from None
    return found


def check(found: StoreCertificate) -> str | None:
    """certificate.check_expiry() for a store certificate: the warning, or AuthError once expired."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(found.der)
    return certificate.check_expiry(cert.not_valid_after_utc,
                                    name=f"{found.thumbprint} ({found.where})")


def inspect(thumbprint: str, store: CertStore | None, *, api: Any = windows) -> str | None:
    """The checks of a run before any request (missing, expired, unusable key): the expiry warning."""
    return check(open_signer(thumbprint, store, api=api))


# Where /ENCRYPT_TO's thumbprints are looked for, in this order: the correspondents' certificates
# (Other People, where Outlook and certmgr.msc put them), then the Personal stores, which hold
# the sender's own.
_PUBLIC_STORES: tuple[tuple[str, CertStore], ...] = (
    ("AddressBook", CertStore.USER), ("AddressBook", CertStore.MACHINE), ("MY", CertStore.USER),
    ("MY", CertStore.MACHINE))


def find_public(thumbprint: str, *, api: Any = windows) -> tuple[bytes, str]:
    """The DER bytes of the certificate with this SHA-1 thumbprint, and the store it was found
    in, for encrypting to it (no key needed); ParamError (exit 2) when no store holds it."""
    for name, store in _PUBLIC_STORES:
        try:
            with _context(api, store, thumbprint, name) as context:
                if context:
                    return api.certificate_der(context), _store_path(name, store)
        except OSError as exc:
            if windows_code(exc) == windows.ERROR_FILE_NOT_FOUND:
                continue  # a store never created holds no certificate
            raise ParamError(_("The certificate store {where} could not be opened: {reason}").format(
                where=_store_path(name, store), reason=exc.strerror or exc)) from None
    raise ParamError(_("No certificate with the thumbprint {thumbprint} is in {stores}: check /ENCRYPT_TO (certmgr.msc > Other People shows the user's correspondents).").format(
        thumbprint=thumbprint, stores=" / ".join(_store_path(name, store) for name, store in _PUBLIC_STORES)))
