"""How one message is protected: the run's certificates loaded once (prepare), checked against
each message (plan, replan for an outbox entry), then the message signed and/or encrypted
(protect) and what an outbox entry keeps of it (record)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from smail.addresses import Mailbox
from smail.cloud import StoreThumbprint
from smail.errors import ParamError
from smail.i18n import _
from smail.message import Message
from smail.mime import Rendered, SMIMERecord, assemble, content, top_headers
from smail.settings import SMIMESettings
from smail.smime.certificates import (
    RecipientCertificate,
    Signer,
    addresses_of,
    check_certificate,
    load_signer,
    recipients,
    store_signer,
)
from smail.smime.encryption import enveloped
from smail.smime.signing import signed

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.hashes import HashAlgorithm


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


def prepare(settings: SMIMESettings) -> Protection:
    """The signing key and the recipients' certificates, loaded and checked (exit 2 or 8)."""
    signer = None
    if settings.sign_cert is not None:
        signer = load_signer(settings.sign_cert, settings.sign_password)
    elif settings.sign_thumbprint is not None:
        signer = store_signer(settings.sign_thumbprint, settings.sign_store)
    if signer is not None:
        check_certificate(signer.certificate, signer.path, signing=True)
    return Protection(signer=signer, recipients=recipients(settings.encrypt_to),
                      any_address=settings.sign_any_address, encrypt_self=settings.encrypt_self)


def with_recipients(protection: Protection, items: tuple[Path | StoreThumbprint, ...]) -> Protection:
    """The run's protection with a batch row's own ENCRYPT_TO certificates instead."""
    return Protection(signer=protection.signer, recipients=recipients(items), any_address=protection.any_address,
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
    # The sender's own certificate, added for the copy in Sent Items, serves the sender in To or Cc too.
    own_addresses = addresses_of(signer.certificate) if signer is not None and protection.encrypt_self else frozenset()
    missing = [box for box in message.recipients
               if box.address.lower() not in by_address and box.address.lower() not in own_addresses]
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



def protect(message: Message, plan: Plan) -> Rendered:
    """The message signed (when the plan has a signer), then encrypted (when it has certificates)."""
    entity = content(message)
    if plan.signer is not None:
        entity = signed(message, entity, plan.signer)
    if plan.encrypt_to:
        entity = enveloped(entity, plan.encrypt_to)
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
