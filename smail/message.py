"""MessageSettings -> Message: addresses, the decoded body, its text alternative, file parts."""

from __future__ import annotations

import email.utils
import functools
import logging
import mimetypes
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from smail.addresses import (
    Mailbox,
    has_control,
    invalid_address,
    invalid_header,
    no_recipient,
    normalize_name,
    parse_header,
    parse_mailbox,
    parse_mailboxes,
)
from smail.errors import FileChangedError, FileMissingError, ParamError
from smail.files import BODY_LIMIT, decode_text, decode_windows_1252, open_input, read_bounded
from smail.i18n import _
from smail.kinds import Priority
from smail.redact import shown
from smail.settings import MessageSettings, is_html

log = logging.getLogger("smail")


@functools.cache
def _types() -> mimetypes.MimeTypes:
    """Python's built-in table only: the Windows registry and /etc/mime.types would make the
    result depend on the machine. Made on first use: building it costs start-up time."""
    return mimetypes.MimeTypes(filenames=())

@dataclass(frozen=True)
class FilePart:
    """A file to attach, with what it was when loaded: it is sent only if it still is.

    `size`, `mtime_ns` and `file_id` (st_dev, st_ino) come from one fstat of the opened file;
    `file_id` is None where the OS gives no inode number, `mtime_ns` None for a part built
    by hand (then only the size is checked).
    """

    path: Path
    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    mtime_ns: int | None = None
    file_id: tuple[int, int] | None = None


@dataclass(frozen=True, kw_only=True)
class Message:
    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...]
    subject: str
    body: str
    html: bool
    text_alternative: str | None
    inline: tuple[FilePart, ...]
    attachments: tuple[FilePart, ...]
    priority: Priority | None
    read_ack: bool
    reception_ack: bool
    headers: tuple[tuple[str, str], ...]
    message_id: str
    date: str

    @property
    def recipients(self) -> tuple[Mailbox, ...]:
        """Envelope recipients: To, Cc and Bcc, each address once."""
        seen: dict[str, Mailbox] = {}
        for box in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(box.address.lower(), box)
        return tuple(seen.values())

    @property
    def needs_smtputf8(self) -> bool:
        return any(box.needs_smtputf8 for box in (self.sender, *self.to, *self.cc, *self.bcc,
                                                   *self.reply_to))


def decode_body(data: bytes, charset: str | None) -> str:
    """BOM (UTF-8, UTF-16 LE/BE), else valid UTF-8, else Windows-1252; /BODY_CHARSET wins."""
    if charset:
        try:
            return data.decode(charset).lstrip("\ufeff")
        except UnicodeDecodeError:
            raise ParamError(_("The body file cannot be read as {charset}.").format(
                charset=charset)) from None
    return decode_text(data)


