"""Message -> RFC 5322 / MIME bytes, as a stream of chunks (SMTP DATA, /SAVE_EML, /DRY_RUN).

Headers are written here rather than by the standard `email` package, so that every line
stays within the limits below and the output depends on the Message alone: rendering the
same Message again (from the outbox) gives the very bytes /SAVE_EML recorded. File parts are
base64-encoded block by block while the message is streamed, so memory stays flat whatever
their size.
"""

from __future__ import annotations

import base64
import email.quoprimime
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final
from urllib.parse import quote

from smail import __version__
from smail.addresses import Mailbox
from smail.kinds import Priority
from smail.message import FilePart, Message, part_chunks

CRLF: Final = b"\r\n"
LINE: Final = 76                 # RFC 2045 section 6.8: encoded lines of at most 76 characters
BLOCK: Final = 57 * 2048         # raw bytes per read: 57 raw bytes make one 76-character line
FOLD: Final = 76                 # RFC 2047 section 2: a line holding encoded words, at most 76
# Adjacent literal segments are merged into chunks of at most this size (a large one, an
# encrypted message, is not copied again).
MERGE_LIMIT: Final = 1024 * 1024
PLAIN_LINE: Final = 78           # RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters
# RFC 2047 section 2: an encoded word is at most 75 characters; "=?utf-8?b?" and "?=" leave 63,
# that is 15 groups of 4 base64 characters, 45 octets of UTF-8.
WORD_BYTES: Final = 45
# A word that cannot be folded is written as it is up to this length (its line then stays well
# under RFC 5322's 998 octets); a longer one is encoded, which can be split anywhere.
PLAIN_WORD: Final = 900

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
class SMIMERecord:
    """How a rendered message was protected (S/MIME), as an outbox entry records it: whether
    it was signed, and the certificates (PEM, public) it was encrypted to. Never a key."""

    signed: bool
    encrypt_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    """The exact bytes of one message, produced on demand."""

    segments: tuple[Segment, ...]
    # Signed or encrypted (S/MIME): only the MIME bytes carry it, so Graph must take them whole.
    smime: SMIMERecord | None = None

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


def _base64_file(part: FilePart) -> Iterator[bytes]:
    """The part base64-encoded; FileChangedError (before its last block) if the file changed."""
    for block in part_chunks(part, BLOCK):
        yield base64.encodebytes(block).replace(b"\n", CRLF)


# -- header fields ----------------------------------------------------------------------------

