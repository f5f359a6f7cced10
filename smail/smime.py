"""S/MIME (RFC 8551): a rendered message signed (multipart/signed, detached) and/or encrypted
(application/pkcs7-mime enveloped-data), with cryptography's PKCS#7 builders.

Signing covers the message's content entity exactly as mime.content() writes it: CRLF line
ends and 7-bit text only (base64 and quoted-printable inside), so no relay can change a byte
of it. The builder needs the whole content as one buffer: the content is streamed once into
a temporary spool file, which the builder reads through a read-only memory map (file pages
the system can drop, not a copy in memory); the message then goes out from the original
files again, each checked against what was loaded (a file changed in between is exit 8).
Encryption has no such way out: the builder takes the content and returns the whole
enveloped data, so an encrypted message is held in memory.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import mmap
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from smail import files
from smail.addresses import Mailbox
from smail.cloud import CertStore
from smail.errors import AuthError, ParamError, SMailError
from smail.i18n import _
from smail.message import Message
from smail.mime import BLOCK, CRLF, Rendered, Segment, SMIMERecord, assemble, content, top_headers
from smail.redact import Secret
from smail.settings import SMIMESettings

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

log = logging.getLogger("smail")

_KEY: Final = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z]+ )?PRIVATE KEY-----", re.DOTALL)
# A certificate expiring within this many days is said in the log, once per run.
EXPIRY_WARNING_DAYS: Final = 30


@dataclass(frozen=True)
class Signer:
    """The signing key, its certificate and the rest of the chain found with it.

    A certificate of the Windows store keeps its key there: `sign_digest` has the system sign a
    SHA-256 digest (RSA, PKCS #1 v1.5), and `key` is a throwaway key of the same size, with
    which the builder signs only its stand-in (see _signature_of_digest).
    """

    path: Path | str            # the file, or the store certificate's thumbprint and store
    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    sign_digest: Callable[[bytes], bytes] | None = None


@dataclass(frozen=True)
class RecipientCertificate:
    path: Path
    certificate: x509.Certificate
    addresses: frozenset[str]


@dataclass(frozen=True)
class Protection:
    """What /SIGN_CERT and /ENCRYPT_TO give, loaded and checked once for the whole run."""

    signer: Signer | None
    recipients: tuple[RecipientCertificate, ...]
    any_address: bool
    encrypt_self: bool

    @property
    def encrypts(self) -> bool:
        return bool(self.recipients)


@dataclass(frozen=True)
class Plan:
    """How one message is protected: who signs, and the certificates it is encrypted to."""

    signer: Signer | None
    encrypt_to: tuple[x509.Certificate, ...]


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


def _recipient(path: Path, certificate: x509.Certificate) -> RecipientCertificate:
    from cryptography.hazmat.primitives.asymmetric import rsa

    check_certificate(certificate, path, signing=False)
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        # cryptography's PKCS7EnvelopeBuilder makes key transport recipient infos only (RSA).
        raise ParamError(_("The certificate {path} ({subject}) has no RSA key: SMail encrypts to RSA certificates only.").format(
            path=path, subject=_subject(certificate)))
    return RecipientCertificate(path=path, certificate=certificate, addresses=addresses_of(certificate))


def prepare(settings: SMIMESettings) -> Protection:
    """The signing key and the recipients' certificates, loaded and checked (exit 2 or 8)."""
    signer = None
    if settings.sign_cert is not None:
        signer = load_signer(settings.sign_cert, settings.sign_password)
    elif settings.sign_thumbprint is not None:
        signer = store_signer(settings.sign_thumbprint, settings.sign_store)
    if signer is not None:
        check_certificate(signer.certificate, signer.path, signing=True)
    recipients = tuple(_recipient(path, certificate) for path in settings.encrypt_to
                       for certificate in load_certificates(path))
    return Protection(signer=signer, recipients=recipients, any_address=settings.sign_any_address,
                      encrypt_self=settings.encrypt_self)


def with_recipients(protection: Protection, paths: tuple[Path, ...]) -> Protection:
    """The run's protection with a batch row's own ENCRYPT_TO certificates instead."""
    recipients = tuple(_recipient(path, certificate) for path in paths
                       for certificate in load_certificates(path))
    return Protection(signer=protection.signer, recipients=recipients, any_address=protection.any_address,
                      encrypt_self=protection.encrypt_self)


def plan(protection: Protection, message: Message) -> Plan:
    """Check the message against the certificates (exit 2 before anything is sent): the signer's
    certificate names the sender, every recipient has a certificate, and so has the sender."""
    sender = message.sender.address.lower()
    signer = protection.signer
    if signer is not None and not protection.any_address:
        names = addresses_of(signer.certificate)
        if sender not in names:
            raise ParamError(_("The signing certificate {path} is for {addresses}, not for the sender {sender}: recipients would see a warning. Give a certificate for {sender}, or /SIGN_ANY_ADDRESS.").format(
                path=signer.path, addresses=", ".join(sorted(names)) or _("no e-mail address"),
                sender=message.sender.address))
    if not protection.encrypts:
        return Plan(signer=signer, encrypt_to=())
    by_address: dict[str, RecipientCertificate] = {}
    for recipient in protection.recipients:
        for address in recipient.addresses:
            by_address.setdefault(address, recipient)
    missing = [box for box in message.recipients if box.address.lower() not in by_address]
    if missing:
        raise ParamError(_("/ENCRYPT_TO has no certificate for {addresses}: each recipient needs one to read the message.").format(
            addresses=", ".join(_shown(box) for box in missing)))
    chosen = [recipient.certificate for recipient in protection.recipients]
    if protection.encrypt_self:
        own = signer.certificate if signer is not None else (
            by_address[sender].certificate if sender in by_address else None)
        if own is None:
            raise ParamError(_("The sender {sender} needs a certificate too, so that the copy in Sent Items stays readable: give /SIGN_CERT, a certificate for {sender} in /ENCRYPT_TO, or /ENCRYPT_NO_SELF.").format(
                sender=message.sender.address))
        chosen.append(own)
    unique: dict[bytes, x509.Certificate] = {}
    for certificate in chosen:
        unique.setdefault(certificate.fingerprint(_sha256()), certificate)
    return Plan(signer=signer, encrypt_to=tuple(unique.values()))


def _sha256() -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _shown(box: Mailbox) -> str:
    return box.address


# -- the protected message -------------------------------------------------------------------------

@contextmanager
def _spool(segments: Iterable[Segment]) -> Iterator[memoryview]:
    """The segments' bytes in a temporary file (deleted on exit), mapped read-only."""
    with tempfile.TemporaryFile(prefix="smail-") as spool:
        for chunk in Rendered(tuple(segments)).chunks():
            spool.write(chunk)
        spool.flush()
        with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            yield view


def _b64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def _b64_blocks(data: bytes) -> list[Segment]:
    """`data` in base64 lines, block by block: no second copy of a large whole."""
    view = memoryview(data)
    return [_b64_lines(bytes(view[start:start + BLOCK])) for start in range(0, len(data), BLOCK)]


def _signature(signer: Signer, data: bytes | memoryview) -> bytes:
    """cryptography's detached SignedData over `data`, DER."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
        signer.certificate, signer.key, hashes.SHA256())  # type: ignore[arg-type]
    for certificate in signer.chain:
        builder = builder.add_certificate(certificate)
    # Binary: the content is already canonical (CRLF, 7-bit); Text would add a header to it.
    return builder.sign(serialization.Encoding.DER,
                        [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    """A DER length at `at` (X.690 section 8.1.3): (length, where the content starts)."""
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    return int.from_bytes(data[at + 1:at + 1 + count], "big"), at + 1 + count


def _key_signs(signer: Signer, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    if signer.sign_digest is not None:
        return signer.sign_digest(hashlib.sha256(data).digest())
    if isinstance(signer.key, rsa.RSAPrivateKey):
        return signer.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey)
    return signer.key.sign(data, ec.ECDSA(hashes.SHA256()))


def _builder_key_verifies(signer: Signer, signature: bytes, data: bytes) -> bool:
    """Whether the builder's own signature (made with `signer.key`) is over `data`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    public = signer.key.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


STAND_IN: Final = b"SMail\r\n"


def _signature_of_digest(signer: Signer, digest: bytes) -> bytes | None:
    """The builder's SignedData for content whose SHA-256 is `digest`, without the content.

    The builder signs only a buffer it is given whole. So it signs a stand-in, and its
    messageDigest attribute (RFC 5652 section 11.2: 32 bytes, so no length changes) is set to
    `digest`; the signed attributes (section 5.4: their DER with the SET tag) are then signed
    again with the same key, and the new signature, of the same length, replaces the old one.
    The attributes are the [0] before the digest over which the builder's own signature
    verifies, so nothing else can be taken for them. None when the layout is not that one.
    """
    der = _signature(signer, STAND_IN)
    old = hashlib.sha256(STAND_IN).digest()
    at = der.find(b"\x04\x20" + old)
    if at < 0 or der.find(old, at + 3) >= 0:
        return None
    for start in range(at - 1, max(at - 512, 0), -1):
        if der[start] != 0xA0:  # signedAttrs [0] IMPLICIT SET OF Attribute
            continue
        length, body = _der_length(der, start + 1)
        end = body + length
        if not body <= at < at + 34 <= end < len(der) or der[end] != 0x30:
            continue
        algorithm_length, algorithm = _der_length(der, end + 1)  # signatureAlgorithm
        at_signature = algorithm + algorithm_length
        if at_signature >= len(der) or der[at_signature] != 0x04:
            continue
        signature_length, signature = _der_length(der, at_signature + 1)
        attributes = b"\x31" + der[start + 1:end]
        if not _builder_key_verifies(signer, der[signature:signature + signature_length], attributes):
            continue
        offset = at + 2 - start
        attributes = attributes[:offset] + digest + attributes[offset + 32:]
        for _attempt in range(64):  # an ECDSA signature's length varies; RSA's never does
            new = _key_signs(signer, attributes)
            if len(new) == signature_length:
                return (der[:at + 2] + digest + der[at + 34:signature] + new
                        + der[signature + signature_length:])
        return None
    return None


def _signed(message: Message, entity: list[Segment], signer: Signer) -> list[Segment]:
    """multipart/signed (RFC 1847, RFC 8551 section 3.5.3): the entity as it is, then its signature."""
    from smail.mime import boundary

    digest = hashlib.sha256()
    for chunk in Rendered(tuple(entity)).chunks():  # read once, block by block: memory stays flat
        digest.update(chunk)
    signature = _signature_of_digest(signer, digest.digest())
    if signature is None and signer.sign_digest is not None:
        raise SMailError(_("The message could not be signed with the certificate {thumbprint}: this version of cryptography lays its signatures out in a way SMail does not know.").format(
            thumbprint=signer.path))
    if signature is None:  # the builder changed its layout: let it read the whole content
        log.debug("S/MIME: the signature is made over a memory map of the whole content.")
        with _spool(entity) as mapped:
            signature = _signature(signer, mapped)
    mark = boundary(message.message_id, "signed", [entity])
    head = ("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
            f" micalg=sha-256; boundary=\"{mark}\"\r\n\r\n"
            "This is a signed message (S/MIME).\r\n\r\n"
            f"--{mark}\r\n").encode("ascii")
    tail = (f"\r\n--{mark}\r\n"
            "Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n").encode("ascii")
    return [head, *entity, tail, _b64_lines(signature), f"--{mark}--\r\n".encode("ascii")]


def _enveloped(entity: list[Segment], certificates: tuple[x509.Certificate, ...]) -> list[Segment]:
    """application/pkcs7-mime enveloped-data (RFC 8551 section 3.3), AES-256-CBC, one recipient
    info per certificate."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.serialization import pkcs7

    with _spool(entity) as mapped:
        # The builder's type hint says bytes; it takes any buffer, as the signature builder does.
        builder = pkcs7.PKCS7EnvelopeBuilder().set_data(mapped)  # type: ignore[arg-type]
        for certificate in certificates:
            builder = builder.add_recipient(certificate)
        builder = builder.set_content_encryption_algorithm(algorithms.AES256)
        enveloped = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    head = (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
            b" name=\"smime.p7m\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
    return [head, *_b64_blocks(enveloped)]


def protect(message: Message, plan: Plan) -> Rendered:
    """The message signed (when the plan has a signer), then encrypted (when it has certificates)."""
    entity = content(message)
    if plan.signer is not None:
        entity = _signed(message, entity, plan.signer)
    if plan.encrypt_to:
        entity = _enveloped(entity, plan.encrypt_to)
    return assemble(top_headers(message), entity, smime=record(plan))


def record(plan: Plan) -> SMIMERecord:
    """What an outbox entry keeps of the plan: whether to sign, and the public certificates."""
    from cryptography.hazmat.primitives import serialization

    return SMIMERecord(signed=plan.signer is not None, encrypt_to=tuple(
        c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in plan.encrypt_to))


def replan(kept: SMIMERecord, signer: Signer | None, message: Message, *, any_address: bool) -> Plan:
    """The plan for a message an outbox entry kept: signed by the flush's signer (ParamError when
    the flush has none, or one for another address), encrypted to the certificates it kept."""
    from cryptography import x509

    if kept.signed and signer is None:
        raise ParamError(_("This message is to be signed: give /SIGN_CERT (or /SIGN_CERT_THUMBPRINT) to /FLUSH. It is never sent unsigned."))
    certificates = tuple(x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in kept.encrypt_to)
    checked = plan(Protection(signer=signer if kept.signed else None, recipients=(), any_address=any_address,
                               encrypt_self=False), message)
    return Plan(signer=checked.signer, encrypt_to=certificates)
