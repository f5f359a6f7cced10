"""S/MIME encryption (RFC 8551 section 3.3): application/pkcs7-mime enveloped-data. The builder
takes the content and returns the whole enveloped data, so an encrypted message is held in
memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smail.mime import Segment
from smail.smime.spool import b64_blocks, spooled

if TYPE_CHECKING:
    from cryptography import x509


def enveloped(entity: list[Segment], certificates: tuple[x509.Certificate, ...]) -> list[Segment]:
    """application/pkcs7-mime enveloped-data (RFC 8551 section 3.3), AES-256-CBC, one recipient
    info per certificate."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.serialization import pkcs7

    with spooled(entity) as mapped:
        # The builder's type hint says bytes; it takes any buffer, as the signature builder does.
        builder = pkcs7.PKCS7EnvelopeBuilder().set_data(mapped)  # type: ignore[arg-type]
        for certificate in certificates:
            builder = builder.add_recipient(certificate)
        builder = builder.set_content_encryption_algorithm(algorithms.AES256)
        enveloped_data = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    head = (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
            b" name=\"smime.p7m\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n")
    return [head, *b64_blocks(enveloped_data)]
