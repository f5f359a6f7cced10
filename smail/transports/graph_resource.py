"""A message as the Microsoft Graph message resource (Microsoft's page "message resource
type"): pure functions, no request made."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from smail.addresses import Mailbox
from smail.kinds import Priority
from smail.message import FilePart, Message, read_part
from smail.mime import address_field

IMPORTANCE: Final = {Priority.HIGHEST: "high", Priority.HIGH: "high", Priority.NORMAL: "normal",
                     Priority.LOW: "low", Priority.LOWEST: "low"}


def _recipients(boxes: tuple[Mailbox, ...]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": box.address, **({"name": box.name} if box.name else {})}}
            for box in boxes]


def file_attachment(part: FilePart, inline: bool) -> dict[str, Any]:
    attachment: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment", "name": part.filename,
        "contentType": part.content_type,
        "contentBytes": base64.b64encode(read_part(part)).decode("ascii")}
    if inline:
        attachment.update(isInline=True, contentId=part.content_id)
    return attachment


def encoded_size(part: FilePart) -> int:
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


def bcc_header(message: Message) -> bytes:
    return address_field("Bcc", message.bcc).encode("utf-8") if message.bcc else b""


@dataclass
class Parts:
    inline: tuple[FilePart, ...]
    attachments: tuple[FilePart, ...]

    def all(self) -> Iterator[tuple[FilePart, bool]]:
        yield from ((p, True) for p in self.inline)
        yield from ((p, False) for p in self.attachments)
