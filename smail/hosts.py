"""Host and mail domain names: IDNA 2008 with UTS 46 mapping (`straße.de` ->
`xn--strae-oqa.de`, not `strasse.de`), and the length rules of RFC 1035 section 2.3.4."""

from __future__ import annotations

import ipaddress
import re
from typing import Final

_ASCII_LABEL: Final = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def ascii_name(name: str) -> str:
    """The ASCII form of a DNS name; ValueError when a label is empty, too long or invalid.

    ASCII names keep `_`, which Windows host names and some internal relays use.
    """
    name = name.strip()
    name = name[:-1] if name.endswith(".") else name
    if not name.isascii():
        import idna  # only for international names

        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(str(exc)) from None
    if not name or len(name) > 253 or not all(_ASCII_LABEL.match(label) for label in name.split(".")):
        raise ValueError(name)
    return name


def server_name(value: str) -> str:
    """A server to connect to: an IP address (IPv6 with or without brackets) or a DNS name."""
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text[1:-1] if text.startswith("[") and text.endswith("]") else text))
    except ValueError:
        return ascii_name(text)
