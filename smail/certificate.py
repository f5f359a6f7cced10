"""/O365_CERT_FILE: a .pfx/.p12, or PEM with the certificate and its private key, opened
with /O365_CERT_PASSWORD. Checked during validation (so that /DRY_RUN refuses what a real run
would) and turned into msal's client_credential. Imports cryptography: Graph paths only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from smail import files
from smail.errors import AuthError, ParamError
from smail.i18n import _, ngettext
from smail.redact import Secret

# A certificate credential this close to its end is said at every run, so that it is renewed
# (and the new one registered for the application) before the scheduled tasks start failing.
WARN_BEFORE: Final = timedelta(days=30)

_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z]+ )?PRIVATE KEY-----", re.DOTALL)
_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def unusable(path: Path | None, text: str, exc: Exception) -> AuthError:
    """A certificate credential that cannot be used (`text`: what refused it), exit 4."""
    return AuthError(_("The certificate {path} could not be used: {reason} (wrong /O365_CERT_PASSWORD?).").format(
        path=path, reason=text.splitlines()[0] if text else type(exc).__name__))


def _is_pfx(path: Path) -> bool:
    return path.suffix.lower() in (".pfx", ".p12")


def check_expiry(not_after: datetime, *, name: object, now: datetime | None = None) -> str | None:
    """A warning when fewer than 30 days are left; AuthError (exit 4) once it has expired:
    Entra refuses an expired certificate, so no request is made with it."""
    now = now or datetime.now(UTC)
    when = not_after.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not_after <= now:
        raise AuthError(_("The certificate {name} expired on {date}: renew it and register the new one for the application; nothing was sent.").format(
            name=name, date=when))
    left = not_after - now
    if left >= WARN_BEFORE:
        return None
    days = left.days
    return ngettext("The certificate {name} expires on {date}, in {n} day: renew it and register the new one for the application.",
                    "The certificate {name} expires on {date}, in {n} days: renew it and register the new one for the application.",
                    days).format(name=name, date=when, n=days)


def inspect(path: Path, password: Secret | None) -> str | None:
    """Open the certificate file as load() does; the expiry warning, if any (AuthError once expired)."""
    return _open(path, password)[1]


def load(path: Path, password: Secret | None) -> dict[str, Any]:
    """msal's client_credential for the certificate; ParamError when it cannot be opened,
    AuthError when it cannot be used or has expired."""
    return _open(path, password)[0]


def _open(path: Path, password: Secret | None) -> tuple[dict[str, Any], str | None]:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs12

    data = files.read_bounded(path)
    secret = password.reveal().encode("utf-8") if password else None
    try:
        if _is_pfx(path):
            key, cert, _extra = pkcs12.load_key_and_certificates(data, secret)
            if key is None or cert is None:
                raise ValueError("no key or no certificate")
            credential: dict[str, Any] = {"private_key_pfx_path": str(path)}
        else:
            key_pem, cert_pem = _KEY.search(data), _CERT.search(data)
            if not key_pem or not cert_pem:
                raise ParamError(_("/O365_CERT_FILE {path} must hold the certificate and its private key (PEM), or be a .pfx/.p12 file.").format(
                    path=path))
            load_pem_private_key(key_pem.group(0), secret)
            cert = x509.load_pem_x509_certificate(cert_pem.group(0))
            credential = {"private_key": key_pem.group(0).decode("ascii"),
                          "public_certificate": cert_pem.group(0).decode("ascii")}
    except (ValueError, TypeError) as exc:  # the credential cannot be used: exit 4, as Entra would refuse it
        raise unusable(path, str(exc), exc) from None
    warning = check_expiry(cert.not_valid_after_utc, name=path)
    if password:
        credential["passphrase"] = password.reveal()
    return credential, warning
