"""The requests of one Graph session: the shared token, the shared throttle after a 429, and
every failure as an SMailError (401/403 -> exit 4, other 4xx -> 5, no answer -> 3 or, once a
send request went out whole, may-have-been-sent)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from smail import auth, httpclient, redact, retry
from smail.errors import (
    AuthError,
    ConnectError,
    DroppedError,
    HTTPAnswer,
    MaybeSentError,
    SendError,
    SMailError,
    retryable_status,
)
from smail.i18n import _
from smail.redact import Secret
from smail.settings import GraphSettings

log = logging.getLogger("smail")

# Answers to the send request that prove it was not carried out (Graph SDK retry handler);
# any other 5xx answer to it may follow its delivery: may-have-been-sent, never retried.
NOT_SENT_STATUS: Final = frozenset({429, 503})


class _Body:
    """A request body that knows whether it went out whole: urllib3 asks for the next block only
    once the last one was written to the connection, so an empty read means every byte of the
    request was sent. A connection lost before that cannot have delivered the request."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0
        self.complete = not data

    def __len__(self) -> int:
        return len(self.data)

    def read(self, size: int = -1) -> bytes:
        if self.offset >= len(self.data):
            self.complete = True
            return b""
        end = len(self.data) if size is None or size < 0 else self.offset + size
        block = bytes(self.data[self.offset:end])
        self.offset += len(block)
        return block


class _Throttle:
    """Shared by the threads of one session: after a 429, every request waits (Retry-After)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()
        self.not_before = 0.0

    def wait(self) -> None:
        with self.lock:
            delay = self.not_before - self.clock()
        if delay > 0:
            self.sleep(delay)

    def slow_down(self, seconds: float) -> None:
        # A Retry-After is capped like every retry delay: a server asking for a year would
        # otherwise hold every request of the run for a year.
        seconds = min(max(seconds, 0.0), retry.MAX_DELAY)
        with self.lock:
            self.not_before = max(self.not_before, self.clock() + seconds)


class GraphHTTP:
    """Graph requests as the /GRAPH_SENDER mailbox's application, shared by a session's threads."""

    def __init__(self, settings: GraphSettings, session: httpclient.Session, where: str) -> None:
        self.settings = settings
        self.session = session
        self.where = where
        self.token: Secret | None = None
        self.token_lock = threading.Lock()
        self.throttle = _Throttle()

    def _token(self) -> Secret:
        with self.token_lock:
            if self.token is None:
                app = self.settings.app
                self.token = auth.client_token(app, app.graph_scope, tls_settings=self.settings.tls,
                                               timeout=self.settings.timeout, session=self.session)
            return self.token

    def call(self, method: str, url: str, *, what: str, json_body: Any = None, data: bytes | None = None,
             headers: dict[str, str] | None = None, authorize: bool = True,
             commits: bool = False) -> requests.Response:
        """One Graph request; failures become SMail errors (401/403 -> 4, other 4xx -> 5).
        `commits`: this request sends the message, so an unanswered one may have sent it."""
        headers = dict(headers or {})
        if authorize:
            headers["Authorization"] = f"Bearer {self._token().reveal()}"
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        self.throttle.wait()
        body = _Body(data) if data else None
        try:
            response = self.session.request(method, url, data=body if body is not None else data, headers=headers)
        except requests.RequestException as exc:
            raise self._network_error(exc, body, what, commits) from exc
        log.info(_("Graph {method} {path}: {status} (request-id {request_id}, client-request-id {client_request_id}).").format(
            method=method, path=urlsplit(url).path if authorize else _("upload session"),
            status=response.status_code, request_id=response.headers.get("request-id", "-"),
            client_request_id=response.headers.get("client-request-id", "-")))
        if response.status_code >= 400:
            raise self._refusal(response, what, commits)
        return response

    def _network_error(self, exc: requests.RequestException, body: _Body | None, what: str,
                       commits: bool) -> SMailError:
        """A request that failed without an answer. Once its body had started to go out, the
        connection was up (TLS included): losing it then, however the TLS layer reports it, is a
        lost connection: before the last byte, Graph cannot have acted on the request (not sent,
        DroppedError); after it, a send request may have been carried out (MaybeSentError)."""
        whole = body is None or body.complete
        if body is not None and body.offset > 0 and isinstance(exc, requests.exceptions.ConnectionError) \
                and not isinstance(exc, requests.exceptions.Timeout):
            if whole and commits:
                return MaybeSentError(_("The connection to {where} was lost after the message was handed over: it may have been sent. SMail does not resend it, to avoid a duplicate; check the Sent Items folder.").format(
                    where=self.where))
            return self._dropped(what)
        error = httpclient.network_error(exc, self.where, sent=commits and whole)
        if type(error) is ConnectError and httpclient.lost(exc):
            return self._dropped(what)
        return error

    def _dropped(self, what: str) -> DroppedError:
        # Lost while this message's requests were going out, before Graph had the one that
        # sends it: not sent, and the next message may go through a new connection.
        return DroppedError(_("The connection to {where} was lost while {what}, before the message was handed over: it was not sent.").format(
            where=self.where, what=what))

    def _refusal(self, response: requests.Response, what: str, commits: bool) -> SMailError:
        status = response.status_code
        try:
            error = response.json().get("error", {})
            code, text = str(error.get("code", status)), str(error.get("message", ""))
        except (ValueError, AttributeError):
            code, text = str(status), response.text[:200]
        text = redact.redact(text)
        answer = HTTPAnswer(status, code, response.headers.get("request-id", ""))
        retry_after = httpclient.retry_after(response.headers)
        if status == 429:
            self.throttle.slow_down(retry_after if retry_after is not None else 1.0)
        if status == 401 or (status == 403 and code in ("ErrorAccessDenied", "NoPermissionsInAccessToken",
                                                          "Authorization_RequestDenied")):
            with self.token_lock:
                self.token = None
            return AuthError(_("Microsoft Graph refused access while {what} ({status} {code}: {text}). Check that the application has the Mail.Send application permission with admin consent, and that no application access policy excludes the mailbox {mailbox}.").format(
                what=what, status=status, code=code, text=text, mailbox=self.settings.sender), answer=answer)
        if commits and status >= 500 and status not in NOT_SENT_STATUS:
            return MaybeSentError(_("Microsoft Graph answered {status} {code} after the message was handed over: it may have been sent. SMail does not resend it, to avoid a duplicate; check the Sent Items folder.").format(
                status=status, code=code), answer=answer)
        if retryable_status(status):
            return SendError(_("Microsoft Graph is busy or unavailable while {what} ({status} {code}: {text}).").format(
                what=what, status=status, code=code, text=text), retry_after=retry_after, answer=answer)
        return SendError(_("Microsoft Graph refused the message while {what} ({status} {code}: {text}).").format(
            what=what, status=status, code=code, text=text), answer=answer)
