"""App-only OAuth2 tokens from the Microsoft identity platform: msal client credentials (a
secret, a certificate file, or an assertion signed by a key of the Windows certificate store),
or msal's managed identity client (Azure Arc, Azure VM).

Imported only on the Graph and XOAUTH2-with-app paths, so msal, requests and cryptography stay
out of plain SMTP runs. msal reports refusals as dicts and lets network failures escape as
requests exceptions: both become SMail errors here.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

import msal
import requests

from smail import assertion, certificate, certstore, cloud, httpclient, redact
from smail.cloud import MICROSOFT_IDENTITY_HOSTS, AppCredentials, CertStore, SignIn
from smail.errors import (
    AuthError,
    FileMissingError,
    HTTPAnswer,
    IdentityUnavailableError,
    SMailError,
    retryable_status,
)
from smail.i18n import _
from smail.redact import Secret
from smail.tls import TLSSettings

log = logging.getLogger("smail")

# AADSTS codes (Microsoft's page "Microsoft Entra authentication and authorization error
# codes") -> the probable cause, said to the user.
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


def _unavailable(description: str, *, retry_after: float | None = None,
                 answer: HTTPAnswer | None = None) -> IdentityUnavailableError:
    """The identity platform failed for now (retried per /RETRY)."""
    return IdentityUnavailableError(_("The identity platform is temporarily unavailable: {description}").format(
        description=description), retry_after=retry_after, answer=answer)


def _refused(cause: str, details: str, *, answer: HTTPAnswer | None = None) -> AuthError:
    """The identity platform refused the application, for a cause SMail can name (exit 4)."""
    return AuthError(_("The identity platform refused the application: {cause} ({details}).").format(
        cause=cause, details=details), answer=answer)


def _codes(result: dict[str, Any]) -> set[int]:
    codes = {int(c) for c in result.get("error_codes", []) if str(c).isascii() and str(c).isdigit()}
    codes.update(int(c) for c in re.findall(r"AADSTS(\d+)", str(result.get("error_description", ""))))
    return codes


def refusal(result: dict[str, Any], app: AppCredentials, *, status: int = 0,
            retry_after: float | None = None) -> SMailError:
    """An msal error dict -> AuthError naming the probable cause (temporary ones are retried)."""
    codes = _codes(result)
    error = str(result.get("error", "?"))
    description = redact.redact(str(result.get("error_description", "")).splitlines()[0]
                                if result.get("error_description") else "")
    answer = HTTPAnswer(status, error)
    if codes & _TRANSIENT_CODES or error == "temporarily_unavailable" or retryable_status(status):
        return _unavailable(description or error, retry_after=retry_after, answer=answer)
    for known, key in _CAUSES:
        if codes & known:
            return _refused(_cause(key, app), description or error, answer=answer)
    return AuthError(_("The identity platform refused the application: {error}: {description}").format(
        error=error, description=description), answer=answer)


StoreSigner = Callable[[str, CertStore | None], certstore.StoreCertificate]


def _credential(app: AppCredentials, audience: Callable[[], str],
                store_signer: StoreSigner | None) -> str | dict[str, Any]:
    """msal's client_credential: the secret, the certificate file (SHA-256 thumbprint form), or
    an assertion signed by the key of a store certificate (found and checked here)."""
    if app.secret is not None:
        return app.secret.reveal()
    if app.cert_thumbprint is not None:
        found = (store_signer or certstore.open_signer)(app.cert_thumbprint, app.cert_store)

        def sign() -> str:
            try:
                return assertion.client_assertion(client_id=app.app_id, audience=audience(),
                                                  certificate=found.der, sign=found.sign)
            except OSError as exc:
                raise certstore.key_error(exc, found) from None
        log.info(_("Signing in with the certificate {thumbprint} of {where}.").format(
            thumbprint=found.thumbprint, where=found.where))
        return {"client_assertion": sign}
    assert app.cert_file is not None
    return certificate.load(app.cert_file, app.cert_password)


def _application(app: AppCredentials, session: httpclient.Session,
                 store_signer: StoreSigner | None = None) -> msal.ConfidentialClientApplication:
    authority = f"{app.authority_host}/{app.tenant_id}"
    where = urlsplit(app.authority_host).netloc
    private = urlsplit(app.authority_host).hostname not in MICROSOFT_IDENTITY_HOSTS
    made: list[msal.ConfidentialClientApplication] = []
    # The assertion's audience is the token endpoint msal discovered, known once it is made.
    credential = _credential(app, lambda: str(made[0].authority.token_endpoint), store_signer)
    try:
        made.append(msal.ConfidentialClientApplication(
            app.app_id, client_credential=credential, authority=authority, http_client=session,
            instance_discovery=False if private else None, token_cache=msal.TokenCache()))
        return made[0]
    except requests.RequestException as exc:  # before OSError: it is one
        raise httpclient.network_error(exc, where) from exc
    except OSError as exc:  # msal opens a .pfx itself
        raise FileMissingError.unreadable(app.cert_file, exc) from None
    except msal.exceptions.MsalServiceError as exc:  # discovery answered 5xx
        raise _unavailable(redact.redact(str(exc))) from exc
    except ValueError as exc:
        text = redact.redact(str(exc))
        if "authority" in text.lower() or "tenant" in text.lower():
            raise _refused(_cause("tenant", app), text.splitlines()[0]) from exc
        raise certificate.unusable(app.cert_file, text, exc) from exc


def client_token(app: AppCredentials, scope: str, *, tls_settings: TLSSettings, timeout: float,
                 proxy: str | None = None, proxy_from_environment: bool = True,
                 session: httpclient.Session | None = None,
                 store_signer: StoreSigner | None = None) -> Secret:
    """An access token for `scope` (`<resource>/.default`), registered as a secret at once.

    A new msal application is made per call: msal replays a cached error response for the
    same request within one process (for Retry-After seconds, 60 s after a 400), which
    would make SMail's own retries see the old failure instead of asking again.
    """
    if app.sign_in is SignIn.MANAGED_IDENTITY:
        # The identity endpoint is on this machine (Arc) or link-local (IMDS, which refuses
        # proxied requests): never through a proxy.
        return managed_identity_token(app, scope, session=session or httpclient.Session(
            tls_settings, timeout=timeout, proxy_from_environment=False))
    session = session or httpclient.Session(tls_settings, timeout=timeout, proxy=proxy,
                                            proxy_from_environment=proxy_from_environment)
    application = _application(app, session, store_signer)
    where = urlsplit(app.authority_host).netloc
    try:
        result = application.acquire_token_for_client(scopes=[scope])
    except requests.RequestException as exc:
        raise httpclient.network_error(exc, where) from exc
    except msal.exceptions.MsalServiceError as exc:  # token endpoint 5xx
        raise _unavailable(redact.redact(str(exc)), retry_after=session.last_retry_after()) from exc
    except ValueError as exc:  # a non-JSON answer, or an unusable certificate
        raise AuthError(_("The identity platform's answer could not be used: {reason}").format(
            reason=redact.redact(str(exc)).splitlines()[0])) from exc
    token = result.get("access_token") if isinstance(result, dict) else None
    if not token:
        last = session.last_response
        raise refusal(result or {}, app, status=last.status_code if last is not None else 0,
                      retry_after=session.last_retry_after())
    redact.remember(token)
    log.info(_("Access token obtained for {scope} (application {app_id}).").format(scope=scope, app_id=app.app_id))
    return Secret(str(token))


# -- managed identity -------------------------------------------------------------------------------
# msal.ManagedIdentityClient finds the endpoint itself (msal/managed_identity.py): Azure Arc when
# IDENTITY_ENDPOINT and IMDS_ENDPOINT are set or the agent (himds) is installed, else the Azure
# VM's IMDS, at AZURE_POD_IDENTITY_AUTHORITY_HOST or 169.254.169.254. SMail names it the same way.
ARC_ENDPOINT: Final = "http://localhost:40342/metadata/identity/oauth2/token"
IMDS_HOST: Final = "http://169.254.169.254"
# IMDS answers 404 while it is updating, 410 while it starts, 429 and 5xx when busy (Microsoft's
# page "How to use managed identities for Azure resources on an Azure VM to acquire an access
# token", error handling): worth another attempt.
_IDENTITY_STARTING: Final = frozenset({404, 410})


def identity_source() -> tuple[str, str]:
    """(what, endpoint URL) of the managed identity endpoint msal will ask."""
    from msal.managed_identity import AZURE_ARC, get_managed_identity_source

    if get_managed_identity_source() is AZURE_ARC:
        return "Azure Arc", os.environ.get("IDENTITY_ENDPOINT") or ARC_ENDPOINT
    if "IDENTITY_ENDPOINT" in os.environ:
        return "Azure App Service", os.environ["IDENTITY_ENDPOINT"]
    host = os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", IMDS_HOST).strip("/")
    return "Azure VM (IMDS)", f"{host}/metadata/identity/oauth2/token"


def _identity_refusal(result: dict[str, Any], what: str, status: int,
                      retry_after: float | None) -> SMailError:
    try:  # msal passes the Azure Arc agent's error body on as the description
        inner = json.loads(str(result.get("error_description", "")))
    except ValueError:
        inner = None
    if isinstance(inner, dict) and "error" in inner:
        result = inner
    error = str(result.get("error", "?"))
    description = redact.redact(" ".join(str(result.get("error_description", "")).split()))[:300]
    answer = HTTPAnswer(status, error)
    if status in _IDENTITY_STARTING or retryable_status(status):
        return IdentityUnavailableError(_("The managed identity endpoint ({source}) is temporarily unavailable (HTTP {status}): {description}").format(
            source=what, status=status, description=description or error), retry_after=retry_after, answer=answer)
    return AuthError(_("The managed identity endpoint ({source}) refused to give a token (HTTP {status}): {error}: {description}. Check that this machine has a managed identity and, with /O365_MANAGED_IDENTITY, that this identity is assigned to it.").format(
        source=what, status=status or "-", error=error, description=description), answer=answer)


def managed_identity_token(app: AppCredentials, scope: str, *, session: httpclient.Session) -> Secret:
    """A token for the resource of `scope` from this machine's managed identity (Azure Arc or
    Azure VM); exit 3 when the endpoint cannot be reached, 4 when it refuses."""
    identity: Any = (msal.UserAssignedManagedIdentity(client_id=app.managed_identity) if app.managed_identity
                     else msal.SystemAssignedManagedIdentity())
    client = msal.ManagedIdentityClient(identity, http_client=session, token_cache=msal.TokenCache())
    what, endpoint = identity_source()
    where = urlsplit(endpoint).netloc or endpoint
    log.info(_("Asking the managed identity endpoint ({source}, {where}) for a token for {resource}.").format(
        source=what, where=where, resource=cloud.resource(scope)))
    try:
        result = client.acquire_token_for_client(resource=cloud.resource(scope))
    except requests.RequestException as exc:  # before OSError: it is one
        raise httpclient.network_error(exc, where) from exc
    except PermissionError as exc:  # Azure Arc: the agent's challenge file
        raise AuthError(_("The Azure Arc agent's key file {path} cannot be read by this account: run SMail as an administrator, or add the account to the local group \"Hybrid agent extension applications\".").format(
            path=exc.filename)) from None
    except OSError as exc:
        raise AuthError(_("The Azure Arc agent's key file {path} cannot be read: {reason}").format(
            path=exc.filename, reason=exc.strerror or exc)) from None
    except ValueError as exc:  # msal's ManagedIdentityError, or an answer that is not JSON
        raise AuthError(_("The managed identity endpoint ({source}) gave no usable answer: {reason}").format(
            source=what, reason=redact.redact(str(exc)).splitlines()[0][:300] if str(exc) else type(exc).__name__)) from None
    token = result.get("access_token") if isinstance(result, dict) else None
    if not token:
        last = session.last_response
        raise _identity_refusal(result if isinstance(result, dict) else {}, what,
                                last.status_code if last is not None else 0, session.last_retry_after())
    redact.remember(token)
    log.info(_("Access token obtained for {scope} (managed identity, {source}).").format(scope=scope, source=what))
    return Secret(str(token))
