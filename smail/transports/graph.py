"""GraphSession: app-only sendMail, or a draft with upload sessions for large attachments.

Shapes, limits and error codes follow Microsoft's pages "user: sendMail", "Attach large files
to Outlook messages" and "Microsoft Graph throttling guidance": one request is at most 4 MB,
so larger messages go through POST /messages, /attachments (small ones), createUploadSession
+ PUT chunks (large ones), then POST /messages/{id}/send.

Never twice: Graph has no idempotency key, so once the send request is out, a timeout, a lost
connection or a 5xx answer other than 503 means the message may have been sent (MaybeSentError).
One session serves several threads (a batch keeps up to 4 requests in flight per mailbox):
the token is shared, and a 429 slows every thread down, not only the one that got it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from smail import auth, httpclient, redact, retry
from smail.addresses import Mailbox
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
from smail.i18n import _, ngettext
from smail.kinds import Priority
from smail.message import FilePart, Message, part_chunks, read_part
from smail.mime import Rendered, address_field
from smail.receipt import Receipt, Status
from smail.redact import Secret
from smail.settings import GraphSettings
from smail.transports import Commit

log = logging.getLogger("smail")

REQUEST_LIMIT: Final = 4_000_000          # Graph refuses larger requests (413)
UPLOAD_MINIMUM: Final = 3 * 1024 * 1024   # createUploadSession refuses smaller attachments
UPLOAD_MAXIMUM: Final = 150 * 1024 * 1024
CHUNK: Final = 12 * 320 * 1024            # 3,932,160 B: < 4 MiB, and a multiple of 320 KiB
# Answers to the send request that prove it was not carried out (Graph SDK retry handler);
# any other 5xx answer to it may follow its delivery: may-have-been-sent, never retried.
NOT_SENT_STATUS: Final = frozenset({429, 503})
IMPORTANCE: Final = {Priority.HIGHEST: "high", Priority.HIGH: "high", Priority.NORMAL: "normal",
                     Priority.LOW: "low", Priority.LOWEST: "low"}

Progress = Callable[[str, int, int], None]


def _recipients(boxes: tuple[Mailbox, ...]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": box.address, **({"name": box.name} if box.name else {})}}
            for box in boxes]


def _file_attachment(part: FilePart, inline: bool) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment", "name": part.filename,
        "contentType": part.content_type,
        "contentBytes": base64.b64encode(read_part(part)).decode("ascii")}
    if inline:
        attachment.update(isInline=True, contentId=part.content_id)
    return attachment


def _encoded_size(part: FilePart) -> int:
    return 4 * ((part.size + 2) // 3) + len(part.filename) * 2 + 200


def graph_message(message: Message, mailbox: str) -> dict[str, Any]:
    """The message resource without attachments (they are added by size)."""
    body: dict[str, Any] = {
        "subject": message.subject,
        "body": {"contentType": "html" if message.html else "text", "content": message.body},
        "toRecipients": _recipients(message.to),
    }
    if message.sender.address.lower() != mailbox.lower():
        body["from"] = _recipients((message.sender,))[0]  # needs SendAs on that address
    if message.cc:
        body["ccRecipients"] = _recipients(message.cc)
    if message.bcc:
        body["bccRecipients"] = _recipients(message.bcc)
    if message.reply_to:
        body["replyTo"] = _recipients(message.reply_to)
    if message.priority is not None:
        body["importance"] = IMPORTANCE[message.priority]
    if message.read_ack:
        body["isReadReceiptRequested"] = True
    if message.reception_ack:
        body["isDeliveryReceiptRequested"] = True
    if message.headers:  # an empty array is refused: omit the property when there are none
        body["internetMessageHeaders"] = [{"name": n, "value": v} for n, v in message.headers]
    return body


def _bcc_header(message: Message) -> bytes:
    return address_field("Bcc", message.bcc).encode("utf-8") if message.bcc else b""


@dataclass
class _Parts:
    inline: tuple[FilePart, ...]
    attachments: tuple[FilePart, ...]

    def all(self) -> Iterator[tuple[FilePart, bool]]:
        yield from ((p, True) for p in self.inline)
        yield from ((p, False) for p in self.attachments)


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


class GraphSession:
    """Sends messages through Microsoft Graph as the /GRAPH_SENDER mailbox."""

    def __init__(self, settings: GraphSettings, *, session: httpclient.Session | None = None,
                 progress: Progress | None = None) -> None:
        self.settings = settings
        self.session = session or httpclient.Session(
            settings.tls, timeout=settings.timeout, proxy=settings.proxy,
            proxy_from_environment=settings.proxy_from_environment)
        self.progress = progress
        self.token: Secret | None = None
        self.token_lock = threading.Lock()
        self.throttle = _Throttle()
        base = settings.app.graph_endpoint.rstrip("/")
        self.user_url = f"{base}/v1.0/users/{quote(settings.sender, safe='@')}"
        self.where = urlsplit(base).netloc

    def close(self) -> None:
        self.session.close()

    # -- HTTP ---------------------------------------------------------------------------------

    def _token(self) -> Secret:
        with self.token_lock:
            if self.token is None:
                app = self.settings.app
                self.token = auth.client_token(app, app.graph_scope, tls_settings=self.settings.tls,
                                               timeout=self.settings.timeout, session=self.session)
            return self.token

    def _call(self, method: str, url: str, *, what: str, json_body: Any = None, data: bytes | None = None,
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

    # -- sending ------------------------------------------------------------------------------

    def send(self, message: Message, rendered: Rendered, *, on_commit: Commit | None = None) -> Receipt:
        if rendered.smime is not None:
            response = self._send_mime(message, rendered, on_commit)
        else:
            parts = _Parts(message.inline, message.attachments)
            resource = graph_message(message, self.settings.sender)
            attachments_size = sum(_encoded_size(p) for p, _inline in parts.all())
            base_size = len(json.dumps(resource, ensure_ascii=False).encode("utf-8"))
            if base_size + attachments_size <= REQUEST_LIMIT:
                response = self._send_mail(resource, parts, on_commit)
            else:
                response = self._send_through_draft(resource, parts, on_commit)
        count = len(message.recipients)
        summary = ngettext(
            "Message sent to {n} recipient via Microsoft Graph as {mailbox}.",
            "Message sent to {n} recipients via Microsoft Graph as {mailbox}.",
            count).format(n=count, mailbox=self.settings.sender)
        return Receipt(status=Status.SENT, message_id=message.message_id,
                       accepted=tuple(box.address for box in message.recipients),
                       server=f"{self.where} ({self.settings.sender})",
                       reply=f"{response.status_code} {response.reason}",
                       request_id=response.headers.get("request-id") or None, summary=summary)

    def _send_mail(self, resource: dict[str, Any], parts: _Parts, on_commit: Commit | None) -> requests.Response:
        attachments = [_file_attachment(p, inline) for p, inline in parts.all()]
        if attachments:
            resource = {**resource, "attachments": attachments}
        body: dict[str, Any] = {"message": resource}
        if not self.settings.save_to_sent:
            body["saveToSentItems"] = False
        if on_commit is not None:
            on_commit()
        return self._call("POST", f"{self.user_url}/sendMail", what=_("sending the message"), json_body=body,
                          commits=True)

    def _send_mime(self, message: Message, rendered: Rendered, on_commit: Commit | None) -> requests.Response:
        """sendMail in MIME form (Microsoft's page "user: sendMail"): the message's own bytes,
        base64-encoded, as a text/plain request. A signed or encrypted message goes only this
        way: rebuilt from JSON properties it would lose its signature. Graph takes the
        recipients from the headers, so the Bcc recipients go in a Bcc header, which Exchange
        removes before delivery; the signature does not cover the headers."""
        bcc = _bcc_header(message)
        size = 4 * ((rendered.size + len(bcc) + 2) // 3)
        if size > REQUEST_LIMIT:
            # Upload sessions add attachments to a draft, which would break the signature.
            raise SendError(_("The signed or encrypted message is {size} bytes once encoded; Microsoft Graph accepts at most {limit} bytes in one request, and larger signed messages cannot be sent through Graph: send it by SMTP.").format(
                size=size, limit=REQUEST_LIMIT))
        if not self.settings.save_to_sent:
            log.warning(_("/SAVE_TO_SENT=NO cannot apply to a message sent in MIME form (signed or encrypted): Graph keeps it in Sent Items."))
        data = bcc + b"".join(rendered.chunks())
        if on_commit is not None:
            on_commit()
        return self._call("POST", f"{self.user_url}/sendMail", what=_("sending the message"),
                          data=base64.b64encode(data), headers={"Content-Type": "text/plain"}, commits=True)

    def _send_through_draft(self, resource: dict[str, Any], parts: _Parts,
                            on_commit: Commit | None) -> requests.Response:
        for part, _inline in parts.all():
            if part.size > UPLOAD_MAXIMUM:
                raise SendError(_("{name} is {size} bytes; Microsoft Graph accepts attachments of at most 150 MB.").format(
                    name=part.filename, size=part.size))
        log.info(_("The message is larger than one Graph request allows (4 MB): sending it through a draft and upload sessions."))
        if not self.settings.save_to_sent:
            log.warning(_("/SAVE_TO_SENT=NO cannot apply to a message sent through a draft: Graph keeps it in Sent Items."))
        message_url: str | None = None
        try:
            draft = self._call("POST", f"{self.user_url}/messages", what=_("creating the draft"),
                               json_body=resource)
            message_url = f"{self.user_url}/messages/{quote(str(draft.json()['id']), safe='')}"
            for part, inline in parts.all():
                if part.size < UPLOAD_MINIMUM:
                    self._call("POST", f"{message_url}/attachments", what=_("adding {name}").format(name=part.filename),
                               json_body=_file_attachment(part, inline))
                else:
                    self._upload(message_url, part, inline)
            if on_commit is not None:
                on_commit()
            return self._call("POST", f"{message_url}/send", what=_("sending the draft"), data=b"", commits=True)
        except MaybeSentError:
            raise  # the draft may have become the sent message: never delete it
        except SMailError as exc:
            if message_url is not None:
                self._delete_draft(message_url)
            if isinstance(exc, AuthError):
                raise AuthError(_("{error} Messages over 4 MB are sent through a draft, which needs the Mail.ReadWrite application permission in addition to Mail.Send.").format(
                    error=exc.message), answer=exc.answer) from exc
            raise

    def _delete_draft(self, message_url: str) -> None:
        try:
            self._call("DELETE", message_url, what=_("deleting the draft"))
            log.info(_("The unfinished draft was deleted."))
        except SMailError as exc:
            log.warning(_("The unfinished draft could not be deleted: {error}").format(error=exc.message))

    def _upload(self, message_url: str, part: FilePart, inline: bool) -> None:
        """createUploadSession, then PUT the file in order, chunk by chunk, from disk."""
        item: dict[str, Any] = {"attachmentType": "file", "name": part.filename, "size": part.size,
                                "contentType": part.content_type}
        if inline:
            item.update(isInline=True, contentId=part.content_id)
        session = self._call("POST", f"{message_url}/attachments/createUploadSession",
                             what=_("opening an upload session for {name}").format(name=part.filename),
                             json_body={"AttachmentItem": item}).json()
        upload_url = str(session["uploadUrl"])
        query = urlsplit(upload_url).query
        redact.remember(upload_url, query)  # the URL is pre-authenticated: a credential
        what = _("uploading {name}").format(name=part.filename)
        start = 0
        # A file that changes while it is uploaded raises before its last chunk: the draft is
        # then deleted, and nothing is sent.
        for chunk in part_chunks(part, CHUNK):
            end = start + len(chunk) - 1
            # The upload URL carries its own credential: no Authorization header.
            self._call("PUT", upload_url, what=what, data=chunk, authorize=False, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {start}-{end}/{part.size}"})
            start = end + 1
            if self.progress:
                self.progress(part.filename, start, part.size)
