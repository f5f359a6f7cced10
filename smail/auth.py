"""App-only OAuth2 tokens from the Microsoft identity platform (msal client credentials).

Imported only on the Graph and XOAUTH2-with-app paths, so msal, requests and cryptography stay
out of plain SMTP runs. msal reports refusals as dicts and lets network failures escape as
requests exceptions: both become SMail errors here.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final
from urllib.parse import urlsplit

import msal
import requests

from smail import httpclient, redact
from smail.config import AppCredentials, TLSSettings
from smail.errors import AuthError, FileMissingError, ParamError, SMailError
from smail.i18n import _
from smail.redact import Secret

log = logging.getLogger("smail")

# Hosts msal knows (reference, section 4): anything else is a private endpoint, for which
# instance discovery against login.microsoftonline.com must be turned off.
MICROSOFT_HOSTS: Final = frozenset({
    "login.microsoftonline.com", "login.microsoft.com", "login.windows.net", "sts.windows.net",
    "login.microsoftonline.us", "login-us.microsoftonline.com", "login.usgovcloudapi.net",
    "login.partner.microsoftonline.cn", "login.chinacloudapi.cn"})

# AADSTS codes (reference, section 5.1) -> the probable cause, said to the user.
_CAUSES: Final = (
    ({90002, 900023, 90038}, "tenant"),
    ({700016, 700011}, "app"),
    ({7000112}, "disabled"),
    ({7000215, 70002}, "secret"),
    ({7000222}, "expired"),
    ({7000218}, "credential"),
    ({700027, 50012}, "certificate"),
    ({700024}, "clock"),
    ({1002012, 70011}, "scope"),
    ({500011}, "resource"),
    ({53003}, "policy"),
)
_TRANSIENT_CODES: Final = frozenset({90006, 90024, 90033, 90090, 50196})


def _cause(key: str, app: AppCredentials) -> str:
    causes = {
        "tenant": _("the tenant {tenant} does not exist (check /O365_TENANT_ID and /O365_CLOUD)"),
        "app": _("the application {app_id} is not registered in tenant {tenant} (check /O365_APP_ID)"),
        "disabled": _("the application {app_id} is disabled in tenant {tenant}"),
        "secret": _("the client secret is wrong (often the secret's ID was pasted instead of its value)"),
        "expired": _("the client secret has expired: create a new one in the app registration"),
        "credential": _("no client secret or certificate was accepted for the application"),
        "certificate": _("the certificate is not registered for the application, or its signature is invalid"),
        "clock": _("the certificate assertion is outside its validity time: check this computer's clock"),
        "scope": _("the requested scope is invalid for the client credentials flow"),
        "resource": _("the API is not available in tenant {tenant}"),
        "policy": _("a Conditional Access policy of tenant {tenant} blocks the application"),
    }
    return causes[key].format(tenant=app.tenant_id, app_id=app.app_id)


def _codes(result: dict[str, Any]) -> set[int]:
    codes = {int(c) for c in result.get("error_codes", []) if str(c).isdigit()}
    codes.update(int(c) for c in re.findall(r"AADSTS(\d+)", str(result.get("error_description", ""))))
    return codes


def refusal(result: dict[str, Any], app: AppCredentials, retry_after: float | None = None) -> SMailError:
    """An msal error dict -> AuthError naming the probable cause (transient ones are retried)."""
    codes = _codes(result)
    error = str(result.get("error", "?"))
    description = redact.redact(str(result.get("error_description", "")).splitlines()[0]
                                if result.get("error_description") else "")
    if codes & _TRANSIENT_CODES or error == "temporarily_unavailable":
        return AuthError(_("The identity platform is temporarily unavailable: {description}").format(
            description=description or error), transient=True, retry_after=retry_after)
    for known, key in _CAUSES:
        if codes & known:
            return AuthError(_("The identity platform refused the application: {cause} ({details}).").format(
                cause=_cause(key, app), details=description or error))
    return AuthError(_("The identity platform refused the application: {error}: {description}").format(
        error=error, description=description))


def _credential(app: AppCredentials) -> str | dict[str, Any]:
    """msal's client_credential: the secret, or the certificate in its SHA-256 thumbprint form."""
    if app.secret is not None:
        return app.secret.reveal()
    assert app.cert_file is not None
    password = app.cert_password.reveal() if app.cert_password else None
    if app.cert_file.suffix.lower() in (".pfx", ".p12"):
        credential: dict[str, Any] = {"private_key_pfx_path": str(app.cert_file)}
    else:
        text = app.cert_file.read_text(encoding="ascii", errors="replace")
        key = re.search(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z]+ )?PRIVATE KEY-----",
                        text, re.DOTALL)
        cert = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.DOTALL)
        if not key or not cert:
            raise ParamError(_("/O365_CERT_FILE {path} must hold the certificate and its private key (PEM), or be a .pfx/.p12 file.").format(
                path=app.cert_file))
        credential = {"private_key": key.group(0), "public_certificate": cert.group(0)}
    if password:
        credential["passphrase"] = password
    return credential


