"""The HTTPS session shared by the identity platform (msal) and Graph: /CA_FILE, /PROXY and
/TIMEOUT always apply, and requests/urllib3 failures become SMail errors in one place."""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from smail import redact, tls
from smail.errors import ConnectError, MaybeSentError, SetupConnectError, SMailError, TLSError
from smail.i18n import _
from smail.tls import TLSSettings

log = logging.getLogger("smail.http")


class _ContextAdapter(HTTPAdapter):
    """Uses one SSLContext (OS trust store + /CA_FILE + minimum version) for every pool."""

    def __init__(self, context: Any) -> None:
        self.context = context
        super().__init__(max_retries=0)  # SMail's own retry loop decides what is retried

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self.context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self.context
        return super().proxy_manager_for(proxy, **kwargs)


class Session(requests.Session):
    """requests.Session whose certificate checks and proxy cannot be overridden by
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, and whose every request has a timeout."""

    def __init__(self, tls_settings: TLSSettings, *, timeout: float, proxy: str | None = None,
                 proxy_from_environment: bool = True) -> None:
        super().__init__()
        # /PROXY=NONE: neither HTTPS_PROXY nor the Windows Internet settings that requests
        # would otherwise read (nor .netrc, which only trust_env enables).
        self.trust_env = proxy_from_environment or bool(proxy)
        adapter = _ContextAdapter(tls.create_context(tls_settings))
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.timeout = timeout
        self.proxy = proxy
        if proxy:
            self.proxies = {"https": proxy, "http": proxy}
        self.last_response: requests.Response | None = None

    def last_retry_after(self) -> float | None:
        """The Retry-After of the last answer, for failures reported without the response."""
        return retry_after(self.last_response.headers) if self.last_response is not None else None

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace a session's `verify`;
        # SMail's context already holds the OS store and /CA_FILE, so verification stays on it.
        settings["verify"] = True
        if self.proxy:
            settings["proxies"] = {"https": self.proxy, "http": self.proxy}
        elif not self.trust_env:
            settings["proxies"] = {}
        return settings

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        credential = (kwargs.get("headers") or {}).get("Authorization", "")
        if " " in credential:  # a bearer token, Azure Arc's challenge key: never in a log
            redact.remember(credential.split(" ", 1)[1])
        started = time.monotonic()
        method = method if isinstance(method, str) else method.decode("ascii")
        streamed = kwargs.pop("stream", False)
        response = super().request(method, url, *args, **{**kwargs, "stream": True})
        if not streamed:
            _read_answer(response, self.timeout)
        self.last_response = response
        log.debug("%s %s -> %s in %.2f s (request-id %s, client-request-id %s)", method, _safe_url(str(url)),
                  response.status_code, time.monotonic() - started,
                  response.headers.get("request-id", "-"), response.headers.get("client-request-id", "-"))
        return response


# The longest answer SMail reads (a draft's answer echoes its body, at most Graph's 4 MB).
MAX_ANSWER = 64 * 1024 * 1024


def _read_answer(response: requests.Response, seconds: float) -> None:
    """The answer's body read whole within `seconds` of its head, and at most MAX_ANSWER bytes:
    requests times each read only, so an endpoint trickling its answer (a byte now and then)
    or sending one without end would hold the run beyond /TIMEOUT, or fill the memory."""
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := response.raw.read1(65536, decode_content=True):
            size += len(chunk)
            if size > MAX_ANSWER:
                raise requests.exceptions.ConnectionError(_("the answer is longer than {size} MB").format(
                    size=MAX_ANSWER // (1024 * 1024)))
            if time.monotonic() > deadline:
                raise requests.exceptions.ReadTimeout(_("the answer did not end within {seconds:g} s").format(
                    seconds=seconds))
            chunks.append(chunk)
    except ProtocolError as exc:  # as requests translates them when it reads the body itself
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from exc
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except BaseException:
        response.close()
        raise
    response._content = b"".join(chunks)
    response._content_consumed = True


def _safe_url(url: str) -> str:
    """The URL without its query: upload URLs carry their credential there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?****" if parts.query else "")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds, from delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or "٣", which str.isdigit() also accepts
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _never_connected(exc: requests.RequestException) -> bool:
    """Whether the failure happened while connecting, so that no request left."""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)
    return isinstance(cause, (NewConnectionError, ConnectTimeoutError))


def _certificate_refused(exc: BaseException) -> bool:
    """Whether a TLS failure is a refused certificate, which proves the handshake failed and
    nothing was sent (any other TLS error after a request went out may follow its delivery)."""
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending and len(seen) < 16:
        cause = pending.pop()
        if not isinstance(cause, BaseException) or any(cause is s for s in seen):
            continue
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.append(cause)
        pending.extend((*cause.args, getattr(cause, "reason", None), cause.__cause__, cause.__context__))
    return False


def lost(exc: requests.RequestException) -> bool:
    """Whether an established connection was lost (closed or reset by the other end), not
    refused, timed out or failed while connecting."""
    return isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, (requests.exceptions.Timeout, requests.exceptions.SSLError, requests.exceptions.ProxyError)) \
        and not _never_connected(exc)


def network_error(exc: requests.RequestException, where: str, *, sent: bool = False) -> SMailError:
    """requests' failures -> exit 3 (connection, TLS, proxy) or, after a request was sent and
    no answer came, exit 5: Graph has no idempotency key, so SMail does not resend blindly."""
    reason = redact.redact(str(exc.__context__ or exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if (failure := tls.verifier_failure(exc)) is not None:
        return TLSError(_("The certificate of {where} could not be verified: the system's certificate verifier failed: {reason}.").format(
            where=where, reason=redact.redact(failure.strerror or str(failure)).rstrip(".")))
    if isinstance(exc, requests.exceptions.SSLError):
        if sent and not _certificate_refused(exc):  # the TLS layer's way of saying the line was lost
            return MaybeSentError(_("The connection to {where} was lost after the message was handed over: it may have been sent. SMail does not resend it, to avoid a duplicate; check the Sent Items folder.").format(
                where=where))
        return TLSError(_("The TLS connection to {where} failed: {reason}. Use /CA_FILE to trust its CA.").format(
            where=where, reason=reason))
    if isinstance(exc, requests.exceptions.ProxyError):
        return SetupConnectError(_("The proxy refused the connection to {where}: {reason}").format(
            where=where, reason=reason))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectError(_("{where} did not answer in time.").format(where=where))
    if isinstance(exc, requests.exceptions.ReadTimeout):
        if sent:
            return MaybeSentError(_("{where} did not answer in time after the message was handed over: it may have been sent. SMail does not resend it, to avoid a duplicate; check the Sent Items folder.").format(
                where=where))
        return ConnectError(_("{where} did not answer in time.").format(where=where))
    if isinstance(exc, requests.exceptions.ConnectionError):
        if sent and not _never_connected(exc):  # the request went out; no answer came
            return MaybeSentError(_("The connection to {where} was lost after the message was handed over: it may have been sent. SMail does not resend it, to avoid a duplicate; check the Sent Items folder.").format(
                where=where))
        return ConnectError(_("Cannot connect to {where}: {reason}").format(where=where, reason=reason))
    return SetupConnectError(_("Cannot connect to {where}: {reason}").format(where=where, reason=reason))
