"""One ssl.SSLContext factory for SMTP and HTTPS: OS trust store, /CA_FILE, minimum version."""

from __future__ import annotations

import logging
import ssl

from smail.config import TLSSettings
from smail.errors import ParamError
from smail.i18n import _
from smail.options import TLSVersion

log = logging.getLogger("smail")


def create_context(settings: TLSSettings, *, os_verifier: bool = False) -> ssl.SSLContext:
    """Verify against the OS store (the Windows store on Windows) plus /CA_FILE; TLS 1.2 floor.

    With `os_verifier` (HTTPS), the operating system itself verifies the chain (truststore:
    CryptoAPI on Windows, so TLS-inspecting corporate proxies work); /CA_FILE still adds CAs.
    """
    context: ssl.SSLContext
    if os_verifier:
        import truststore

        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = (ssl.TLSVersion.TLSv1_3 if settings.min_version is TLSVersion.TLSV1_3
                               else ssl.TLSVersion.TLSv1_2)
    if settings.ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(settings.ca_file))
        except (ssl.SSLError, ValueError, OSError):
            raise ParamError(_("/CA_FILE {path} does not contain PEM certificates.").format(
                path=settings.ca_file)) from None
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(_("/SSL_NO_VERIFY: the server's certificate is not verified; the connection can be intercepted."))
    return context