def _application(app: AppCredentials, session: httpclient.Session) -> msal.ConfidentialClientApplication:
    authority = f"{app.authority_host}/{app.tenant_id}"
    where = urlsplit(app.authority_host).netloc
    private = urlsplit(app.authority_host).hostname not in MICROSOFT_HOSTS
    try:
        return msal.ConfidentialClientApplication(
            app.app_id, client_credential=_credential(app), authority=authority, http_client=session,
            instance_discovery=False if private else None, token_cache=msal.TokenCache())
    except OSError as exc:  # the certificate file (msal opens a .pfx itself)
        if isinstance(exc, requests.RequestException):
            raise httpclient.network_error(exc, where) from exc
        raise FileMissingError.unreadable(app.cert_file, exc) from None
    except requests.RequestException as exc:
        raise httpclient.network_error(exc, where) from exc
    except msal.exceptions.MsalServiceError as exc:  # discovery answered 5xx
        raise AuthError(_("The identity platform is temporarily unavailable: {description}").format(
            description=redact.redact(str(exc))), transient=True) from exc
    except ValueError as exc:
        text = redact.redact(str(exc))
        if "authority" in text.lower() or "tenant" in text.lower():
            raise AuthError(_("The identity platform refused the application: {cause} ({details}).").format(
                cause=_cause("tenant", app), details=text.splitlines()[0])) from exc
        raise AuthError(_("The certificate {path} could not be used: {reason} (wrong /O365_CERT_PASSWORD?).").format(
            path=app.cert_file, reason=text.splitlines()[0] if text else type(exc).__name__)) from exc


def client_token(app: AppCredentials, scope: str, *, tls_settings: TLSSettings, timeout: float,
                 proxy: str | None = None, session: httpclient.Session | None = None) -> Secret:
    """An access token for `scope` (`<resource>/.default`), registered as a secret at once.

    A new msal application is made per call: msal replays a cached error response for the
    same request within one process (for Retry-After seconds, 60 s after a 400), which
    would make SMail's own retries see the old failure instead of asking again.
    """
    session = session or httpclient.Session(tls_settings, timeout=timeout, proxy=proxy)
    application = _application(app, session)
    where = urlsplit(app.authority_host).netloc
    try:
        result = application.acquire_token_for_client(scopes=[scope])
    except requests.RequestException as exc:
        raise httpclient.network_error(exc, where) from exc
    except msal.exceptions.MsalServiceError as exc:  # token endpoint 5xx
        raise AuthError(_("The identity platform is temporarily unavailable: {description}").format(
            description=redact.redact(str(exc))), transient=True, retry_after=session.last_retry_after()) from exc
    except ValueError as exc:  # a non-JSON answer, or an unusable certificate
        raise AuthError(_("The identity platform's answer could not be used: {reason}").format(
            reason=redact.redact(str(exc)).splitlines()[0])) from exc
    token = result.get("access_token") if isinstance(result, dict) else None
    if not token:
        last = session.last_response
        status = last.status_code if last is not None else 0
        error = refusal(result or {}, app, session.last_retry_after())
        if status == 429 or status >= 500:
            error.transient = True
        raise error
    redact.remember(token)
    log.info(_("Access token obtained for {scope} (application {app_id}).").format(scope=scope, app_id=app.app_id))
    return Secret(str(token))
