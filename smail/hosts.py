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


def server_address(value: str) -> tuple[str, int | None]:
    """/SMTP_SERVER as (server, port or None): `smtp.example.com`, `smtp.example.com:587`,
    `192.0.2.25:25`, `2001:db8::25` (no port: every colon belongs to the address),
    `[2001:db8::25]` or `[2001:db8::25]:587` (RFC 3986 section 3.2.2); ValueError otherwise."""
    text = value.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(text)
        port_text = rest[1:] if rest else None
        server = str(ipaddress.IPv6Address(host))
    elif text.count(":") == 1:
        host, _colon, port_text = text.partition(":")
        server = server_name(host)
    else:
        server = server_name(text)
    if port_text is None:
        return server, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(text)
    return server, int(port_text)


def with_port(server: str, port: int) -> str:
    """host:port, an IPv6 address in brackets (`[2001:db8::25]:587`)."""
    return f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