def encoded_word(text: str) -> str:
    """One RFC 2047 "B" encoded word (section 4.1)."""
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _word_room(chars: int) -> int:
    """How many octets of text an encoded word of at most `chars` characters carries."""
    return max(0, min(WORD_BYTES, (chars - 12) // 4 * 3))


def _pieces(text: str, room: int, first_room: int | None = None) -> list[str]:
    """`text` cut between characters (RFC 2047 section 5) into pieces of at most `room` octets.

    A piece that must be cut preferably ends just after a space, so that a reader which
    (against RFC 2047 section 6.2) keeps the space between two encoded words shows at worst
    a double space rather than a word split in two.
    """
    pieces, piece = [], ""
    limit = room if first_room is None else first_room
    for char in text:
        if piece and len((piece + char).encode("utf-8")) > limit:
            cut = piece.rfind(" ") + 1
            if 0 < cut < len(piece) and cut * 2 >= len(piece) \
                    and len((piece[cut:] + char).encode("utf-8")) <= room:
                pieces.append(piece[:cut])
                piece = piece[cut:]
            else:
                pieces.append(piece)
                piece = ""
            limit = room
        piece += char
    pieces.append(piece)
    return pieces


class _Field:
    """One header field, folded at whitespace (RFC 5322 section 2.2.3) as its tokens arrive."""

    def __init__(self, name: str) -> None:
        self.lines = [f"{name}:"]
        self.empty = True

    def add(self, token: str) -> None:
        """A token that is never cut, after a space; on a new line when this one is full."""
        if not self.empty and len(self.lines[-1]) + 1 + len(token) > FOLD:
            self.lines.append(" " + token)
        else:
            self.lines[-1] += " " + token
        self.empty = False

    def add_phrase_run(self, text: str) -> None:
        """Text as encoded words inside a phrase: one word when it fits, so that no reader can
        differ on the space between two of them (RFC 2047 section 6.2)."""
        room = _word_room(FOLD - len(self.lines[-1]) - 1)
        octets = len(text.encode("utf-8"))
        if octets > room if octets <= WORD_BYTES else room < 15:
            # On a new line, even right after the colon (FWS, RFC 5322 section 3.2.2).
            self.lines.append("")
            self.empty, room = True, WORD_BYTES
        pieces = [text] if octets <= WORD_BYTES else _pieces(text, WORD_BYTES, room)
        for piece in pieces:
            self.add(encoded_word(piece))

    def add_text_run(self, text: str) -> None:
        """Text as encoded words in unstructured text, filling each line up to 76 characters:
        readers drop the space between two encoded words there (RFC 2047 section 6.2)."""
        first = _word_room(FOLD - len(self.lines[-1]) - 1)
        if first < len(text[:1].encode("utf-8")):
            if self.empty:  # a long field name: on a new line, even right after the colon (FWS)
                self.lines.append("")
            first = WORD_BYTES
        for piece in _pieces(text, WORD_BYTES, first or WORD_BYTES):
            self.add(encoded_word(piece))

    def text(self) -> str:
        return "\r\n".join(self.lines) + "\r\n"


_ATEXT: Final = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")  # RFC 5322 section 3.2.3


def _literal_word(word: str) -> bool:
    """ASCII a reader can take literally: printable and no "=?" that could start an encoded
    word (RFC 2047 section 6.1)."""
    return word.isascii() and word.isprintable() and "=?" not in word and len(word) <= PLAIN_WORD


def _runs(value: str, plain: Iterable[bool]) -> Iterator[tuple[bool, str]]:
    """Words that can go as they are, and runs of words (with their spaces) to encode."""
    run: list[str] = []
    for word, ok in zip(value.split(" "), plain, strict=True):
        if ok:
            if run:
                yield False, " ".join(run)
                run = []
            yield True, word
        else:
            run.append(word)
    if run:
        yield False, " ".join(run)


def unstructured(name: str, value: str) -> str:
    """`Name: value` for Subject and /HEADER: printable ASCII words as they are, the rest in
    encoded words; folded at 76 characters where a space allows it (RFC 2047 section 2), and
    never over 998 octets (RFC 5322 section 2.1.1)."""
    field = _Field(name)
    if value:
        words = value.split(" ")
        simple = value == value.strip() and "  " not in value and all(words)
        plain = [simple and _literal_word(word) for word in words]
        if not simple or not any(plain):
            field.add_text_run(value)
        else:
            for ok, text in _runs(value, plain):
                if ok:
                    field.add(text)
                else:
                    field.add_text_run(text)
    return field.text()


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _add_name(field: _Field, name: str) -> None:
    """A display name (a phrase, RFC 5322 section 3.2.5): atoms, quoted strings and encoded
    words (RFC 2047 section 5), never two encoded words side by side unless one word cannot
    hold the text: readers differ on the space between them (RFC 2047 section 6.2 drops it,
    Python 3.11's email keeps it)."""
    words = name.split(" ")
    plain = [_literal_word(word) for word in words]
    chunks = list(_runs(name, plain))
    index = 0
    while index < len(chunks):
        ok, text = chunks[index]
        if not ok:
            field.add_phrase_run(text)
            index += 1
            continue
        # Printable ASCII words: atoms where they can be, else one quoted string when it fits.
        group = [text]
        while index + len(group) < len(chunks) and chunks[index + len(group)][0]:
            group.append(chunks[index + len(group)][1])
        index += len(group)
        if all(_ATEXT.match(word) for word in group):
            for word in group:
                field.add(word)
        elif len(" ".join(group)) + 2 < FOLD:
            field.add(_quoted(" ".join(group)))
        else:
            for word in group:
                field.add(word if _ATEXT.match(word) else _quoted(word))


def address_field(name: str, boxes: Iterable[Mailbox]) -> str:
    """`Name: Display <addr>, ...`, folded between words and addresses."""
    field = _Field(name)
    boxes = tuple(boxes)
    for position, box in enumerate(boxes, 1):
        comma = "," if position < len(boxes) else ""
        if box.name:
            _add_name(field, box.name)
            field.add(f"<{box.address}>{comma}")
        else:
            field.add(box.address + comma)
    return field.text()


# -- MIME parts -------------------------------------------------------------------------------

_RFC2231_SAFE: Final = "!#$&+-.^_`|~"  # RFC 2231 section 7 attribute-char, with ALPHA and DIGIT


def _rfc2231(parameter: str, value: str) -> list[str]:
    """`parameter*=utf-8''...` (RFC 2231 section 4), or its numbered continuations
    (section 3) when one line cannot hold it; each string is one line of the field."""
    escaped = [quote(char.encode("utf-8"), safe=_RFC2231_SAFE) for char in value]
    single = f"{parameter}*=utf-8''" + "".join(escaped)
    if len(single) + 2 <= FOLD:
        return [single]
    # Sections end between characters: decoders (Python's email among them) decode each
    # section on its own, so a character cut in two would be lost.
    lines = [f"{parameter}*0*=utf-8''"]
    for char in escaped:
        if len(lines[-1]) + len(char) + 2 > FOLD:
            lines.append(f"{parameter}*{len(lines)}*=")
        lines[-1] += char
    return lines


def _plain_parameter(value: str) -> bool:
    return _literal_word(value) and value == value.strip() and len(value) + 12 <= PLAIN_LINE


def _name_parameter(filename: str) -> str:
    """Content-Type name= (read by Outlook): quoted, in RFC 2047 words inside the quotes when
    the name is not plain ASCII, so that a name that merely looks encoded keeps its letters."""
    if _plain_parameter(filename):
        return _quoted(filename)
    pieces = _pieces(filename, WORD_BYTES, _word_room(FOLD - len(' name="')))
    return '"' + "\r\n ".join(encoded_word(piece) for piece in pieces) + '"'


def _disposition(kind: str, filename: str) -> str:
    """Content-Disposition with filename="..." when plain, else RFC 2231 filename*= (read by
    Thunderbird and Gmail, and never taken for RFC 2047 words by a decoder)."""
    if _plain_parameter(filename):
        parameters = [f"filename={_quoted(filename)}"]
    else:
        parameters = _rfc2231("filename", filename)
    return f"Content-Disposition: {kind};\r\n " + ";\r\n ".join(parameters) + "\r\n"


def _part_segments(part: FilePart, inline: bool) -> list[Segment]:
    lines = [f"Content-Type: {part.content_type};\r\n name={_name_parameter(part.filename)}\r\n",
             "Content-Transfer-Encoding: base64\r\n"]
    if inline:
        lines.append(f"Content-ID: <{part.content_id}>\r\n")
    lines.append(_disposition("inline" if inline else "attachment", part.filename))
    return ["".join(lines).encode("utf-8") + CRLF, FileSegment(part)]


def _bare_line_end(data: bytes) -> bool:
    """A CR or LF not in a CRLF pair (RFC 2045 section 2.7 forbids them in 7bit text)."""
    return b"\r" in data.replace(CRLF, b"") or data.count(b"\n") != data.count(CRLF)


def _text_part(text: str, subtype: str) -> list[Segment]:
    """UTF-8 text: 7bit when it can (RFC 2045 section 2.7: short lines, no NUL, no lone CR or
    LF), quoted-printable when mostly ASCII, else base64; the last two carry any octet."""
    data = "\r\n".join(text.split("\n")).encode("utf-8")
    if not data.endswith(CRLF):
        data += CRLF
    bare = _bare_line_end(data)
    if data.isascii() and not bare and b"\0" not in data \
            and all(len(line) <= LINE for line in data.split(CRLF)):
        encoding, body = "7bit", data
    elif not bare and sum(byte > 127 for byte in data) * 3 < len(data):
        # quoprimime turns a lone CR into a line break: such text goes in base64 instead.
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


def boundary(message_id: str, subtype: str, parts: list[list[Segment]]) -> str:
    """A boundary fixed by the Message-ID and the multipart's kind (one of each per message),
    so that rendering again gives the same bytes, and found in none of the parts (RFC 2046
    section 5.1.1); base64 and quoted-printable content cannot hold "=_"."""
    literal = [segment for part in parts for segment in part if isinstance(segment, bytes)]
    attempt = 0
    while True:
        seed = f"{message_id}\0{subtype}\0{attempt}".encode("utf-8", "surrogatepass")
        candidate = "=_SMail_" + hashlib.sha256(seed).hexdigest()[:32]
        if not any(candidate.encode("ascii") in segment for segment in literal):
            return candidate
        attempt += 1


def _multipart(message: Message, subtype: str, parts: list[list[Segment]], extra: str = "") -> list[Segment]:
    mark = boundary(message.message_id, subtype, parts)
    out: list[Segment] = [
        f"Content-Type: multipart/{subtype};{extra}\r\n boundary=\"{mark}\"\r\n\r\n".encode("ascii")]
    for part in parts:
        out.append(f"--{mark}\r\n".encode("ascii"))
        out.extend(part)
        out.append(CRLF)
    out.append(f"--{mark}--\r\n".encode("ascii"))
    return out


def _body(message: Message) -> list[Segment]:
    if not message.html:
        return _text_part(message.body, "plain")
    html: list[Segment] = _text_part(message.body, "html")
    if message.inline:
        html = _multipart(message, "related",
                          [html] + [_part_segments(p, inline=True) for p in message.inline],
                          ' type="text/html";')
    return _multipart(message, "alternative", [_text_part(message.text_alternative or "", "plain"), html])


def _top_headers(message: Message) -> bytes:
    lines = [address_field("From", (message.sender,))]
    if message.to:
        lines.append(address_field("To", message.to))
    if message.cc:
        lines.append(address_field("Cc", message.cc))
    # Bcc recipients are envelope-only: no Bcc header is ever written.
    if message.reply_to:
        lines.append(address_field("Reply-To", message.reply_to))
    lines.append(unstructured("Subject", message.subject))
    lines.append(f"Date: {message.date}\r\n")
    lines.append(f"Message-ID: {message.message_id}\r\n")
    if message.priority is not None:
        x_priority, importance, ms_priority = PRIORITY_HEADERS[message.priority]
        lines += [f"X-Priority: {x_priority}\r\n", f"Importance: {importance}\r\n",
                  f"X-MSMail-Priority: {ms_priority}\r\n"]
    if message.read_ack:
        lines.append(address_field("Disposition-Notification-To", (message.sender,)))
    if message.reception_ack:
        lines.append(address_field("Return-Receipt-To", (message.sender,)))
    for name, value in message.headers:  # as given, duplicates included
        lines.append(unstructured(name, value))
    if not any(name.lower() == "x-mailer" for name, _value in message.headers):
        lines.append(f"X-Mailer: SMail {__version__}\r\n")
    lines.append("MIME-Version: 1.0\r\n")
    return "".join(lines).encode("utf-8")


def top_headers(message: Message) -> bytes:
    """The message's own header fields, From to MIME-Version (the content's come after)."""
    return _top_headers(message)


def content(message: Message) -> list[Segment]:
    """The message's content as one MIME entity: its Content-* fields, a blank line, the body.

    Only 7-bit text with CRLF line ends: text parts are 7bit, quoted-printable or base64 and
    file parts base64, so that the entity can be signed as it is (RFC 8551 section 3.1.1).
    """
    body = _body(message)
    if message.attachments:
        body = _multipart(message, "mixed", [body] + [_part_segments(p, inline=False)
                                                      for p in message.attachments])
    return body


def assemble(head: bytes, body: Iterable[Segment], *, smime: SMIMERecord | None = None) -> Rendered:
    """Header fields and content as one Rendered, adjacent literal bytes merged into larger chunks."""
    segments: list[Segment] = [head]
    for segment in body:
        last = segments[-1]
        if isinstance(segment, bytes) and isinstance(last, bytes) and len(last) + len(segment) <= MERGE_LIMIT:
            segments[-1] = last + segment
        else:
            segments.append(segment)
    return Rendered(tuple(segments), smime=smime)


def render(message: Message) -> Rendered:
    """The message's exact bytes, the same each time for the same Message."""
    return assemble(_top_headers(message), content(message))


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
