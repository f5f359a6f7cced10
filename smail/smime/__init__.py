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

`certificates` loads and checks the certificates, `planning` decides how each message is
protected and protects it, `signing` and `encryption` build the two layers, `spool` holds the
content as the builders take it.
"""

from __future__ import annotations

from smail.smime.certificates import (
    RecipientCertificate,
    Signer,
    addresses_of,
    check_certificate,
    load_certificates,
    load_signer,
    recipients,
    store_signer,
)
from smail.smime.planning import Plan, Protection, plan, prepare, protect, record, replan, with_recipients
from smail.smime.signing import signature_of_digest

__all__ = ["Plan", "Protection", "RecipientCertificate", "Signer", "addresses_of", "check_certificate",
           "load_certificates", "load_signer", "plan", "prepare", "protect", "recipients", "record", "replan", "signature_of_digest",
           "store_signer", "with_recipients"]