_META_CHARSET = re.compile(
    r"""(<meta[^>]+charset\s*=\s*["']?)([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body (its text/plain alternative)."""
    from smail.htmltext import html_to_text as convert  # html.parser: only for HTML bodies

    return convert(html)


def content_type_of(name: str | Path) -> str:
    guessed, _encoding = _types().guess_type(Path(name).name, strict=False)
    return guessed or "application/octet-stream"


def file_name(path: Path) -> str:
    """The name a file part goes out under; ParamError when it holds a line break.

    A name listed by the OS may hold bytes that are not UTF-8 (lone surrogates
    U+DC80-U+DCFF, PEP 383): it is decoded from those raw bytes as UTF-8, else Windows-1252.
    """
    name = path.name
    if any("\ud800" <= ch <= "\udfff" for ch in name):
        try:
            raw = os.fsencode(name)
        except UnicodeError:
            raw = name.encode("utf-8", "surrogatepass")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            name = decode_windows_1252(raw)
    if "\r" in name or "\n" in name:
        raise ParamError(_("The file name {path} contains a line break, which a message cannot carry.")
                         .format(path=shown(str(path.with_name(name)))))
    return name


def _load_part(path: Path, content_id: bool = False) -> FilePart:
    """A regular file's part, with the size, time and identity of the file opened now."""
    name = file_name(path)
    with open_input(path) as stream:
        info = os.fstat(stream.fileno())
    return FilePart(path=path, filename=name, content_type=content_type_of(name), size=info.st_size,
                    content_id=name if content_id else None, mtime_ns=info.st_mtime_ns,
                    file_id=(info.st_dev, info.st_ino) if info.st_ino else None)


def _changed(part: FilePart) -> FileChangedError:
    return FileChangedError(_("{path} changed while the message was being sent: nothing was sent. "
                              "Send it again once the file is complete.").format(path=part.path))


def _same_file(part: FilePart, info: os.stat_result) -> bool:
    return (info.st_size == part.size
            and (part.mtime_ns is None or info.st_mtime_ns == part.mtime_ns)
            and (part.file_id is None or not info.st_ino or (info.st_dev, info.st_ino) == part.file_id))


class PartReader:
    """A file part read as it was when loaded, else FileChangedError (exit 8).

    At most `size` bytes are returned; once they are all read, the file must be at its end,
    and both the open file and the file the path names now must still match the part
    (size, modification time, identity), so that the last bytes never go out otherwise.
    """

    def __init__(self, part: FilePart) -> None:
        self.part = part
        try:
            self._stream = open_input(part.path)
        except FileMissingError:
            if part.mtime_ns is not None and not os.path.lexists(part.path):
                raise _changed(part) from None  # it was there when the message was loaded
            raise
        self._left = part.size
        self._verified = False
        try:
            if not _same_file(part, os.fstat(self._stream.fileno())):
                raise _changed(part)
        except BaseException:
            self._stream.close()
            raise

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative); b"" at the end."""
        want = self._left if size < 0 else min(size, self._left)
        try:
            data = self._stream.read(want) if want else b""
        except OSError as exc:
            raise FileMissingError.unreadable(self.part.path, exc) from None
        if len(data) < want:  # a regular file reads short only at its end: it was truncated
            raise _changed(self.part)
        self._left -= len(data)
        if not self._left:
            self._verify()
        return data

    def _verify(self) -> None:
        if self._verified:
            return
        try:
            grown = self._stream.read(1)
            now_open, now_named = os.fstat(self._stream.fileno()), os.stat(self.part.path)
        except FileNotFoundError:
            raise _changed(self.part) from None
        except OSError as exc:
            raise FileMissingError.unreadable(self.part.path, exc) from None
        if grown or not _same_file(self.part, now_open) or not _same_file(self.part, now_named):
            raise _changed(self.part)
        self._verified = True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_part(part: FilePart) -> PartReader:
    """The part's file opened for reading, checked against what was loaded (exit 8 otherwise)."""
    return PartReader(part)


def part_chunks(part: FilePart, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """The part's content in chunks; FileChangedError instead of the last one if it changed."""
    with open_part(part) as reader:
        while chunk := reader.read(chunk_size):
            yield chunk


def read_part(part: FilePart) -> bytes:
    """A (small) part's whole content, with the same checks as while streaming it."""
    with open_part(part) as reader:
        return reader.read()


_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)


def _check_inline_references(html: str, inline: tuple[FilePart, ...]) -> None:
    referenced = {unquote(cid) for cid in _CID.findall(html)}
    available = {part.content_id for part in inline}
    for part in inline:
        if part.content_id not in referenced:
            log.warning(_("Inline file {name} is not referenced by the HTML body (cid:{name}).").format(
                name=part.content_id))
    for cid in sorted(referenced - available):
        log.warning(_("The HTML body references cid:{name} but no /INLINE file has that name.").format(
            name=cid))


def _new_id() -> str:
    return os.urandom(16).hex()  # what uuid4().hex holds, without loading uuid


@dataclass(frozen=True, kw_only=True)
class Draft:
    """A message with everything read and checked but its final body: a batch row renders its
    body template from `body` before the message is made (finish_message)."""

    settings: MessageSettings
    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...]
    headers: tuple[tuple[str, str], ...]
    body: str
    html: bool
    inline: tuple[FilePart, ...]
    attachments: tuple[FilePart, ...]


def draft_message(settings: MessageSettings) -> Draft:
    """Read and check everything the message needs; raises ParamError or FileMissingError."""
    sender = parse_mailbox(settings.from_addr)
    if settings.from_name:
        if has_control(settings.from_name):
            raise invalid_address(f"{settings.from_name} <{settings.from_addr}>")
        sender = Mailbox(address=sender.address, name=normalize_name(settings.from_name))
    to, cc, bcc = (parse_mailboxes(v) for v in (settings.to, settings.cc, settings.bcc))
    if not (to or cc or bcc):
        raise no_recipient()
    reply_to = parse_mailboxes([settings.reply_to]) if settings.reply_to else ()
    headers = tuple(parse_header(h) for h in settings.headers)
    html = False
    if settings.body_file is not None:
        path = settings.body_file
        body = decode_body(read_bounded(path, BODY_LIMIT), settings.body_charset)
        html = is_html(path)
        if html:  # the body goes out as UTF-8 whatever the file said
            body = _META_CHARSET.sub(lambda m: m.group(1) + "utf-8", body)
    else:
        body = settings.body_text or ""
    return Draft(settings=settings, sender=sender, to=to, cc=cc, bcc=bcc, reply_to=reply_to, headers=headers,
                 body=normalize_newlines(body), html=html,
                 inline=tuple(_load_part(p, content_id=True) for p in settings.inline),
                 attachments=tuple(_load_part(p) for p in settings.attachments))


