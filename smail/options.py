"""The table of every option, and argv / @file / SMAIL_* / INI -> RawOptions.

Every consumer reads the one OPTIONS table: the parser, the help screen and its defaults,
the SMAIL_<NAME> environment lookup, the INI keys, the typo hints, the converters (which hold
each option's own checks), the secret registry and the batch columns.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

from smail import files, hosts, redact
from smail.cloud import CertStore, Cloud, SignIn
from smail.errors import FileMissingError, InvalidModeError, ParamError, SMailError
from smail.i18n import N_, Language, _
from smail.kinds import Mode, Priority
from smail.log import LogLevel
from smail.output import ErrorFileOnSuccess
from smail.redact import Secret
from smail.sasl import AuthType
from smail.tls import TLSMode, TLSVersion


class Group(Enum):
    GENERAL = N_("General options")
    MESSAGE = N_("Message options")
    MANY = N_("Many messages: batch, outbox, result file")
    SMTP = N_("SMTP options (/MODE=SMTP)")
    GRAPH = N_("Microsoft Graph options (/MODE=GRAPH)")


class SecretScope(Enum):
    USER = "USER"
    MACHINE = "MACHINE"


class ConversionError(ValueError):
    """A value that does not fit its option; the caller names the option."""


# -- converters: each raises ConversionError (exit 2), or an SMailError with its own code ----------

_TRUE = frozenset({"YES", "Y", "1", "TRUE", "ON", "OUI", "O", ""})
_FALSE = frozenset({"NO", "N", "0", "FALSE", "OFF", "NON"})


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
        raise ConversionError(_("expected one of {values}").format(
            values=", ".join(enum.__members__)))
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
        raise ConversionError(_("expected a duration such as 72H, 30M or 2D"))
    number = float(match.group(1).replace(",", ".")) * _UNITS.get(unit, 3600.0)
    if number <= 0:
        raise ConversionError(_("expected a duration such as 72H, 30M or 2D"))
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
    """/SMTP_SERVER: an IP address or a host name with valid labels (IDNA for international ones)."""
    try:
        return hosts.server_name(value)
    except ValueError:
        raise ConversionError(_("expected a host name or an IP address")) from None


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
            raise ConversionError(_("expected an ASCII host name")) from None
        return value
    if not value.isascii():
        raise ConversionError(_("expected an ASCII host name"))
    try:
        return hosts.ascii_name(value)
    except ValueError:
        raise ConversionError(_("expected an ASCII host name")) from None


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
        raise ConversionError(_("unknown character set")) from None
    # bytes-to-bytes and str-to-str codecs (base64, zlib, rot13...) are not text encodings,
    # and punycode, idna and undefined do not encode a text body.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        raise ConversionError(_("unknown character set"))
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
        raise FileMissingError(_("File not found: {path}").format(path=path))
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

    path = existing_file(value)
    files.read_bounded(path)  # regular and of a sensible size, before OpenSSL reads it
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError, TypeError, OSError):
        raise ParamError(_("/CA_FILE {path} does not contain PEM certificates.").format(path=path)) from None
    return path


def error_file_charset(value: str) -> str:
    """/ERROR_FILE_CHARSET: UTF-8, ANSI or OEM (what `set /p ERR=<error.txt` reads in cmd)."""
    name = code_page(value)
    if name is None and value.strip().upper().replace("_", "-") not in ("UTF-8", "UTF8"):
        raise ConversionError(_("expected one of {values}").format(values="UTF-8, ANSI, OEM"))
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


def scope(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"https?://\S+/\.default", value):
        raise ConversionError(_("expected a resource followed by /.default"))
    return value


def _unquote(value: str) -> str:
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
        path = Path(_unquote(item))
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
    return [_unquote(item) for item in items if _unquote(item)]


def file_list(value: str, base: Path | None = None) -> tuple[Path, ...]:
    """/ATTACH, /INLINE: existing regular files; wildcards expanded, relative to `base`."""
    paths: list[Path] = []
    for item in file_items(value, base):
        pattern = item if base is None or Path(item).is_absolute() else str(base / item)
        for path in files.expand_wildcards(pattern):
            if not files.is_file(path):
                if files.exists(path):
                    raise files.not_regular(path)
                raise FileMissingError(_("File not found: {path}").format(path=path))
            paths.append(path)
    return tuple(paths)


@dataclass(frozen=True, kw_only=True)
class Option:
    """One command-line option: /NAME, SMAIL_NAME and the INI key `name`."""

    name: str
    group: Group
    help: str
    metavar: str = ""
    convert: Callable[[str], object] = text
    default: object = None
    default_text: str | None = None   # msgid, when the default is not one value (ports...)
    aliases: tuple[str, ...] = ()
    switch: bool = False
    repeat: bool = False
    secret: bool = False               # its value is masked everywhere
    secret_file_of: str | None = None  # this file option holds the secret of that option
    input_file: bool = False           # a file SMail reads: no output may name it
    output_file: bool = False          # a file SMail writes
    per_row: bool = False              # a /BATCH column may set it for its row
    required_in: frozenset[Mode] = frozenset()

    @property
    def names_a_file(self) -> bool:
        """Its value is a path: kept as the bytes the OS gave, since it names a real file."""
        return self.input_file or self.output_file or self.convert is folder

    def env_name(self, name: str | None = None) -> str:
        """The environment variable of this option (or of one of its aliases): SMAIL_<NAME>."""
        return f"SMAIL_{name or self.name}"

    @property
    def env_names(self) -> tuple[str, ...]:
        """SMAIL_<NAME>, then SMAIL_<ALIAS> for the aliases that can name a variable."""
        return tuple(self.env_name(name) for name in (self.name, *self.aliases) if name.isidentifier())

    def default_shown(self) -> str | None:
        """The default as the help screen shows it, or None when there is none."""
        if self.default_text is not None:
            return _(self.default_text)
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "YES" if self.default else "NO"
        if isinstance(self.default, Enum):
            return str(self.default.value)
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return str(self.default)


_GENERAL, _MESSAGE, _MANY, _SMTP, _GRAPH = Group.GENERAL, Group.MESSAGE, Group.MANY, Group.SMTP, Group.GRAPH
SMTP_ONLY, GRAPH_ONLY = frozenset({Mode.SMTP}), frozenset({Mode.GRAPH})

OPTIONS: Final[tuple[Option, ...]] = (
    Option(name="MODE", group=_GENERAL, metavar="SMTP|GRAPH", convert=mode, default=Mode.SMTP,
           help=N_("Transport: SMTP or GRAPH.")),
    Option(name="LANG", group=_GENERAL, metavar="FR|EN", convert=choice(Language),
           default_text=N_("the system's language"),
           help=N_("Language of messages, help and log.")),
    Option(name="RETRY", group=_GENERAL, metavar="N", convert=integer(1, 100), default=1,
           help=N_("Number of send attempts, 1 to 100; only transient failures are retried.")),
    Option(name="RETRY_DELAY", group=_GENERAL, metavar="S", convert=seconds, default=5.0,
           help=N_("Seconds before the second attempt, doubled each time.")),
    Option(name="TIMEOUT", group=_GENERAL, metavar="S", convert=seconds, default=60.0,
           help=N_("Network timeout in seconds for each operation.")),
    Option(name="LOG", group=_GENERAL, metavar=N_("path"), convert=output_path, aliases=("LOG_FILE",),
           output_file=True, help=N_("Append a timestamped log to this file (UTF-8).")),
    Option(name="LOG_LEVEL", group=_GENERAL, metavar="ERROR|INFO|DEBUG", convert=choice(LogLevel),
           default=LogLevel.INFO,
           help=N_("Log detail; DEBUG shows the protocol dialogue, secrets masked.")),
    Option(name="ERROR_FILE", group=_GENERAL, metavar=N_("path"), convert=output_path, output_file=True,
           help=N_("On failure, write the final error message to this file.")),
    Option(name="ERROR_FILE_CHARSET", group=_GENERAL, metavar="UTF-8|ANSI|OEM", convert=error_file_charset,
           default="utf-8", default_text=N_("UTF-8"),
           help=N_("Encoding of the error file; OEM is what set /p reads in a .bat file.")),
    Option(name="ERROR_FILE_ON_SUCCESS", group=_GENERAL, metavar="DELETE|EMPTY",
           convert=choice(ErrorFileOnSuccess), default=ErrorFileOnSuccess.DELETE,
           help=N_("On success, delete the error file or leave it empty.")),
    Option(name="QUIET", group=_GENERAL, switch=True, convert=yes_no,
           help=N_("Print nothing on success.")),
    Option(name="DRY_RUN", group=_GENERAL, switch=True, convert=yes_no,
           help=N_("Check the options and build the message, but connect to nothing.")),
    Option(name="SAVE_EML", group=_GENERAL, metavar=N_("path"), convert=folder, output_file=True,
           help=N_("Also save the exact message sent (or that would be sent) to this file; with /BATCH, a folder.")),
    Option(name="CONFIG", group=_GENERAL, metavar=N_("path"), convert=existing_file, input_file=True,
           help=N_("Read default options from this INI file (section [smail]).")),
    Option(name="HELP", group=_GENERAL, switch=True, convert=yes_no, aliases=("?", "H"),
           help=N_("Show this help.")),
    Option(name="VERSION", group=_GENERAL, switch=True, convert=yes_no,
           help=N_("Show the version.")),
    Option(name="PROTECT_SECRET", group=_GENERAL, switch=True, convert=yes_no,
           help=N_("Windows: read a secret (console without echo, or standard input) and write it to /OUT encrypted for this user (DPAPI).")),
    Option(name="OUT", group=_GENERAL, metavar=N_("path"), convert=output_path, output_file=True,
           help=N_("The file /PROTECT_SECRET writes.")),
    Option(name="SCOPE", group=_GENERAL, metavar="USER|MACHINE", convert=choice(SecretScope),
           default=SecretScope.USER,
           help=N_("/PROTECT_SECRET: who can decrypt: this user, or every account of this computer.")),

    Option(name="SUBJECT", group=_MESSAGE, metavar=N_("text"), convert=header_text, per_row=True,
           help=N_("Subject of the message.")),
    Option(name="FROM_NAME", group=_MESSAGE, metavar=N_("name"), convert=header_text, per_row=True,
           help=N_("Display name of the sender.")),
    Option(name="FROM_ADDR", group=_MESSAGE, metavar=N_("address"), convert=header_text, per_row=True,
           default_text=N_("/SMTP_USERNAME, or /GRAPH_SENDER"),
           help=N_("Sender address.")),
    Option(name="TO", group=_MESSAGE, metavar=N_("addresses"), repeat=True, convert=header_text, per_row=True,
           help=N_("Recipients, separated by , or ; as addr or Name <addr>.")),
    Option(name="CC", group=_MESSAGE, metavar=N_("addresses"), repeat=True, convert=header_text, per_row=True,
           help=N_("Copy recipients.")),
    Option(name="BCC", group=_MESSAGE, metavar=N_("addresses"), repeat=True, convert=header_text, per_row=True,
           help=N_("Blind copy recipients (never shown in the headers).")),
    Option(name="REPLY_TO", group=_MESSAGE, metavar=N_("addresses"), convert=header_text, per_row=True,
           help=N_("Reply-to address(es).")),
    Option(name="BODY_FILE", group=_MESSAGE, metavar=N_("path"), convert=existing_file, input_file=True,
           per_row=True, help=N_("Body file: .htm/.html is sent as HTML, anything else as plain text.")),
    Option(name="BODY", group=_MESSAGE, metavar=N_("text"), per_row=True,
           help=N_("Body text given on the command line (plain text).")),
    Option(name="BODY_CHARSET", group=_MESSAGE, metavar=N_("charset"), convert=charset, per_row=True,
           default_text=N_("detected"), help=N_("Encoding of the body file.")),
    Option(name="ATTACH", group=_MESSAGE, metavar=N_("files"), repeat=True, convert=file_list, input_file=True,
           per_row=True, help=N_("Attachments, separated by , or ; (wildcards * and ? allowed).")),
    Option(name="INLINE", group=_MESSAGE, metavar=N_("files"), repeat=True, convert=file_list, input_file=True,
           per_row=True, help=N_("Images for an HTML body, referenced as cid:<file name>.")),
    Option(name="PRIORITY", group=_MESSAGE, metavar="HIGHEST|HIGH|NORMAL|LOW|LOWEST",
           convert=choice(Priority), per_row=True, help=N_("Priority of the message.")),
    Option(name="READ_ACK", group=_MESSAGE, switch=True, convert=yes_no, per_row=True,
           help=N_("Ask for a read receipt.")),
    Option(name="RECEPTION_ACK", group=_MESSAGE, switch=True, convert=yes_no, per_row=True,
           help=N_("Ask for a delivery receipt (DSN).")),
    Option(name="HEADER", group=_MESSAGE, metavar=N_("\"X-Name: value\""), repeat=True, convert=header_text,
           per_row=True, help=N_("Extra header, repeatable.")),

    Option(name="RESULT_FILE", group=_MANY, metavar=N_("path.json"), convert=output_path, output_file=True,
           help=N_("Write a receipt of the run as JSON (every message, on success and on failure).")),
    Option(name="BATCH", group=_MANY, metavar=N_("rows.csv"), convert=existing_file, input_file=True,
           help=N_("Send one message per row of this CSV file; columns named like options set them per row, the others are template variables.")),
    Option(name="BATCH_RESULT", group=_MANY, metavar=N_("results.csv"), convert=output_path, output_file=True,
           help=N_("Write one line per row of /BATCH as each message finishes.")),
    Option(name="BATCH_RESUME", group=_MANY, switch=True, convert=yes_no,
           help=N_("Skip the rows that /BATCH_RESULT already marks as sent.")),
    Option(name="RATE", group=_MANY, metavar="N/MIN", convert=rate,
           help=N_("Send at most this many messages per minute (N/MIN), second (N/S) or hour (N/H).")),
    Option(name="OUTBOX", group=_MANY, metavar=N_("folder"), convert=folder,
           help=N_("Keep a message that cannot be delivered now (transient failure) in this folder, for /FLUSH.")),
    Option(name="FLUSH", group=_MANY, switch=True, convert=yes_no,
           help=N_("Send the messages waiting in /OUTBOX, oldest first.")),
    Option(name="RESEND_UNCERTAIN", group=_MANY, switch=True, convert=yes_no,
           help=N_("Send again what SMail marked as may have been sent, once you have checked that it did not arrive: with /FLUSH the entries in the outbox's uncertain folder, with /BATCH_RESUME the rows marked sending or may-have-been-sent. Each is recorded as a resend.")),
    Option(name="OUTBOX_MAX_AGE", group=_MANY, metavar="72H", convert=duration, default=72 * 3600.0,
           default_text=N_("72H"),
           help=N_("A message older than this in the outbox is moved to its failed folder.")),

    Option(name="SMTP_SERVER", group=_SMTP, metavar=N_("host"), convert=server, required_in=SMTP_ONLY,
           help=N_("SMTP server (required in SMTP mode).")),
    Option(name="SMTP_PORT", group=_SMTP, metavar="n", convert=integer(1, 65535),
           default_text=N_("25; 587 with STARTTLS; 465 with implicit TLS"), help=N_("Port.")),
    Option(name="SMTP_USERNAME", group=_SMTP, metavar=N_("login"),
           help=N_("User name for authentication.")),
    Option(name="SMTP_PASSWORD", group=_SMTP, metavar=N_("password"), convert=secret, secret=True,
           help=N_("Password (prefer SMAIL_SMTP_PASSWORD or /SMTP_PASSWORD_FILE).")),
    Option(name="SMTP_PASSWORD_FILE", group=_SMTP, metavar=N_("path"), convert=secret_file, input_file=True,
           secret_file_of="SMTP_PASSWORD", help=N_("Read the password from this file.")),
    Option(name="SMTP_TOKEN_FILE", group=_SMTP, metavar=N_("path"), convert=secret_file, input_file=True,
           help=N_("File holding an OAuth2 access token for XOAUTH2.")),
    Option(name="AUTH_TYPE", group=_SMTP, metavar="DEFAULT|NONE|SASL|XOAUTH2", convert=choice(AuthType),
           default=AuthType.DEFAULT,
           help=N_("Authentication: DEFAULT (when a user name is given), NONE, SASL or XOAUTH2.")),
    Option(name="SSL_VERSION", group=_SMTP, metavar="TLSV1_2|TLSV1_3", convert=choice(TLSVersion),
           help=N_("Use TLS with at least this version.")),
    Option(name="SSL_MODE", group=_SMTP, metavar="AUTO|STARTTLS|IMPLICIT|NONE", convert=choice(TLSMode),
           default=TLSMode.AUTO,
           help=N_("TLS mode (AUTO: implicit on port 465, STARTTLS when /SSL_VERSION is given).")),
    Option(name="CA_FILE", group=_SMTP, metavar=N_("path"), convert=ca_file, input_file=True,
           help=N_("Extra trusted CA certificates (PEM), for SMTP and HTTPS.")),
    Option(name="SSL_NO_VERIFY", group=_SMTP, switch=True, convert=yes_no,
           help=N_("Accept any server certificate (unsafe; logged as a warning).")),
    Option(name="HELO", group=_SMTP, metavar=N_("name"), convert=helo,
           default_text=N_("this computer's full name"), help=N_("Name sent in EHLO.")),

    Option(name="O365_AUTH", group=_GRAPH, metavar="APP|MANAGED_IDENTITY", convert=choice(SignIn),
           default=SignIn.APP,
           help=N_("How to sign in to Microsoft (Graph, and XOAUTH2 without a token file): APP, an application's secret or certificate; MANAGED_IDENTITY, this machine's identity (Azure Arc or Azure VM), with no tenant, application or secret.")),
    Option(name="O365_MANAGED_IDENTITY", group=_GRAPH, metavar="client-id", convert=client_id,
           default_text=N_("the system-assigned identity"),
           help=N_("With /O365_AUTH=MANAGED_IDENTITY: the client ID of a user-assigned identity.")),
    Option(name="O365_TENANT_ID", group=_GRAPH, metavar="id",
           help=N_("Directory (tenant) ID or verified domain (required, except with a managed identity).")),
    Option(name="O365_APP_ID", group=_GRAPH, metavar="id",
           help=N_("Application (client) ID (required, except with a managed identity).")),
    Option(name="O365_SECRET", group=_GRAPH, metavar=N_("secret"), convert=secret, secret=True,
           help=N_("Client secret (prefer SMAIL_O365_SECRET or /O365_SECRET_FILE).")),
    Option(name="O365_SECRET_FILE", group=_GRAPH, metavar=N_("path"), convert=secret_file, input_file=True,
           secret_file_of="O365_SECRET", help=N_("Read the client secret from this file.")),
    Option(name="O365_CERT_FILE", group=_GRAPH, metavar=N_("path"), convert=existing_file, input_file=True,
           help=N_("Certificate credential: .pfx/.p12, or PEM with its private key.")),
    Option(name="O365_CERT_THUMBPRINT", group=_GRAPH, metavar="SHA-1", convert=thumbprint,
           help=N_("Windows: certificate credential from the certificate store, by its SHA-1 thumbprint (spaces ignored); its private key stays in the store, even when it is not exportable.")),
    Option(name="O365_CERT_STORE", group=_GRAPH, metavar="USER|MACHINE", convert=choice(CertStore),
           default_text=N_("the user's, then the computer's"),
           help=N_("Store of /O365_CERT_THUMBPRINT: My of the current user, or of the computer.")),
    Option(name="O365_CERT_PASSWORD", group=_GRAPH, metavar=N_("password"), convert=secret, secret=True,
           help=N_("Password of the certificate file.")),
    Option(name="O365_CERT_PASSWORD_FILE", group=_GRAPH, metavar=N_("path"), convert=secret_file, input_file=True,
           secret_file_of="O365_CERT_PASSWORD", help=N_("Read the certificate password from this file.")),
    Option(name="GRAPH_SENDER", group=_GRAPH, metavar=N_("address"), required_in=GRAPH_ONLY,
           help=N_("Mailbox that sends (required in Graph mode).")),
    Option(name="O365_CLOUD", group=_GRAPH, metavar="GLOBAL|USGOV|USGOV_DOD|CHINA", convert=choice(Cloud),
           default=Cloud.GLOBAL, help=N_("National cloud; sets the two endpoints below.")),
    Option(name="O365_AUTHORITY_HOST", group=_GRAPH, metavar="https://...", convert=url,
           default_text=N_("the cloud's, https://login.microsoftonline.com"),
           help=N_("Identity platform host.")),
    Option(name="GRAPH_ENDPOINT", group=_GRAPH, metavar="https://...", convert=url,
           default_text=N_("the cloud's, https://graph.microsoft.com"), help=N_("Graph host.")),
    Option(name="GRAPH_SCOPE", group=_GRAPH, metavar="https://.../.default", convert=scope,
           default_text=N_("the Graph resource of the cloud"),
           help=N_("Token scope; a private /GRAPH_ENDPOINT does not change it.")),
    Option(name="SAVE_TO_SENT", group=_GRAPH, metavar="YES|NO", convert=yes_no, default=True,
           help=N_("Keep a copy in Sent Items.")),
    Option(name="PROXY", group=_GRAPH, metavar=N_("http://host:port"), convert=url,
           help=N_("HTTPS proxy (HTTPS_PROXY is honoured too).")),
)

BY_NAME: Final[Mapping[str, Option]] = {
    key: option for option in OPTIONS for key in (option.name, *option.aliases)}


def readable(value: str) -> str:
    """A text value whose bytes were not UTF-8 (lone surrogates, as Python passes them from argv
    and the environment) read as Windows-1252, like a Notepad "ANSI" file; a lone surrogate of
    invalid UTF-16 (Windows) becomes "?". File names keep their bytes: they name real files."""
    if not any("\ud800" <= ch <= "\udfff" for ch in value):
        return value
    try:
        return files.decode_text(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def convert(option: Option, value: str) -> object:
    """The typed value of `option`; ParamError naming the option (masked if secret)."""
    if not option.names_a_file:
        value = readable(value)
    try:
        return option.convert(value)
    except ConversionError as exc:
        shown = "****" if option.secret else redact.shown(value[:80])
        raise ParamError(_("Invalid value \"{value}\" for /{name}: {reason}.").format(
            value=shown, name=option.name, reason=exc)) from None


def echoed(token: str) -> str:
    """A token as an error may show it: one line, and never what follows a name and a
    separator (`SMTP_PASWORD=...` without its "/", `/SMTP_PASSWORD:...`, `SMAIL_...=...`): a
    misspelt option may carry a password. The name is enough to tell what is wrong."""
    match = re.match(r"([^=:\s]*)([=:\s])", token)
    if match and token[match.end():].strip():
        return redact.shown(readable(match.group(1) + match.group(2))) + "****"
    return redact.shown(readable(token))


def find(name: str, *, suggest: bool = True) -> Option:
    """The option called `name` (any case, - or _), or ParamError with the closest name
    (`suggest`: the hint costs a comparison with every option, wasted on a tolerant pass)."""
    key = name.strip().upper().replace("-", "_")
    if key in BY_NAME:
        return BY_NAME[key]
    import difflib  # only for a typo

    # A name longer than any option's is no typo of one (and difflib is quadratic in it).
    close = difflib.get_close_matches(key, [o.name for o in OPTIONS], n=1, cutoff=0.6) \
        if suggest and len(key) <= 40 else []
    if close:
        raise ParamError(_("Unknown option /{name}. Did you mean /{suggestion}?").format(
            name=echoed(name), suggestion=close[0]))
    raise ParamError(_("Unknown option /{name}. Run SMail /? for the list of options.").format(
        name=echoed(name)))


class Source(Enum):
    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    CONFIG_FILE = "configuration file"


@dataclass
class RawOptions:
    """Option values as strings, merged by precedence; lists for repeatable options."""

    values: dict[str, str | list[str]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    read_files: list[Path] = field(default_factory=list)  # response and configuration files

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def get_list(self, name: str) -> list[str]:
        value = self.values.get(name)
        return list(value) if isinstance(value, list) else []

    def given(self, name: str) -> bool:
        return name in self.values

    def flag(self, name: str) -> bool:
        """A switch read without failing: an unreadable value counts as given."""
        value = self.get(name)
        if value is None:
            return False
        try:
            return yes_no(value)
        except ConversionError:
            return True


@dataclass
class _Layer:
    values: dict[str, str | list[str]] = field(default_factory=dict)

    def put(self, option: Option, value: str) -> None:
        if option.repeat:
            existing = self.values.setdefault(option.name, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            self.values[option.name] = value  # a scalar given twice: the last wins


def split_token(token: str) -> tuple[str, str | None] | None:
    """`/NAME=value`, `-NAME=value`, `--name=value` -> (name, value); None if not an option."""
    if token.startswith("--"):
        body = token[2:]
    elif token.startswith(("/", "-")):
        body = token[1:]
    else:
        return None
    name, sep, value = body.partition("=")
    if not name:
        return None
    return name, (value if sep else None)


# The most all the @files of one run may hold together (see _Reader.expand).
RESPONSE_FILES_LIMIT: Final = 256
RESPONSE_LINES_LIMIT: Final = 20_000


class _Reader:
    """One pass over argv, SMAIL_* and /CONFIG. Tolerant, it skips what it cannot read, so
    that /LANG, /?, /LOG and /ERROR_FILE work wherever they are written, even when the rest
    is wrong; strict, it raises on the first problem."""

    def __init__(self, tolerant: bool) -> None:
        self.tolerant = tolerant
        self.read_files: list[Path] = []
        # What all the @files of one run may add up to, whatever names whatever: nesting
        # alone bounds nothing (ten files naming each other ten times is 10^8 reads).
        self.files_left = RESPONSE_FILES_LIMIT
        self.bytes_left = files.TEXT_LIMIT
        self.lines_left = RESPONSE_LINES_LIMIT
        self.exhausted = False

    def _fail(self, error: SMailError) -> None:
        if not self.tolerant:
            raise error

    def _too_much(self, path: Path | str) -> None:
        """The budget of response files is spent: exit 2 naming the file (once, tolerant)."""
        self.exhausted = True
        self._fail(ParamError(_("Response files expand to too much (at most {files} files, {lines} lines and {size} MB in all): {path}").format(
            files=RESPONSE_FILES_LIMIT, lines=RESPONSE_LINES_LIMIT, size=files.TEXT_LIMIT // (1024 * 1024),
            path=path)))

    def expand(self, argv: Sequence[str], depth: int = 0, base: Path | None = None) -> list[str]:
        """Replace each @file by its lines; nested @files are relative to the file naming them."""
        tokens: list[str] = []
        for token in argv:
            if not token.startswith("@") or len(token) == 1:
                tokens.append(token)
                continue
            if self.exhausted:
                break
            if depth >= 8:
                self._fail(ParamError(_("Response files are nested too deeply: {path}").format(path=token[1:])))
                continue
            path = Path(_unquote(token[1:]))
            if base is not None and not path.is_absolute():
                path = base / path
            if self.files_left <= 0:
                self._too_much(path)
                break
            self.files_left -= 1
            try:
                if not files.exists(path):
                    raise FileMissingError(_("Response file not found: {path}").format(path=path))
                data = files.read_bounded(path, self.bytes_left)
            except (SMailError, ValueError, OSError) as exc:
                if isinstance(exc, files.TooLargeError) and self.bytes_left < files.TEXT_LIMIT:
                    self._too_much(path)  # larger than what the other files left
                    break
                self._fail(exc if isinstance(exc, SMailError) else
                           FileMissingError(_("Response file not found: {path}").format(path=path)))
                continue
            self.bytes_left -= len(data)
            self.read_files.append(path)
            lines = [line.strip() for line in files.decode_text(data).splitlines()]
            lines = [line for line in lines if line and not line.startswith(("#", ";"))]
            self.lines_left -= len(lines)
            if self.lines_left < 0:
                self._too_much(path)
                break
            tokens.extend(self.expand(lines, depth + 1, path.parent))
        return tokens

    def argv_layer(self, argv: Sequence[str]) -> _Layer:
        layer = _Layer()
        after_secret = False
        for token in self.expand(argv):
            try:
                parts = split_token(token)
                if parts is None:
                    # A word after a secret option is most likely the rest of a password the
                    # shell split (`/SMTP_PASSWORD= %PW%`, an unquoted space): never shown.
                    raise ParamError(_("Unexpected argument \"{arg}\": options look like /NAME=value.").format(
                        arg="****" if after_secret else echoed(token[:200])))
                name, value = parts
                after_secret = False
                option = find(name, suggest=not self.tolerant)
                after_secret = option.secret
                if value is None:
                    if not option.switch:
                        raise ParamError(_("Option /{name} needs a value: /{name}=...").format(
                            name=option.name))
                    value = "YES"
            except ParamError as exc:
                self._fail(exc)
                continue
            layer.put(option, _unquote(value) if value[:1] in "\"'" else value)
        return layer

    @staticmethod
    def environ_layer(environ: Mapping[str, str]) -> _Layer:
        layer = _Layer()
        for option in OPTIONS:
            value = next((environ[name] for name in option.env_names if name in environ), None)
            if value is not None:
                layer.put(option, value)
        return layer

    def config_layer(self, value: str) -> _Layer:
        layer = _Layer()
        try:
            path = existing_file(value)
            content = files.read_text_file(path)
        except (SMailError, ConversionError) as exc:
            self._fail(exc if isinstance(exc, SMailError) else ParamError(str(exc)))
            return layer
        self.read_files.append(path)
        import configparser  # only with /CONFIG

        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(content, source=str(path))
        except configparser.Error as exc:
            self._fail(ParamError(_("Cannot read the configuration file {path}: {reason}").format(
                path=path, reason=str(exc).splitlines()[0])))
            return layer
        # Section names are case-insensitive in Windows INI files: [SMail] is [smail].
        section = next((name for name in parser.sections() if name.lower() == "smail"), None)
        if section is None:
            self._fail(ParamError(_("The configuration file {path} has no [smail] section.").format(path=path)))
            return layer
        for key, item in parser.items(section):
            try:
                option = find(key, suggest=not self.tolerant)
                if option.name == "CONFIG":
                    raise ParamError(_("a configuration file cannot name another one."))
            except ParamError as exc:
                self._fail(ParamError(_("In the configuration file {path}: {problem}").format(
                    path=path, problem=exc.message)))
                continue
            # A quoted value is one value, also for a list ("a@b.test, c@d.test" is two items).
            layer.put(option, _unquote(item))
        return layer


def parse(argv: Sequence[str], environ: Mapping[str, str], *, tolerant: bool = False) -> RawOptions:
    """Merge the command line (with its @files), SMAIL_* variables and /CONFIG, in that order
    of precedence; `tolerant` skips whatever cannot be read instead of raising."""
    reader = _Reader(tolerant)
    layers = [(Source.COMMAND_LINE, reader.argv_layer(argv)),
              (Source.ENVIRONMENT, reader.environ_layer(environ))]
    config = next((layer.values["CONFIG"] for _s, layer in layers if "CONFIG" in layer.values), None)
    if isinstance(config, str):
        layers.append((Source.CONFIG_FILE, reader.config_layer(config)))
    raw = RawOptions(read_files=reader.read_files)
    for source, layer in reversed(layers):  # lowest precedence first, higher ones overwrite
        for name, value in layer.values.items():
            raw.values[name] = value
            raw.sources[name] = source
    return raw


# Exit codes for the help screen, in SPEC.md's order.
EXIT_CODE_HELP: Final = (
    (0, N_("message accepted by the server or by Graph")),
    (1, N_("generic error")),
    (2, N_("missing or invalid option")),
    (3, N_("connection failure: DNS, TCP, TLS handshake or certificate")),
    (4, N_("authentication refused")),
    (5, N_("message refused by the server or by Graph, or may have been sent (no answer after its end)")),
    (6, N_("every attempt of /RETRY failed on a transient error")),
    (7, N_("internal error (a bug)")),
    (8, N_("file not found: body, attachment, inline, token, certificate or configuration")),
    (9, N_("/MODE is not SMTP or GRAPH")),
    (10, N_("not delivered now, kept in the outbox for a later /FLUSH")),
    (11, N_("a batch or a flush: some messages were accepted, some were not")),
)

EXAMPLES: Final = (
    (N_("SMTP with an attachment:"),
     N_('SMail /SMTP_SERVER=smtp.example.com /FROM_ADDR=albert@example.com /TO=client@example.com '
        '/SUBJECT="Invoice" /BODY_FILE=Mail.txt /ATTACH=Invoice.pdf')),
    (N_("Office 365 with XOAUTH2 (token obtained by SMail):"),
     N_('SMail /SMTP_SERVER=smtp.office365.com /SSL_VERSION=TLSV1_2 /AUTH_TYPE=XOAUTH2 '
        '/SMTP_USERNAME=user@example.com /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET_FILE=secret.txt '
        '/TO=client@example.com /BODY_FILE=Msg.html')),
    (N_("Microsoft Graph (app-only):"),
     N_('SMail /MODE=GRAPH /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET_FILE=secret.txt '
        '/GRAPH_SENDER=user@example.com /TO=client@example.com /BODY_FILE=Msg.html')),
)


def help_text(version: str) -> str:
    """The full help screen in the active language; defaults come from the table."""
    lines = [_("SMail {version}: send e-mail through SMTP or Microsoft Graph.").format(
                 version=version), "",
             _("Usage: SMail [options]     SMail /?     SMail /VERSION"),
             _("Options are /NAME=value (also -NAME=value or --name=value), @file reads options from a file, SMAIL_<NAME> environment variables and /CONFIG=file.ini give defaults."),
             ""]
    for group in Group:
        lines.append(_(group.value))
        for option in OPTIONS:
            if option.group is not group:
                continue
            # A placeholder is translated (/LOG=chemin); a list of values (SMTP|GRAPH) is not,
            # and the catalog does not hold it.
            usage = f"/{option.name}" + (f"={_(option.metavar)}" if option.metavar else "")
            if option.aliases and option.name != "HELP":
                usage += "".join(f", /{alias}" for alias in option.aliases)
            description, default = _(option.help), option.default_shown()
            if default is not None:
                description = _("{description} (default: {value})").format(description=description, value=default)
            lines.append(f"  {usage:<34} {description}")
        lines.append("")
    lines.append(_("Exit codes:"))
    lines.extend(f"  {code:>2}  {_(text)}" for code, text in EXIT_CODE_HELP)
    lines.append("")
    lines.append(_("Examples:"))
    for title, command in EXAMPLES:
        lines.extend([f"  {_(title)}", f"    {_(command)}"])
    return "\n".join(lines) + "\n"
