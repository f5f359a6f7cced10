"""Message -> RFC 5322 / MIME bytes, as a stream of chunks (SMTP DATA, /SAVE_EML, /DRY_RUN).

The standard `email` package encodes headers and parameters; file parts are base64-encoded
block by block while the message is streamed, so memory stays flat whatever their size.
"""

from __future__ import annotations

import base64
import email.quoprimime
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import BinaryIO, Final

from smail import __version__
from smail.errors import FileMissingError
from smail.message import FilePart, Mailbox, Message
from smail.options import Priority

CRLF: Final = b"\r\n"
LINE: Final = 76                 # RFC 2045 section 6.8: encoded lines of at most 76 characters
BLOCK: Final = 57 * 2048         # raw bytes per read: 57 raw bytes make one 76-character line
# A display name goes in one encoded word when it fits a line: some readers (Python's email
# among them) put a space between two encoded words of a phrase, against RFC 2047 section 6.2.
NAME_WORD_BYTES: Final = 600

# X-Priority (1-5), Importance, X-MSMail-Priority: what Outlook and Thunderbird read.
PRIORITY_HEADERS: Final = {
    Priority.HIGHEST: ("1 (Highest)", "high", "High"),
    Priority.HIGH: ("2 (High)", "high", "High"),
    Priority.NORMAL: ("3 (Normal)", "normal", "Normal"),
    Priority.LOW: ("4 (Low)", "low", "Low"),
    Priority.LOWEST: ("5 (Lowest)", "low", "Low"),
}


