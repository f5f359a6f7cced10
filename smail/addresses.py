"""Addresses and header lines as the options give them: parsed, checked, IDNA-encoded.

Below the stages: the validation checks /HEADER with it, the message builder and the batch
parse addresses with it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from smail.errors import ParamError
from smail.hosts import ascii_name
from smail.i18n import _
from smail.redact import shown

# Headers SMail writes itself; /HEADER may not set them (RFC 5322 section 3.6, RFC 2045).
# X-Mailer is not among them: a /HEADER X-Mailer replaces SMail's own.
OWNED_HEADERS: Final = frozenset(name.lower() for name in (
    "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID",
    "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
    "Content-ID", "Return-Path", "Received", "X-Priority", "Importance", "X-MSMail-Priority",
    "Disposition-Notification-To", "Return-Receipt-To"))

# A header name must leave room for its value on a 78-character line (RFC 5322 section 2.1.1).
HEADER_NAME_MAX: Final = 76

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 section 3.6.8, ftext
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


def has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def invalid_address(text: str) -> ParamError:
    return ParamError(_("Invalid e-mail address: {address}").format(address=shown(text)))


def invalid_header(header: str) -> ParamError:
    """A /HEADER that is not `X-Name: value` (`header`: as an error may show it)."""
    return ParamError(_("Invalid /HEADER \"{header}\": expected \"X-Name: value\".").format(header=header))


def no_recipient() -> ParamError:
    return ParamError(_("At least one recipient is required: /TO, /CC or /BCC."))


def idna_domain(domain: str, original: str) -> str:
    """`exämple.fr` -> `xn--exmple-cua.fr` (IDNA 2008, UTS 46); ParamError when not valid."""
    try:
        ascii_domain = ascii_name(domain)
    except ValueError:
        ascii_domain = ""
    if not ascii_domain or not all(_DOMAIN_LABEL.match(label) for label in ascii_domain.split(".")):
        raise invalid_address(original)
    return ascii_domain


def normalize_name(name: str | None) -> str | None:
    """Display names with runs of spaces collapsed: readers collapse them anyway."""
    return " ".join(name.split()) or None if name else None


def parse_mailbox(text: str) -> Mailbox:
    """`addr`, `Name <addr>` or `"Last, First" <addr>` -> Mailbox; ParamError if invalid.

    A control character anywhere is refused: it would otherwise reach RCPT TO and the headers.
    """
    text = text.strip()
    if has_control(text):
        raise invalid_address(text)
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
    # RFC 5321 section 4.5.3.1.1: a local part of at most 64 octets.
    if not at or not local or not _LOCAL_PART.match(local) or ".." in local \
            or local.startswith(".") or local.endswith(".") or len(local.encode("utf-8")) > 64:
        raise invalid_address(text)
    return Mailbox(address=f"{local}@{idna_domain(domain, text)}", name=name)


def parse_mailboxes(values: tuple[str, ...] | list[str]) -> tuple[Mailbox, ...]:
    return tuple(parse_mailbox(item) for value in values for item in split_addresses(value))


def parse_header(text: str) -> tuple[str, str]:
    """`X-Name: value` -> (name, value); ParamError for a malformed or owned header."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.match(name) or len(name) > HEADER_NAME_MAX \
            or any(ch in value for ch in "\r\n\0"):
        raise invalid_header(shown(text[:100]))
    if name.lower() in OWNED_HEADERS:
        raise ParamError(_("/HEADER cannot set {name}: SMail writes that header itself.").format(
            name=name))
    return name, value
