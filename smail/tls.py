"""One ssl.SSLContext factory for SMTP and HTTPS: the OS verifier, /CA_FILE, minimum version."""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from smail.errors import ParamError, TLSError
from smail.i18n import _

log = logging.getLogger("smail")


class TLSMode(Enum):
    AUTO = "AUTO"
    STARTTLS = "STARTTLS"
    IMPLICIT = "IMPLICIT"
    NONE = "NONE"


class TLSVersion(Enum):
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


def no_pem_certificates(path: Path) -> ParamError:
    """/CA_FILE names a file without a certificate that can be trusted (exit 2)."""
    return ParamError(_("/CA_FILE {path} does not contain PEM certificates.").format(path=path))


@dataclass(frozen=True, kw_only=True)
class TLSSettings:
    min_version: TLSVersion | None = None
    ca_file: Path | None = None
    verify: bool = True


def verifier_failure(exc: BaseException) -> OSError | None:
    """The error the operating system's certificate verifier itself raised, if it is behind `exc`.

    truststore asks the OS to verify the chain after the handshake; when that call fails (on
    Windows, CertGetCertificateChain or CertVerifyCertificateChainPolicy returning an error such
    as E_INVALIDARG), it raises a plain OSError, which urllib3 wraps further. That is a failure
    to verify the server's certificate, not a connection failure, and is reported as such.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 32:
        error = pending.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and not isinstance(error, ssl.SSLError) and _raised_in_truststore(error):
            return error
        linked = [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
        pending.extend(e for e in linked if isinstance(e, BaseException))
    return None


def _raised_in_truststore(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith("truststore"):
            return True
        frame = frame.tb_next
    return False


def create_context(settings: TLSSettings) -> ssl.SSLContext:
    """A client context for SMTP and HTTPS alike: TLS 1.2 floor, /CA_FILE added.

    The operating system itself verifies the chain (truststore: CryptoAPI on Windows, which
    fetches missing roots on demand and sees the roots deployed by policy; the system store
    elsewhere). A store that cannot be used is exit 3 with its reason.
    """
    try:
        if settings.verify:
            import truststore

            context: ssl.SSLContext = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            log.warning(_("/SSL_NO_VERIFY: the server's certificate is not verified; the connection can be intercepted."))
        context.minimum_version = (ssl.TLSVersion.TLSv1_3 if settings.min_version is TLSVersion.TLSV1_3
                                   else ssl.TLSVersion.TLSv1_2)
    except Exception as exc:  # the OS store or the TLS library refused: never a bug (exit 7)
        raise TLSError(_("The system's certificate store could not be used: {reason}").format(
            reason=exc)) from exc
    if settings.ca_file is not None and settings.verify:
        try:
            context.load_verify_locations(cafile=str(settings.ca_file))
        except (ssl.SSLError, ValueError, OSError):
            raise no_pem_certificates(settings.ca_file) from None
    return context
