"""The option values' converters: each turns a string into the option's value and holds that
option's own checks; it raises ConversionError (exit 2, the caller names the option) or an
SMailError with its own exit code (a missing file is exit 8, an unknown mode exit 9)."""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Final

from smail import files, hosts, redact
from smail.cloud import StoreThumbprint
from smail.errors import FileMissingError, InvalidModeError, ParamError, one_of
from smail.i18n import _
from smail.kinds import Mode
from smail.network import IPFamily
from smail.redact import Secret


class ConversionError(ValueError):
    """A value that does not fit its option; the caller names the option."""


# -- converters: each raises ConversionError (exit 2), or an SMailError with its own code ----------

_TRUE = frozenset({"YES", "Y", "1", "TRUE", "ON", "OUI", "O", ""})
_FALSE = frozenset({"NO", "N", "0", "FALSE", "OFF", "NON"})


def _not_a_duration() -> ConversionError:
    return ConversionError(_("expected a duration such as 72H, 30M or 2D"))


def _not_a_host_name() -> ConversionError:
    return ConversionError(_("expected an ASCII host name"))


def _unknown_charset() -> ConversionError:
    return ConversionError(_("unknown character set"))


def yes_no(value: str) -> bool:
    """YES|NO|1|0|TRUE|FALSE (and OUI|NON) -> bool."""
    word = value.strip().upper()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ConversionError(_("expected YES or NO"))


def choice(enum: type[Enum]) -> Callable[[str], Enum]:
    """A converter accepting the names of `enum`, case-insensitively."""
    def convert(value: str) -> Enum:
        key = value.strip().upper()
        if key in enum.__members__:
            return enum[key]
        raise ConversionError(one_of(", ".join(enum.__members__)))
    convert.__name__ = enum.__name__
    return convert


def mode(value: str) -> Mode:
    """/MODE: a value other than SMTP or GRAPH is its own exit code (9)."""
    key = value.strip().upper()
    if key not in Mode.__members__:
        raise InvalidModeError(_("Invalid mode \"{value}\": /MODE must be SMTP or GRAPH.").format(
            value=value))
    return Mode[key]


