"""A message too large for one Graph request (4 MB), sent through a draft (Microsoft's page
"Attach large files to Outlook messages"): POST /messages, small attachments by POST
/attachments, large ones by createUploadSession + PUT chunks, then POST /messages/{id}/send.
An unfinished draft is deleted; one whose send request went out never is."""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from smail import redact
from smail.errors import AuthError, MaybeSentError, SendError, SMailError
from smail.i18n import _
from smail.message import FilePart, part_chunks
from smail.transports import Commit, Progress
from smail.transports.graph_http import GraphHTTP
from smail.transports.graph_resource import Parts, file_attachment

log = logging.getLogger("smail")

UPLOAD_MINIMUM: Final = 3 * 1024 * 1024   # createUploadSession refuses smaller attachments
UPLOAD_MAXIMUM: Final = 150 * 1024 * 1024
CHUNK: Final = 12 * 320 * 1024            # 3,932,160 B: < 4 MiB, and a multiple of 320 KiB


def _field(answer: requests.Response, name: str, what: str) -> str:
    """A text field of a Graph answer (the draft's id, an upload session's URL); SendError when
    the answer does not hold it: a gateway's or a proxy's page, an answer cut short."""
    try:
        value = answer.json().get(name)
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise SendError(_("The answer of Microsoft Graph while {what} holds no {name}: the message was not sent.").format(
            what=what, name=name))
    return value


def send_through_draft(http: GraphHTTP, user_url: str, resource: dict[str, Any], parts: Parts, *,
                       on_commit: Commit | None, progress: Progress | None) -> requests.Response:
    """Create the draft, add every part, send it; the answer to the send request."""
    for part, _inline in parts.all():
        if part.size > UPLOAD_MAXIMUM:
            raise SendError(_("{name} is {size} bytes; Microsoft Graph accepts attachments of at most 150 MB.").format(
                name=part.filename, size=part.size))
    log.info(_("The message is larger than one Graph request allows (4 MB): sending it through a draft and upload sessions."))
    if not http.settings.save_to_sent:
        log.warning(_("/SAVE_TO_SENT=NO cannot apply to a message sent through a draft: Graph keeps it in Sent Items."))
    message_url: str | None = None
    try:
        what = _("creating the draft")
        draft = http.call("POST", f"{user_url}/messages", what=what, json_body=resource)
        message_url = f"{user_url}/messages/{quote(_field(draft, 'id', what), safe='')}"
        for part, inline in parts.all():
            if part.size < UPLOAD_MINIMUM:
                http.call("POST", f"{message_url}/attachments", what=_("adding {name}").format(name=part.filename),
                          json_body=file_attachment(part, inline))
            else:
                _upload(http, message_url, part, inline, progress)
        if on_commit is not None:
            on_commit()
        return http.call("POST", f"{message_url}/send", what=_("sending the draft"), data=b"", commits=True)
    except MaybeSentError:
        raise  # the draft may have become the sent message: never delete it
    except SMailError as exc:
        if message_url is not None:
            _delete_draft(http, message_url)
        if isinstance(exc, AuthError):
            raise AuthError(_("{error} Messages over 4 MB are sent through a draft, which needs the Mail.ReadWrite application permission in addition to Mail.Send.").format(
                error=exc.message), answer=exc.answer) from exc
        raise


def _delete_draft(http: GraphHTTP, message_url: str) -> None:
    try:
        http.call("DELETE", message_url, what=_("deleting the draft"))
        log.info(_("The unfinished draft was deleted."))
    except SMailError as exc:
        log.warning(_("The unfinished draft could not be deleted: {error}").format(error=exc.message))


def _upload(http: GraphHTTP, message_url: str, part: FilePart, inline: bool, progress: Progress | None) -> None:
    """createUploadSession, then PUT the file in order, chunk by chunk, from disk."""
    item: dict[str, Any] = {"attachmentType": "file", "name": part.filename, "size": part.size,
                            "contentType": part.content_type}
    if inline:
        item.update(isInline=True, contentId=part.content_id)
    opening = _("opening an upload session for {name}").format(name=part.filename)
    session = http.call("POST", f"{message_url}/attachments/createUploadSession", what=opening,
                        json_body={"AttachmentItem": item})
    upload_url = _field(session, "uploadUrl", opening)
    query = urlsplit(upload_url).query
    redact.remember(upload_url, query)  # the URL is pre-authenticated: a credential
    what = _("uploading {name}").format(name=part.filename)
    start = 0
    # A file that changes while it is uploaded raises before its last chunk: the draft is
    # then deleted, and nothing is sent.
    for chunk in part_chunks(part, CHUNK):
        end = start + len(chunk) - 1
        # The upload URL carries its own credential: no Authorization header.
        http.call("PUT", upload_url, what=what, data=chunk, authorize=False, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"bytes {start}-{end}/{part.size}"})
        start = end + 1
        if progress:
            progress(part.filename, start, part.size)
