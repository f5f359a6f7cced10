"""MessageSettings -> Message: addresses, the decoded body, its text alternative, file parts."""

from __future__ import annotations

import codecs
import email.utils
import logging
import mimetypes
import re
import uuid
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from smail.config import MessageSettings
from smail.errors import FileMissingError, ParamError
from smail.i18n import _
from smail.options import Priority, is_dir

log = logging.getLogger("smail")

# Headers SMail writes itself; /HEADER may not set them (RFC 5322 section 3.6, RFC 2045).
OWNED_HEADERS: Final = frozenset(name.lower() for name in (
    "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "Content-ID", "Return-Path", "Received", "X-Priority", "Importance", "X-MSMail-Priority",
    "Disposition-Notification-To", "Return-Receipt-To"))

# Built-in table only: the Windows registry and /etc/mime.types would make the result
# depend on the machine.
_TYPES: Final = mimetypes.MimeTypes(filenames=())

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext
_LOCAL_PART = re.compile(r"^[^\s@<>()\[\]\\,;:\"]+$")
_DOMAIN_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Mailbox:
    """One address; `address` has its domain in IDNA (ASCII) form."""

    address: str
    name: str | None = None

    @property
    def needs_smtputf8(self) -> bool:
        return not self.address.isascii()

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class FilePart:
    path: Path
    filename: str
    content_type: str
    size: int
    content_id: str | None = None


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


def split_addresses(text: str) -> list[str]:
    """Split on , and ; outside quotes and angle brackets."""
    items, current, quoted, angle = [], [], False, False
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
            continue
        if ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch in ",;" and not quoted and not angle:
            items.append("".join(current))
            current = []
            continue
        current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


_NAMED = re.compile(r'^(?:"((?:[^"\\]|\\.)*)"|([^<>"]*?))\s*<([^<>]*)>$', re.DOTALL)


def idna_domain(domain: str, original: str) -> str:
    """`exämple.fr` -> `xn--exmple-cua.fr`; ParamError when the domain is not valid."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        ascii_domain = ""
    labels = ascii_domain.rstrip(".").split(".")
    if not ascii_domain or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ParamError(_("Invalid e-mail address: {address}").format(address=original))
    return ascii_domain.rstrip(".")


def normalize_name(name: str | None) -> str | None:
    """Display names with runs of spaces collapsed: readers collapse them anyway."""
    return " ".join(name.split()) or None if name else None


def parse_mailbox(text: str) -> Mailbox:
    """`addr`, `Name <addr>` or `"Last, First" <addr>` -> Mailbox; ParamError if invalid."""
    text = text.strip()
    name: str | None = None
    match = _NAMED.match(text)
    if match:
        quoted, plain, address = match.groups()
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        name = normalize_name(name)
    else:
        address = text
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not _LOCAL_PART.match(local) or ".." in local \
            or local.startswith(".") or local.endswith(".") or len(address) > 320:
        raise ParamError(_("Invalid e-mail address: {address}").format(address=text))
    return Mailbox(address=f"{local}@{idna_domain(domain, text)}", name=name)


def parse_mailboxes(values: tuple[str, ...] | list[str]) -> tuple[Mailbox, ...]:
    return tuple(parse_mailbox(item) for value in values for item in split_addresses(value))


def decode_body(data: bytes, charset: str | None) -> str:
    """BOM (UTF-8, UTF-16 LE/BE), else valid UTF-8, else Windows-1252; /BODY_CHARSET wins."""
    if charset:
        try:
            return data.decode(charset).lstrip("\ufeff")
        except UnicodeDecodeError:
            raise ParamError(_("The body file cannot be read as {charset}.").format(
                charset=charset)) from None
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom):].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return decode_windows_1252(data)


_CP1252_UNDEFINED: Final = frozenset({0x81, 0x8D, 0x8F, 0x90, 0x9D})


def decode_windows_1252(data: bytes) -> str:
    """Notepad "ANSI"; the five bytes cp1252 leaves undefined map to the same code points."""
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return "".join(chr(b) if b in _CP1252_UNDEFINED else bytes([b]).decode("cp1252")
                       for b in data)


_META_CHARSET = re.compile(
    r"""(<meta[^>]+charset\s*=\s*["']?)([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class _TextExtractor(HTMLParser):
    """A readable plain-text version of an HTML body: paragraphs, line breaks, links."""

    BLOCKS: Final = frozenset({"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4",
                               "h5", "h6", "blockquote", "pre", "section", "article",
                               "header", "footer", "hr", "address"})
    SKIP: Final = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
            if tag == "pre":
                self.pre += 1
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append("\t")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.lower().startswith(("cid:", "javascript:", "#")):
                target = href[7:] if href.lower().startswith("mailto:") else href
                self.out.append(f" <{target}>")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        joined = "".join(self.out)
        lines = [line.strip(" ") for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return parser.text()


def content_type_of(path: Path) -> str:
    guessed, _encoding = _TYPES.guess_type(path.name, strict=False)
    return guessed or "application/octet-stream"


def _file_part(path: Path, content_id: str | None = None) -> FilePart:
    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise FileMissingError.unreadable(path, exc) from None
    if is_dir(path):
        raise FileMissingError(_("{path} is a folder, not a file.").format(path=path))
    return FilePart(path=path, filename=path.name, content_type=content_type_of(path),
                    size=size, content_id=content_id)


def parse_header(text: str) -> tuple[str, str]:
    """`X-Name: value` -> (name, value); ParamError for a malformed or owned header."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.match(name):
        raise ParamError(_("Invalid /HEADER \"{header}\": expected \"X-Name: value\".").format(
            header=text[:100]))
    if name.lower() in OWNED_HEADERS:
        raise ParamError(_("/HEADER cannot set {name}: SMail writes that header itself.").format(
            name=name))
    return name, value


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


def load_message(settings: MessageSettings) -> Message:
    """Read and check everything the message needs; raises ParamError or FileMissingError."""
    sender = parse_mailbox(settings.from_addr)
    if settings.from_name:
        sender = Mailbox(address=sender.address, name=normalize_name(settings.from_name))
    to, cc, bcc = (parse_mailboxes(v) for v in (settings.to, settings.cc, settings.bcc))
    if not (to or cc or bcc):
        raise ParamError(_("At least one recipient is required: /TO, /CC or /BCC."))
    reply_to = parse_mailboxes([settings.reply_to]) if settings.reply_to else ()
    headers = tuple(parse_header(h) for h in settings.headers)
    html = False
    if settings.body_file is not None:
        path = settings.body_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
        body = decode_body(data, settings.body_charset)
        html = path.suffix.lower() in (".htm", ".html")
        if html:  # the body goes out as UTF-8 whatever the file said
            body = _META_CHARSET.sub(lambda m: m.group(1) + "utf-8", body)
    else:
        body = settings.body_text or ""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    inline = tuple(_file_part(p, content_id=p.name) for p in settings.inline)
    attachments = tuple(_file_part(p) for p in settings.attachments)
    if html:
        _check_inline_references(body, inline)
    return Message(
        sender=sender, to=to, cc=cc, bcc=bcc, reply_to=reply_to, subject=settings.subject,
        body=body, html=html, text_alternative=html_to_text(body) if html else None,
        inline=inline, attachments=attachments, priority=settings.priority,
        read_ack=settings.read_ack, reception_ack=settings.reception_ack, headers=headers,
        message_id=f"<{uuid.uuid4().hex}@{sender.domain}>",
        date=email.utils.formatdate(localtime=True))
