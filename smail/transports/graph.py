"""GraphSession: app-only sendMail, in JSON or in MIME form, or a draft with upload sessions
for large attachments (graph_draft).

Shapes, limits and error codes follow Microsoft's pages "user: sendMail", "Attach large files
to Outlook messages" and "Microsoft Graph throttling guidance": one request is at most 4 MB,
so larger messages go through a draft. The requests, the token and the throttle are
graph_http's; the message resource is graph_resource's.

Never twice: Graph has no idempotency key, so once the send request is out, a timeout, a lost
connection or a 5xx answer other than 503 means the message may have been sent (MaybeSentError).
One session serves several threads (a batch keeps up to 4 requests in flight per mailbox):
the token is shared, and a 429 slows every thread down, not only the one that got it.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from smail import httpclient
from smail.errors import SendError
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered
from smail.receipt import Receipt, Status
from smail.settings import GraphSettings
from smail.transports import Commit, Progress
from smail.transports.graph_draft import send_through_draft
from smail.transports.graph_http import GraphHTTP
from smail.transports.graph_resource import Parts, bcc_header, encoded_size, file_attachment, graph_message

log = logging.getLogger("smail")

REQUEST_LIMIT: Final = 4_000_000          # Graph refuses larger requests (413)


class GraphSession:
    """Sends messages through Microsoft Graph as the /GRAPH_SENDER mailbox."""

    def __init__(self, settings: GraphSettings, *, session: httpclient.Session | None = None,
                 progress: Progress | None = None) -> None:
        self.settings = settings
        self.session = session or httpclient.Session(
            settings.tls, timeout=settings.timeout, proxy=settings.proxy,
            proxy_from_environment=settings.proxy_from_environment)
        self.progress = progress
        base = settings.app.graph_endpoint.rstrip("/")
        self.user_url = f"{base}/v1.0/users/{quote(settings.sender, safe='@')}"
        self.where = urlsplit(base).netloc
        self.http = GraphHTTP(settings, self.session, self.where)

    def close(self) -> None:
        self.session.close()

    def send(self, message: Message, rendered: Rendered, *, on_commit: Commit | None = None) -> Receipt:
        if rendered.smime is not None:
            response = self._send_mime(message, rendered, on_commit)
        else:
            parts = Parts(message.inline, message.attachments)
            resource = graph_message(message, self.settings.sender)
            attachments_size = sum(encoded_size(p) for p, _inline in parts.all())
            base_size = len(json.dumps(resource, ensure_ascii=False).encode("utf-8"))
            if base_size + attachments_size <= REQUEST_LIMIT:
                response = self._send_mail(resource, parts, on_commit)
            else:
                response = send_through_draft(self.http, self.user_url, resource, parts, on_commit=on_commit,
                                              progress=self.progress)
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

    def _send_mail(self, resource: dict[str, Any], parts: Parts, on_commit: Commit | None) -> requests.Response:
        attachments = [file_attachment(p, inline) for p, inline in parts.all()]
        if attachments:
            resource = {**resource, "attachments": attachments}
        body: dict[str, Any] = {"message": resource}
        if not self.settings.save_to_sent:
            body["saveToSentItems"] = False
        if on_commit is not None:
            on_commit()
        return self.http.call("POST", f"{self.user_url}/sendMail", what=_("sending the message"), json_body=body,
                              commits=True)

    def _send_mime(self, message: Message, rendered: Rendered, on_commit: Commit | None) -> requests.Response:
        """sendMail in MIME form (Microsoft's page "user: sendMail"): the message's own bytes,
        base64-encoded, as a text/plain request. A signed or encrypted message goes only this
        way: rebuilt from JSON properties it would lose its signature. Graph takes the
        recipients from the headers, so the Bcc recipients go in a Bcc header, which Exchange
        removes before delivery; the signature does not cover the headers."""
        bcc = bcc_header(message)
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
        return self.http.call("POST", f"{self.user_url}/sendMail", what=_("sending the message"),
                              data=base64.b64encode(data), headers={"Content-Type": "text/plain"}, commits=True)