@dataclass(frozen=True)
class FileSegment:
    """A file part's content, base64-encoded while it is streamed."""

    part: FilePart

    @property
    def encoded_size(self) -> int:
        chars = 4 * ((self.part.size + 2) // 3)
        return chars + 2 * ((chars + LINE - 1) // LINE)


Segment = bytes | FileSegment


@dataclass(frozen=True)
class Rendered:
    """The exact bytes of one message, produced on demand."""

    segments: tuple[Segment, ...]

    @property
    def size(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else s.encoded_size for s in self.segments)

    def chunks(self) -> Iterator[bytes]:
        """The message as chunks, each ending at a line end (CRLF)."""
        for segment in self.segments:
            if isinstance(segment, bytes):
                yield segment
            else:
                yield from _base64_file(segment.part)

    def write_to(self, stream: BinaryIO) -> int:
        written = 0
        for chunk in self.chunks():
            stream.write(chunk)
            written += len(chunk)
        return written

    def as_bytes(self) -> bytes:
        """The whole message in memory: for tests and small messages only."""
        return b"".join(self.chunks())


def _base64_file(part: FilePart) -> Iterator[bytes]:
    try:
        with part.path.open("rb") as stream:
            while block := stream.read(BLOCK):
                yield base64.encodebytes(block).replace(b"\n", CRLF)
    except OSError as exc:
        raise FileMissingError.unreadable(part.path, exc) from None


def encoded_words(value: str, word_bytes: int = 39) -> str:
    """RFC 2047 base64 words, one per folded line, split between characters.

    Unlike email.header.Header, every space stays inside a word, so the value parses back
    exactly (whitespace between two encoded words is dropped by readers, RFC 2047 section 6.2).
    """
    words, chunk = [], ""
    for char in value:
        if chunk and len((chunk + char).encode("utf-8")) > word_bytes:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\r\n ".join(
        "=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?=" for word in words)


def _plain(value: str, limit: int) -> bool:
    """Whether a header value can go out as it is, without encoding."""
    return (value.isascii() and value.isprintable() and "=?" not in value and len(value) <= limit
            and value == value.strip() and "  " not in value)


def encode_text(value: str, name: str) -> str:
    """A header value: plain when short printable ASCII, else RFC 2047 encoded words."""
    return value if _plain(value, 76 - len(name)) else encoded_words(value)


_ATOM_SPECIALS: Final = set('()<>[]:;@\\,."')


def format_mailbox(box: Mailbox) -> str:
    """`Name <addr>` with the name as atoms, a quoted string or RFC 2047 words."""
    if not box.name:
        return box.address
    name = box.name
    if not _plain(name, 60):
        return f"{encoded_words(name, NAME_WORD_BYTES)} <{box.address}>"
    if any(ch in _ATOM_SPECIALS for ch in name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{box.address}>"


def _address_header(name: str, boxes: tuple[Mailbox, ...]) -> str:
    return f"{name}: " + ",\r\n ".join(format_mailbox(box) for box in boxes) + "\r\n"


def _headers(lines: list[str]) -> bytes:
    return "".join(lines).encode("utf-8")


def _param_name(filename: str) -> str:
    """Content-Type name=: RFC 2047 inside the quotes, which is what Outlook reads."""
    if filename.isascii() and filename.isprintable():
        return '"' + filename.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + encoded_words(filename) + '"'


def _disposition(kind: str, filename: str) -> str:
    """Content-Disposition with filename= or RFC 2231 filename*= continuations."""
    holder = EmailMessage(policy=SMTP_POLICY)
    holder.add_header("Content-Disposition", kind, filename=filename)
    return holder.as_string(policy=SMTP_POLICY).split("\r\n\r\n", 1)[0] + "\r\n"


def _file_part(part: FilePart, inline: bool) -> list[Segment]:
    lines = [f"Content-Type: {part.content_type};\r\n name={_param_name(part.filename)}\r\n",
             "Content-Transfer-Encoding: base64\r\n"]
    if inline:
        lines.append(f"Content-ID: <{part.content_id}>\r\n")
    lines.append(_disposition("inline" if inline else "attachment", part.filename))
    return [_headers(lines) + CRLF, FileSegment(part)]


def _text_part(text: str, subtype: str) -> list[Segment]:
    """UTF-8 text: 7bit when it can, quoted-printable when mostly ASCII, else base64."""
    lines = text.split("\n")
    data = "\r\n".join(lines).encode("utf-8")
    if not data.endswith(CRLF):
        data += CRLF
    if data.isascii() and all(len(line) <= LINE for line in data.split(CRLF)):
        encoding, body = "7bit", data
    elif sum(byte > 127 for byte in data) * 3 < len(data):
        encoding = "quoted-printable"
        body = email.quoprimime.body_encode(data.decode("latin-1"), LINE, "\r\n").encode("ascii")
        if not body.endswith(CRLF):
            body += CRLF
    else:
        encoding = "base64"
        body = base64.encodebytes(data).replace(b"\n", CRLF)
    header = (f"Content-Type: text/{subtype}; charset=\"utf-8\"\r\n"
              f"Content-Transfer-Encoding: {encoding}\r\n\r\n")
    return [header.encode("ascii"), body]


def _multipart(subtype: str, parts: list[list[Segment]], extra: str = "") -> list[Segment]:
    boundary = f"=_SMail_{uuid.uuid4().hex}"
    out: list[Segment] = [
        f"Content-Type: multipart/{subtype};{extra}\r\n boundary=\"{boundary}\"\r\n\r\n".encode("ascii")]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode("ascii"))
        out.extend(part)
        out.append(CRLF)
    out.append(f"--{boundary}--\r\n".encode("ascii"))
    return out


def _body(message: Message) -> list[Segment]:
    if not message.html:
        return _text_part(message.body, "plain")
    html: list[Segment] = _text_part(message.body, "html")
    if message.inline:
        html = _multipart("related", [html] + [_file_part(p, inline=True) for p in message.inline],
                          ' type="text/html";')
    return _multipart("alternative", [_text_part(message.text_alternative or "", "plain"), html])


def _top_headers(message: Message) -> bytes:
    lines = [_address_header("From", (message.sender,))]
    if message.to:
        lines.append(_address_header("To", message.to))
    if message.cc:
        lines.append(_address_header("Cc", message.cc))
    # Bcc recipients are envelope-only: no Bcc header is ever written.
    if message.reply_to:
        lines.append(_address_header("Reply-To", message.reply_to))
    lines.append(f"Subject: {encode_text(message.subject, 'Subject')}\r\n")
    lines.append(f"Date: {message.date}\r\n")
    lines.append(f"Message-ID: {message.message_id}\r\n")
    if message.priority is not None:
        x_priority, importance, ms_priority = PRIORITY_HEADERS[message.priority]
        lines += [f"X-Priority: {x_priority}\r\n", f"Importance: {importance}\r\n",
                  f"X-MSMail-Priority: {ms_priority}\r\n"]
    if message.read_ack:
        lines.append(_address_header("Disposition-Notification-To", (message.sender,)))
    if message.reception_ack:
        lines.append(_address_header("Return-Receipt-To", (message.sender,)))
    for name, value in message.headers:
        lines.append(f"{name}: {encode_text(value, name)}\r\n")
    lines.append(f"X-Mailer: SMail {__version__}\r\n")
    lines.append("MIME-Version: 1.0\r\n")
    return _headers(lines)


def render(message: Message) -> Rendered:
    """The message's exact bytes; boundaries are fixed here, so every stream is identical."""
    body = _body(message)
    if message.attachments:
        body = _multipart("mixed", [body] + [_file_part(p, inline=False)
                                             for p in message.attachments])
    segments: list[Segment] = [_top_headers(message)]
    for segment in body:  # merge adjacent literal bytes into fewer, larger chunks
        if isinstance(segment, bytes) and isinstance(segments[-1], bytes):
            segments[-1] += segment
        else:
            segments.append(segment)
    return Rendered(tuple(segments))


def dot_stuff(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """RFC 5321 section 4.5.2: double a leading dot on every line, across chunk boundaries."""
    at_line_start, after_cr = True, False
    for chunk in chunks:
        if not chunk:
            continue
        if at_line_start and chunk[:1] == b".":
            chunk = b"." + chunk
        elif after_cr and chunk[:2] == b"\n.":
            chunk = b"\n." + chunk[1:]
        chunk = chunk.replace(b"\r\n.", b"\r\n..")
        at_line_start, after_cr = chunk.endswith(CRLF), chunk.endswith(b"\r")
        yield chunk