def finish_message(draft: Draft, *, body: str | None = None, now: Callable[[], float] = time.time,
                   new_id: Callable[[], str] = _new_id) -> Message:
    """The message, with `body` (a rendered template) instead of the draft's when given.

    `now` and `new_id` give the Date and the Message-ID's left part (fixed ones for tests).
    """
    text = draft.body if body is None else normalize_newlines(body)
    if draft.html:
        _check_inline_references(text, draft.inline)
    settings = draft.settings
    return Message(
        sender=draft.sender, to=draft.to, cc=draft.cc, bcc=draft.bcc, reply_to=draft.reply_to,
        subject=settings.subject, body=text, html=draft.html,
        text_alternative=html_to_text(text) if draft.html else None,
        inline=draft.inline, attachments=draft.attachments, priority=settings.priority,
        read_ack=settings.read_ack, reception_ack=settings.reception_ack, headers=draft.headers,
        message_id=f"<{new_id()}@{draft.sender.domain}>",
        date=email.utils.formatdate(now(), localtime=True))


def load_message(settings: MessageSettings, *, now: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = _new_id) -> Message:
    """Read and check everything the message needs; raises ParamError or FileMissingError.

    `now` and `new_id` give the Date and the Message-ID's left part (fixed ones for tests).
    """
    return finish_message(draft_message(settings), now=now, new_id=new_id)


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR as LF: the message is written with CRLF line ends, whatever the source had."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- a message read back (an outbox entry) -------------------------------------------------------

# A Message-ID as SMail makes them (RFC 5322 section 3.6.4): printable ASCII, no space or bracket inside.
_MESSAGE_ID: Final = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")
# type/subtype, without parameters (RFC 6838 section 4.2).
_CONTENT_TYPE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def _seen(text: str) -> str:
    """`text` as an error may show it: control characters and lone surrogates escaped."""
    return shown(text.encode("utf-8", "backslashreplace").decode("utf-8")[:100])


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no message can carry it
        raise ParamError(_("{what} holds text that is not valid Unicode: {value}").format(
            what=what, value=_seen(text))) from None


def _check_mailbox(box: Mailbox) -> None:
    text = f"{box.name} <{box.address}>" if box.name else box.address
    try:
        text.encode("utf-8")
        same = parse_mailbox(box.address) == Mailbox(address=box.address)
    except (UnicodeEncodeError, ParamError):
        same = False
    if not same or (box.name is not None and (has_control(box.name) or normalize_name(box.name) != box.name)):
        raise invalid_address(_seen(text))


def _a_date(text: str) -> bool:
    """Whether `text` is an RFC 5322 date of the calendar (section 3.3)."""
    try:
        email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return False
    return True


def check_message(message: Message) -> None:
    """The command line's checks, for a Message read back from disk (an outbox entry edited by
    hand must not add a Bcc: or carry RCPT parameters); ParamError naming what is wrong."""
    for box in (message.sender, *message.to, *message.cc, *message.bcc, *message.reply_to):
        _check_mailbox(box)
    if not message.recipients:
        raise no_recipient()
    for name, value in message.headers:
        _check_text(name + value, "/HEADER")
        if parse_header(f"{name}: {value}") != (name, value):
            raise invalid_header(_seen(f"{name}: {value}"))
    for text, what in ((message.subject, "/SUBJECT"), (message.body, "/BODY"),
                       (message.text_alternative or "", "/BODY")):
        _check_text(text, what)
    if not _MESSAGE_ID.match(message.message_id):
        raise ParamError(_("Invalid Message-ID: {value}").format(value=_seen(message.message_id)))
    if not (message.date.isascii() and message.date.isprintable() and _a_date(message.date)):
        raise ParamError(_("Invalid Date: {value}").format(value=_seen(message.date)))
    for part in (*message.inline, *message.attachments):
        _check_text(part.filename, "/ATTACH")
        _check_text(part.content_id or "", "/INLINE")
        if has_control(part.filename) or not part.filename.strip():
            raise ParamError(_("Invalid file name: {name}").format(name=_seen(part.filename)))
        if not _CONTENT_TYPE.match(part.content_type):
            raise ParamError(_("Invalid content type {value} for {name}.").format(
                value=_seen(part.content_type), name=part.filename))
        if part.content_id is not None and (has_control(part.content_id) or any(c in part.content_id for c in "<>")
                                            or not part.content_id.strip()):
            raise ParamError(_("Invalid content ID {value} for {name}.").format(
                value=_seen(part.content_id), name=part.filename))
