"""S/MIME signing (RFC 8551 section 3.5.3): multipart/signed with a detached SignedData made by
cryptography's PKCS#7 builder, over the content read once, block by block; a store key signs
only a digest, through the system."""

from __future__ import annotations

import hashlib
import logging
from typing import Final

from smail.errors import SMailError
from smail.i18n import _
from smail.message import Message
from smail.mime import Rendered, Segment
from smail.smime.certificates import Signer
from smail.smime.spool import b64_lines, spooled

log = logging.getLogger("smail")


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


def signature_of_digest(signer: Signer, digest: bytes) -> bytes | None:
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


def signed(message: Message, entity: list[Segment], signer: Signer) -> list[Segment]:
    """multipart/signed (RFC 1847, RFC 8551 section 3.5.3): the entity as it is, then its signature."""
    from smail.mime import boundary

    digest = hashlib.sha256()
    for chunk in Rendered(tuple(entity)).chunks():  # read once, block by block: memory stays flat
        digest.update(chunk)
    signature = signature_of_digest(signer, digest.digest())
    if signature is None and signer.sign_digest is not None:
        raise SMailError(_("The message could not be signed with the certificate {thumbprint}: this version of cryptography lays its signatures out in a way SMail does not know.").format(
            thumbprint=signer.path))
    if signature is None:  # the builder changed its layout: let it read the whole content
        log.debug("S/MIME: the signature is made over a memory map of the whole content.")
        with spooled(entity) as mapped:
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
    return [head, *entity, tail, b64_lines(signature), f"--{mark}--\r\n".encode("ascii")]
