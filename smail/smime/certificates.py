"""The certificates of S/MIME: the signer's key and certificate (a .pfx/.p12 or PEM file, or the
Windows store), the recipients' certificates, and the checks that make each fit for S/MIME now
(dates, extended key usage, key usage); ParamError (exit 2) naming the file."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from smail import files
from smail.cloud import CertStore, StoreThumbprint
from smail.errors import AuthError, ParamError
from smail.i18n import _
from smail.redact import Secret

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

log = logging.getLogger("smail")

_KEY: Final = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z]+ )?PRIVATE KEY-----", re.DOTALL)
# A certificate expiring within this many days is said in the log, once per run.
EXPIRY_WARNING_DAYS: Final = 30


@dataclass(frozen=True)
class Signer:
    """The signing key, its certificate and the rest of the chain found with it.

    A certificate of the Windows store keeps its key there: `sign_digest` has the system sign a
    SHA-256 digest (RSA, PKCS #1 v1.5), and `key` is a throwaway key of the same size, with
    which the builder signs only its stand-in (see signing.signature_of_digest).
    """

    path: Path | str            # the file, or the store certificate's thumbprint and store
    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    sign_digest: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True)
class RecipientCertificate:
    path: Path | str            # the file, or the store certificate's thumbprint and store
    certificate: x509.Certificate
    addresses: frozenset[str]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def addresses_of(certificate: x509.Certificate) -> frozenset[str]:
    """The e-mail addresses a certificate names (SAN rfc822Name, subject emailAddress), lower case."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    found = {attribute.value for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
             if isinstance(attribute.value, str)}
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        found.update(san.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        pass
    return frozenset(address.strip().lower() for address in found)


def _subject(certificate: x509.Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string()
    except ValueError:
        return "?"


def check_certificate(certificate: x509.Certificate, path: Path | str, *, signing: bool,
                      now: datetime.datetime | None = None) -> None:
    """A certificate fit for S/MIME now: within its dates, e-mail protection in its extended
    key usage, the key usage signing or encryption needs; ParamError (exit 2) naming the file."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = now or _now()
    subject = _subject(certificate)
    if certificate.not_valid_after_utc < now:
        raise ParamError(_("The certificate {path} ({subject}) expired on {date}.").format(
            path=path, subject=subject, date=certificate.not_valid_after_utc.strftime("%Y-%m-%d")))
    if certificate.not_valid_before_utc > now:
        raise ParamError(_("The certificate {path} ({subject}) is not valid before {date}.").format(
            path=path, subject=subject, date=certificate.not_valid_before_utc.strftime("%Y-%m-%d")))
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        protects = ExtendedKeyUsageOID.EMAIL_PROTECTION in usages
    except x509.ExtensionNotFound:
        protects = False
    if not protects:
        raise ParamError(_("The certificate {path} ({subject}) is not valid for e-mail protection (its extended key usage does not include emailProtection).").format(
            path=path, subject=subject))
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is not None:
        if signing and not (key_usage.digital_signature or key_usage.content_commitment):
            raise ParamError(_("The key usage of the certificate {path} ({subject}) does not allow signing.").format(
                path=path, subject=subject))
        if not signing and not key_usage.key_encipherment:
            raise ParamError(_("The key usage of the certificate {path} ({subject}) does not allow encryption.").format(
                path=path, subject=subject))
    days = (certificate.not_valid_after_utc - now).days
    if days < EXPIRY_WARNING_DAYS:
        log.warning(_("The certificate {path} ({subject}) expires in {days} days.").format(
            path=path, subject=subject, days=days))


def load_signer(path: Path, password: Secret | None) -> Signer:
    """The key and certificates of a .pfx/.p12 or PEM file; ParamError when it cannot be opened."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = files.read_bounded(path)
    secret = password.reveal().encode("utf-8") if password is not None else None
    key: PrivateKeyTypes | None
    try:
        if data.lstrip()[:1] == b"-":  # PEM: the certificates and the key, in any order
            certificates = x509.load_pem_x509_certificates(data)
            key_pem = _KEY.search(data)
            if key_pem is None:
                raise ValueError("no private key")
            key = serialization.load_pem_private_key(key_pem.group(0), secret)
        else:
            key, first, extra = pkcs12.load_key_and_certificates(data, secret)
            certificates = [c for c in (first, *extra) if c is not None]
    except (ValueError, TypeError) as exc:
        raise ParamError(_("The signing certificate {path} could not be opened ({reason}): it must be a .pfx/.p12 file, or PEM with the certificate and its private key; is /SIGN_CERT_PASSWORD right?").format(
            path=path, reason=_first_line(exc))) from None
    if key is None or not certificates:
        raise ParamError(_("The signing certificate {path} must hold a certificate and its private key.").format(path=path))
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ParamError(_("The key of {path} is neither RSA nor elliptic-curve: S/MIME signing needs one of those.").format(
            path=path))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    own = [c for c in certificates if c.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public]
    if not own:
        raise ParamError(_("No certificate in {path} matches its private key.").format(path=path))
    return Signer(path=path, key=key, certificate=own[0],
                  chain=tuple(c for c in certificates if c is not own[0]))


def store_signer(thumbprint: str, store: CertStore | None, *, api: Any = None) -> Signer:
    """The certificate with this thumbprint in the Windows store "My" (certstore.find), its key
    left there; ParamError (exit 2) when no store holds it or it cannot sign, AuthError (exit 4)
    when this account may not use the key. The key is tried now, before anything is sent."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    from smail import certstore

    where = f"{thumbprint} ({'MACHINE' if store is CertStore.MACHINE else 'USER'})"
    try:
        found = certstore.find(thumbprint, store, **({"api": api} if api is not None else {}))
    except AuthError:
        raise ParamError(_("No certificate with the thumbprint {thumbprint} could be found in the store: check /SIGN_CERT_THUMBPRINT and /SIGN_CERT_STORE (certmgr.msc shows the user's, certlm.msc the computer's).").format(
            thumbprint=thumbprint)) from None
    certificate = x509.load_der_x509_certificate(found.der)
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ParamError(_("The certificate {thumbprint} has no RSA key: SMail signs with store certificates holding RSA keys only.").format(
            thumbprint=thumbprint))

    def sign_digest(digest: bytes) -> bytes:
        try:
            return found.sign(digest, False)
        except OSError as exc:
            raise certstore.key_error(exc, found) from None
    sign_digest(b"\0" * 32)  # the key is opened (and refused) now, not mid-way
    stand_in_key = rsa.generate_private_key(public_exponent=65537, key_size=public.key_size)
    return Signer(path=where, key=stand_in_key, certificate=certificate, chain=(), sign_digest=sign_digest)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """The certificates of a .cer/.crt/.pem file (PEM, or one DER certificate); ParamError otherwise."""
    from cryptography import x509

    data = files.read_bounded(path)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError as exc:
        raise ParamError(_("{path} is not a certificate (PEM or DER): {reason}").format(
            path=path, reason=_first_line(exc))) from None


def recipients(items: tuple[Path | StoreThumbprint, ...], *, api: Any = None) -> tuple[RecipientCertificate, ...]:
    """The certificates /ENCRYPT_TO (or a row's cell) names, files or store certificates, each
    checked as an encryption certificate (ParamError, exit 2, otherwise)."""
    found: list[RecipientCertificate] = []
    for item in items:
        if isinstance(item, StoreThumbprint):
            where, certificate = store_recipient(item, api=api)
            found.append(recipient_certificate(where, certificate))
        else:
            found += [recipient_certificate(item, certificate) for certificate in _without_chain(load_certificates(item))]
    return tuple(found)


def _is_authority(certificate: x509.Certificate) -> bool:
    from cryptography import x509

    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _without_chain(certificates: tuple[x509.Certificate, ...]) -> tuple[x509.Certificate, ...]:
    """A recipient's file exported with its chain (its certificate, then the CAs that issued it)
    names the recipient by its certificates that are no CA's: the CAs are not encrypted to."""
    own = tuple(certificate for certificate in certificates if not _is_authority(certificate))
    return own or certificates


def store_recipient(thumbprint: StoreThumbprint, *, api: Any = None) -> tuple[str, x509.Certificate]:
    """The certificate with this thumbprint in the Windows store (Other People first, see
    certstore.find_public), and where it was found."""
    from cryptography import x509

    from smail import certstore

    der, store = certstore.find_public(thumbprint.hex, **({"api": api} if api is not None else {}))
    where = f"{thumbprint} ({store})"
    try:
        return where, x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ParamError(_("{path} is not a certificate (PEM or DER): {reason}").format(
            path=where, reason=_first_line(exc))) from None


def recipient_certificate(path: Path | str, certificate: x509.Certificate) -> RecipientCertificate:
    from cryptography.hazmat.primitives.asymmetric import rsa

    check_certificate(certificate, path, signing=False)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        # cryptography's PKCS7EnvelopeBuilder makes key transport recipient infos only (RSA).
        raise ParamError(_("The certificate {path} ({subject}) has no RSA key: SMail encrypts to RSA certificates only.").format(
            path=path, subject=_subject(certificate)))
    return RecipientCertificate(path=path, certificate=certificate, addresses=addresses_of(certificate))