def integer(low: int, high: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ConversionError(_("expected a whole number")) from None
        if not low <= number <= high:
            raise ConversionError(_("expected a number from {low} to {high}").format(
                low=low, high=high))
        return number
    return convert


def seconds(value: str) -> float:
    """A positive number of seconds (decimals allowed), at most one day."""
    try:
        number = float(value.strip().replace(",", "."))
    except ValueError:
        raise ConversionError(_("expected a number of seconds")) from None
    if not 0 < number <= 86400:
        raise ConversionError(_("expected a number of seconds greater than 0 and at most {limit}").format(limit=86400))
    return number


_UNITS: Final = {"S": 1.0, "M": 60.0, "MIN": 60.0, "H": 3600.0, "D": 86400.0}


def duration(value: str) -> float:
    """`72H`, `30M`, `2D`, `90S` -> seconds; a bare number is hours."""
    match = re.fullmatch(r"\s*(\d+(?:[.,]\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in {*_UNITS, ""}:
        raise _not_a_duration()
    number = float(match.group(1).replace(",", ".")) * _UNITS.get(unit, 3600.0)
    if number <= 0:
        raise _not_a_duration()
    return number


# /RATE between one message an hour and 1,000 a second: a slower rate would wait for days
# between two messages, a faster one limits nothing.
RATE_MIN: Final = 1 / 3600
RATE_MAX: Final = 1000.0


def rate(value: str) -> float:
    """`30/MIN`, `2/S`, `1000/H` -> messages per second, from 1/H to 1000/S."""
    match = re.fullmatch(r"\s*(\d{1,12}(?:[.,]\d{1,12})?)\s*/\s*(S|SEC|MIN|M|H)\s*", value, re.IGNORECASE)
    if not match:
        raise ConversionError(_("expected a rate such as 30/MIN, 2/S or 1000/H"))
    per = {"S": 1.0, "SEC": 1.0, "MIN": 60.0, "M": 60.0, "H": 3600.0}[match.group(2).upper()]
    number = float(match.group(1).replace(",", ".")) / per
    # A rounding margin, so that 1/H itself and 1000/S themselves are accepted.
    if not RATE_MIN * (1 - 1e-9) <= number <= RATE_MAX * (1 + 1e-9):
        raise ConversionError(_("expected a rate from 1/H to 1000/S, such as 30/MIN"))
    return number


def text(value: str) -> str:
    return value


def header_text(value: str) -> str:
    """A value that goes into a header: a CR, LF or NUL would inject headers."""
    if any(ch in value for ch in "\r\n\0"):
        raise ConversionError(_("a line break or a NUL character is not allowed"))
    return value


def server(value: str) -> str:
    """/SMTP_SERVER: an IP address or a host name with valid labels (IDNA for international
    ones), with an optional :port (`[2001:db8::25]:587` for IPv6); normalised, the port kept."""
    try:
        host, port = hosts.server_address(value)
    except ValueError:
        raise ConversionError(_("expected a host name or an IP address, with an optional :port ([2001:db8::25]:587 for IPv6)")) from None
    return host if port is None else hosts.with_port(host, port)


def helo(value: str) -> str:
    """/HELO: an ASCII host name or an address literal, on one line."""
    value = header_text(value).strip()
    if value.startswith("[") and value.endswith("]"):  # an address literal, RFC 5321 section 4.1.3
        import ipaddress

        literal = value[1:-1]
        try:
            if literal.upper().startswith("IPV6:"):
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            raise _not_a_host_name() from None
        return value
    if not value.isascii():
        raise _not_a_host_name()
    try:
        return hosts.ascii_name(value)
    except ValueError:
        raise _not_a_host_name() from None


def code_page(value: str) -> str | None:
    """ANSI and OEM: the system's code pages as `.bat` files live them (cp1252 and cp850
    off Windows); None for any other name."""
    from smail import windows

    word = value.strip().upper()
    return windows.ansi_code_page() if word == "ANSI" else windows.oem_code_page() if word == "OEM" else None


_NOT_CHARSETS: Final = frozenset({"punycode", "idna", "undefined"})


def charset(value: str) -> str:
    """/BODY_CHARSET: the name of a text encoding (rot13, base64 or zlib are not), ANSI or OEM."""
    name = code_page(value) or value.strip()
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        raise _unknown_charset() from None
    # bytes-to-bytes and str-to-str codecs (base64, zlib, rot13...) are not text encodings,
    # and punycode, idna and undefined do not encode a text body.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        raise _unknown_charset()
    return name


def path_of(value: str | None) -> Path | None:
    """A path as given (blanks and quotes around it removed); None when there is none usable."""
    value = (value or "").strip().strip('"')
    return Path(value) if value and "\0" not in value else None


def _path(value: str) -> Path:
    path = path_of(value)
    if path is None:
        raise ConversionError(_("expected a file path"))
    return path


def existing_file(value: str) -> Path:
    """A regular file that must exist when the option is given (exit 8 otherwise)."""
    path = _path(value)
    if not files.is_file(path):
        if files.exists(path):
            raise files.not_regular(path)
        raise FileMissingError.not_found(path)
    return path


def output_path(value: str) -> Path:
    path = _path(value)
    if files.is_dir(path):
        raise ConversionError(_("{path} is a folder; give a file name").format(path=path))
    return path


def folder(value: str) -> Path:
    return _path(value)


def ca_file(value: str) -> Path:
    """/CA_FILE: a file of PEM certificates, checked here so that /DRY_RUN refuses it too."""
    import ssl

    from smail.tls import no_pem_certificates

    path = existing_file(value)
    files.read_bounded(path)  # regular and of a sensible size, before OpenSSL reads it
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError, TypeError, OSError):
        raise no_pem_certificates(path) from None
    return path


def error_file_charset(value: str) -> str:
    """/ERROR_FILE_CHARSET: UTF-8, ANSI or OEM (what `set /p ERR=<error.txt` reads in cmd)."""
    name = code_page(value)
    if name is None and value.strip().upper().replace("_", "-") not in ("UTF-8", "UTF8"):
        raise ConversionError(one_of("UTF-8, ANSI, OEM"))
    return name or "utf-8"


_WINCRED: Final = "@WINCRED:"


def is_credential_reference(value: str) -> bool:
    return value.upper().startswith(_WINCRED)


def secret(value: str) -> Secret:
    """A secret given as it is, or `@wincred:NAME`: a generic credential of the Windows
    Credential Manager."""
    if not is_credential_reference(value):
        return Secret(value)
    from smail import windows

    name = value[len(_WINCRED):].strip()
    try:
        return Secret(windows.read_credential(name))
    except windows.NotOnWindowsError:
        raise ParamError(_("@wincred:{name} reads the Windows Credential Manager, which exists only on Windows.").format(
            name=name)) from None
    except OSError as exc:
        raise FileMissingError(_("The Windows credential {name} could not be read: {reason}").format(
            name=name, reason=exc.strerror or exc)) from None


def secret_file(value: str) -> Secret:
    """A file holding a secret (password, client secret, token): plain text with surrounding
    blanks removed, or encrypted by `SMail /PROTECT_SECRET` (Windows DPAPI)."""
    from smail import windows

    path = existing_file(value)
    data = files.read_bounded(path)
    try:
        blob = windows.parse_protected(data)
        content = files.decode_text(windows.unprotect(blob) if blob is not None else data)
    except windows.NotOnWindowsError:
        raise ParamError(_("{path} was encrypted by SMail /PROTECT_SECRET on Windows; only Windows can decrypt it.").format(
            path=path)) from None
    except (OSError, ValueError) as exc:
        raise FileMissingError(_("{path} cannot be decrypted by this user on this computer: {reason}").format(
            path=path, reason=getattr(exc, "strerror", None) or exc)) from None
    content = content.strip("\r\n\ufeff \t")
    if not content:
        raise ParamError(_("The file {path} is empty.").format(path=path))
    return Secret(content)


def url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.lower().startswith(("https://", "http://")) or len(value) < 10:
        raise ConversionError(_("expected an address starting with https://"))
    return value


# What certlm.msc's Details tab copies besides the hex digits: spaces, and invisible marks
# (U+200E LEFT-TO-RIGHT MARK first of all, also U+200F, U+202A-U+202E, U+FEFF, no-break spaces).
_INVISIBLE = re.compile("[\\s\u00a0\u200b-\u200f\u202a-\u202e\u2060\ufeff:]")


def thumbprint(value: str) -> str:
    """/O365_CERT_THUMBPRINT: a SHA-1 thumbprint as certlm.msc copies it -> 40 upper-case hex digits."""
    digits = _INVISIBLE.sub("", value).upper()
    if not re.fullmatch(r"[0-9A-F]{40}", digits):
        raise ConversionError(_("expected the certificate's SHA-1 thumbprint: 40 hexadecimal digits"))
    return digits


def client_id(value: str) -> str:
    """/O365_MANAGED_IDENTITY: the client id (a GUID) of a user-assigned managed identity."""
    value = value.strip().strip("{}")
    if not re.fullmatch(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}", value):
        raise ConversionError(_("expected the client ID of a user-assigned managed identity (a GUID)"))
    return value.lower()


def proxy_shown(value: str) -> str:
    """A proxy URL as an error may show it: never what stands before its last @ (a password
    may hold `/`, `@` or `#`, and the scheme may be left out)."""
    text = value.strip()
    userinfo, at, rest = text.rpartition("@")
    if not at:
        return text
    scheme, separator, _credentials = userinfo.partition("://")
    return f"{scheme}://****@{rest}" if separator else f"****@{rest}"


def proxy_value(value: str) -> object:
    """/PROXY: http://[user[:password]@]host:port, socks5://... (socks5h too) or NONE."""
    from smail import proxy

    if value.strip().upper() == "NONE":
        return proxy.ProxyOff.NONE
    try:
        return proxy.parse(value)
    except ValueError as exc:
        # Raised as ParamError, not ConversionError: convert() would echo the whole value.
        raise ParamError.invalid_value("PROXY", redact.shown(proxy_shown(value)[:120]), exc) from None


def ip_family(value: str) -> IPFamily:
    """/IP: 4, 6 (IPV4, IPV6 too) or ANY."""
    word = value.strip().upper().removeprefix("IPV")
    for family in IPFamily:
        if word == family.value:
            return family
    raise ConversionError(one_of("4, 6, ANY"))


def scope(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"https?://\S+/\.default", value):
        raise ConversionError(_("expected a resource followed by /.default"))
    return value


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def file_items(value: str, base: Path | None = None) -> list[str]:
    """Items of a `,`/`;` list of files; pieces that together name an existing file (a name
    holding a comma, `Facture 1,2.pdf`) stay one item."""
    pieces = re.split(r"([,;])", value)
    words, separators = pieces[0::2], pieces[1::2]

    def exists(item: str) -> bool:
        path = Path(unquote(item))
        return bool(item.strip()) and files.is_file(path if base is None or path.is_absolute() else base / path)
    items: list[str] = []
    index = 0
    while index < len(words):
        end, joined = index, words[index]
        candidate = joined
        for stop in range(index + 1, min(len(words), index + 16)):
            candidate += separators[stop - 1] + words[stop]
            if exists(candidate):
                end, joined = stop, candidate
        items.append(joined)
        index = end + 1
    return [unquote(item) for item in items if unquote(item)]


def file_list(value: str, base: Path | None = None) -> tuple[Path, ...]:
    """/ATTACH, /INLINE: existing regular files; wildcards expanded, relative to `base`."""
    return tuple(path for item in file_items(value, base) for path in _files_of(item, base))


def _files_of(item: str, base: Path | None) -> list[Path]:
    pattern = item if base is None or Path(item).is_absolute() else str(base / item)
    paths = files.expand_wildcards(pattern)
    for path in paths:
        if not files.is_file(path):
            if files.exists(path):
                raise files.not_regular(path)
            raise FileMissingError.not_found(path)
    return list(paths)


def certificate_list(value: str, base: Path | None = None) -> tuple[Path | StoreThumbprint, ...]:
    """/ENCRYPT_TO: certificate files as file_list(), or thumbprints (40 hex digits, as
    certmgr.msc copies them) of certificates in the Windows store. A file named like a
    thumbprint is given with its folder (.\\name)."""
    found: list[Path | StoreThumbprint] = []
    for item in file_items(value, base):
        try:
            digits = thumbprint(item)
        except ConversionError:
            found += _files_of(item, base)
            continue
        if sys.platform != "win32":
            raise ParamError(_("/ENCRYPT_TO names the certificate {thumbprint} of the Windows certificate store, which exists only on Windows: give its file (.cer, .pem) here.").format(
                thumbprint=digits))
        found.append(StoreThumbprint(digits))
    return tuple(found)
