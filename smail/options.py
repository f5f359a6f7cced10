"""The table of every option, and argv / @file / SMAIL_* / INI -> RawOptions.

Every consumer reads the one OPTIONS table: the parser, the help screen, the SMAIL_<NAME>
environment lookup, the INI keys, the typo hints, the converters and the secret registry.
"""

from __future__ import annotations

import configparser
import difflib
import glob
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

from smail.errors import FileMissingError, InvalidModeError, ParamError
from smail.i18n import N_, _


class Mode(Enum):
    SMTP = "SMTP"
    GRAPH = "GRAPH"


class TLSMode(Enum):
    AUTO = "AUTO"
    STARTTLS = "STARTTLS"
    IMPLICIT = "IMPLICIT"
    NONE = "NONE"


class TLSVersion(Enum):
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


class AuthType(Enum):
    DEFAULT = "DEFAULT"
    NONE = "NONE"
    SASL = "SASL"
    XOAUTH2 = "XOAUTH2"


class Priority(Enum):
    HIGHEST = "HIGHEST"
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"
    LOWEST = "LOWEST"


class LogLevel(Enum):
    ERROR = "ERROR"
    INFO = "INFO"
    DEBUG = "DEBUG"


class Cloud(Enum):
    GLOBAL = "GLOBAL"
    USGOV = "USGOV"
    USGOV_DOD = "USGOV_DOD"
    CHINA = "CHINA"


class Language(Enum):
    FR = "FR"
    EN = "EN"


class ErrorFileOnSuccess(Enum):
    DELETE = "DELETE"
    EMPTY = "EMPTY"


class Group(Enum):
    GENERAL = N_("General options")
    MESSAGE = N_("Message options")
    SMTP = N_("SMTP options (/MODE=SMTP)")
    GRAPH = N_("Microsoft Graph options (/MODE=GRAPH)")


class ConversionError(ValueError):
    """A value that does not fit its option; the caller names the option."""


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
        raise ConversionError(_("expected a number of seconds greater than 0"))
    return number


def text(value: str) -> str:
    return value


def is_file(path: Path) -> bool:
    """Path.is_file() that also says False for names the OS rejects (too long, NUL...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _path(value: str) -> Path:
    value = value.strip().strip('"')
    if not value or "\0" in value:
        raise ConversionError(_("expected a file path"))
    return Path(value)


def existing_file(value: str) -> Path:
    """A file that must exist when the option is given (exit 8 otherwise)."""
    path = _path(value)
    if not is_file(path):
        raise FileMissingError(_("File not found: {path}").format(path=path))
    return path


def output_path(value: str) -> Path:
    return _path(value)


def url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.lower().startswith(("https://", "http://")) or len(value) < 10:
        raise ConversionError(_("expected an address starting with https://"))
    return value


@dataclass(frozen=True, kw_only=True)
class Option:
    """One command-line option: /NAME, SMAIL_NAME and the INI key `name`."""

    name: str
    group: Group
    help: str
    metavar: str = ""
    convert: Callable[[str], object] = text
    aliases: tuple[str, ...] = ()
    switch: bool = False
    repeat: bool = False
    secret: bool = False
    required_in: frozenset[Mode] = frozenset()

    @property
    def env_name(self) -> str:
        return f"SMAIL_{self.name}"


G, M, S, GR = Group.GENERAL, Group.MESSAGE, Group.SMTP, Group.GRAPH
SMTP_ONLY, GRAPH_ONLY = frozenset({Mode.SMTP}), frozenset({Mode.GRAPH})

OPTIONS: Final[tuple[Option, ...]] = (
    Option(name="MODE", group=G, metavar="SMTP|GRAPH", convert=mode,
           help=N_("Transport: SMTP (default) or GRAPH.")),
    Option(name="LANG", group=G, metavar="FR|EN", convert=choice(Language),
           help=N_("Language of messages, help and log (default: the system's).")),
    Option(name="RETRY", group=G, metavar="N", convert=integer(1, 100),
           help=N_("Number of send attempts, 1 to 100 (default 1); only transient failures are retried.")),
    Option(name="RETRY_DELAY", group=G, metavar="S", convert=seconds,
           help=N_("Seconds before the second attempt, doubled each time (default 5).")),
    Option(name="TIMEOUT", group=G, metavar="S", convert=seconds,
           help=N_("Network timeout in seconds for each operation (default 60).")),
    Option(name="LOG", group=G, metavar="path", convert=output_path, aliases=("LOG_FILE",),
           help=N_("Append a timestamped log to this file (UTF-8).")),
    Option(name="LOG_LEVEL", group=G, metavar="ERROR|INFO|DEBUG", convert=choice(LogLevel),
           help=N_("Log detail (default INFO); DEBUG shows the protocol dialogue, secrets masked.")),
    Option(name="ERROR_FILE", group=G, metavar="path", convert=output_path,
           help=N_("On failure, write the final error message to this file.")),
    Option(name="ERROR_FILE_ON_SUCCESS", group=G, metavar="DELETE|EMPTY",
           convert=choice(ErrorFileOnSuccess),
           help=N_("On success, delete the error file (default) or leave it empty.")),
    Option(name="QUIET", group=G, switch=True, convert=yes_no,
           help=N_("Print nothing on success.")),
    Option(name="DRY_RUN", group=G, switch=True, convert=yes_no,
           help=N_("Check the options and build the message, but connect to nothing.")),
    Option(name="SAVE_EML", group=G, metavar="path", convert=output_path,
           help=N_("Also save the exact message sent (or that would be sent) to this file.")),
    Option(name="CONFIG", group=G, metavar="path", convert=existing_file,
           help=N_("Read default options from this INI file (section [smail]).")),
    Option(name="HELP", group=G, switch=True, convert=yes_no, aliases=("?", "H"),
           help=N_("Show this help.")),
    Option(name="VERSION", group=G, switch=True, convert=yes_no,
           help=N_("Show the version.")),

    Option(name="SUBJECT", group=M, metavar="text",
           help=N_("Subject of the message.")),
    Option(name="FROM_NAME", group=M, metavar="name",
           help=N_("Display name of the sender.")),
    Option(name="FROM_ADDR", group=M, metavar="address",
           help=N_("Sender address (default: /SMTP_USERNAME, or /GRAPH_SENDER).")),
    Option(name="TO", group=M, metavar="addresses", repeat=True,
           help=N_("Recipients, separated by , or ; as addr or Name <addr>.")),
    Option(name="CC", group=M, metavar="addresses", repeat=True,
           help=N_("Copy recipients.")),
    Option(name="BCC", group=M, metavar="addresses", repeat=True,
           help=N_("Blind copy recipients (never shown in the headers).")),
    Option(name="REPLY_TO", group=M, metavar="addresses",
           help=N_("Reply-to address(es).")),
    Option(name="BODY_FILE", group=M, metavar="path", convert=existing_file,
           help=N_("Body file: .htm/.html is sent as HTML, anything else as plain text.")),
    Option(name="BODY", group=M, metavar="text",
           help=N_("Body text given on the command line (plain text).")),
    Option(name="BODY_CHARSET", group=M, metavar="charset",
           help=N_("Encoding of the body file (default: detected).")),
    Option(name="ATTACH", group=M, metavar="files", repeat=True,
           help=N_("Attachments, separated by , or ; (wildcards * and ? allowed).")),
    Option(name="INLINE", group=M, metavar="files", repeat=True,
           help=N_("Images for an HTML body, referenced as cid:<file name>.")),
    Option(name="PRIORITY", group=M, metavar="HIGHEST|HIGH|NORMAL|LOW|LOWEST",
           convert=choice(Priority),
           help=N_("Priority of the message.")),
    Option(name="READ_ACK", group=M, switch=True, convert=yes_no,
           help=N_("Ask for a read receipt.")),
    Option(name="RECEPTION_ACK", group=M, switch=True, convert=yes_no,
           help=N_("Ask for a delivery receipt (DSN).")),
    Option(name="HEADER", group=M, metavar="\"X-Name: value\"", repeat=True,
           help=N_("Extra header, repeatable.")),

    Option(name="SMTP_SERVER", group=S, metavar="host", required_in=SMTP_ONLY,
           help=N_("SMTP server (required in SMTP mode).")),
    Option(name="SMTP_PORT", group=S, metavar="n", convert=integer(1, 65535),
           help=N_("Port (default 25; 587 with TLS; 465 with implicit TLS).")),
    Option(name="SMTP_USERNAME", group=S, metavar="login",
           help=N_("User name for authentication.")),
    Option(name="SMTP_PASSWORD", group=S, metavar="password", secret=True,
           help=N_("Password (prefer SMAIL_SMTP_PASSWORD or /SMTP_PASSWORD_FILE).")),
    Option(name="SMTP_PASSWORD_FILE", group=S, metavar="path", convert=existing_file,
           help=N_("Read the password from this file.")),
    Option(name="SMTP_TOKEN_FILE", group=S, metavar="path", convert=existing_file,
           help=N_("File holding an OAuth2 access token for XOAUTH2.")),
    Option(name="AUTH_TYPE", group=S, metavar="DEFAULT|NONE|SASL|XOAUTH2", convert=choice(AuthType),
           help=N_("Authentication: DEFAULT (when a user name is given), NONE, SASL or XOAUTH2.")),
    Option(name="SSL_VERSION", group=S, metavar="TLSV1_2|TLSV1_3", convert=choice(TLSVersion),
           help=N_("Use TLS with at least this version.")),
    Option(name="SSL_MODE", group=S, metavar="AUTO|STARTTLS|IMPLICIT|NONE", convert=choice(TLSMode),
           help=N_("TLS mode (AUTO: implicit on port 465, STARTTLS when /SSL_VERSION is given).")),
    Option(name="CA_FILE", group=S, metavar="path", convert=existing_file,
           help=N_("Extra trusted CA certificates (PEM), for SMTP and HTTPS.")),
    Option(name="SSL_NO_VERIFY", group=S, switch=True, convert=yes_no,
           help=N_("Accept any server certificate (unsafe; logged as a warning).")),
    Option(name="HELO", group=S, metavar="name",
           help=N_("Name sent in EHLO (default: this computer's name).")),

    Option(name="O365_TENANT_ID", group=GR, metavar="id", required_in=GRAPH_ONLY,
           help=N_("Directory (tenant) ID or verified domain.")),
    Option(name="O365_APP_ID", group=GR, metavar="id", required_in=GRAPH_ONLY,
           help=N_("Application (client) ID.")),
    Option(name="O365_SECRET", group=GR, metavar="secret", secret=True,
           help=N_("Client secret (prefer SMAIL_O365_SECRET or /O365_SECRET_FILE).")),
    Option(name="O365_SECRET_FILE", group=GR, metavar="path", convert=existing_file,
           help=N_("Read the client secret from this file.")),
    Option(name="O365_CERT_FILE", group=GR, metavar="path", convert=existing_file,
           help=N_("Certificate credential: .pfx/.p12, or PEM with its private key.")),
    Option(name="O365_CERT_PASSWORD", group=GR, metavar="password", secret=True,
           help=N_("Password of the certificate file.")),
    Option(name="GRAPH_SENDER", group=GR, metavar="address", required_in=GRAPH_ONLY,
           help=N_("Mailbox that sends (required in Graph mode).")),
    Option(name="O365_CLOUD", group=GR, metavar="GLOBAL|USGOV|USGOV_DOD|CHINA", convert=choice(Cloud),
           help=N_("National cloud; sets the two endpoints below.")),
    Option(name="O365_AUTHORITY_HOST", group=GR, metavar="https://...", convert=url,
           help=N_("Identity platform host (default https://login.microsoftonline.com).")),
    Option(name="GRAPH_ENDPOINT", group=GR, metavar="https://...", convert=url,
           help=N_("Graph host (default https://graph.microsoft.com).")),
    Option(name="SAVE_TO_SENT", group=GR, metavar="YES|NO", convert=yes_no,
           help=N_("Keep a copy in Sent Items (default YES).")),
    Option(name="PROXY", group=GR, metavar="http://host:port", convert=url,
           help=N_("HTTPS proxy (HTTPS_PROXY is honoured too).")),
)

def convert(option: Option, value: str) -> object:
    """The typed value of `option`; ParamError naming the option (masked if secret)."""
    try:
        return option.convert(value)
    except ConversionError as exc:
        shown = "****" if option.secret else value[:80]
        raise ParamError(_("Invalid value \"{value}\" for /{name}: {reason}.").format(
            value=shown, name=option.name, reason=exc)) from None


BY_NAME: Final[Mapping[str, Option]] = {
    key: option for option in OPTIONS for key in (option.name, *option.aliases)}


def find(name: str) -> Option:
    """The option called `name` (any case, - or _), or ParamError with the closest name."""
    key = name.strip().upper().replace("-", "_")
    if key in BY_NAME:
        return BY_NAME[key]
    close = difflib.get_close_matches(key, [o.name for o in OPTIONS], n=1, cutoff=0.6)
    if close:
        raise ParamError(_("Unknown option /{name}. Did you mean /{suggestion}?").format(
            name=name, suggestion=close[0]))
    raise ParamError(_("Unknown option /{name}. Run SMail /? for the list of options.").format(
        name=name))


class Source(Enum):
    COMMAND_LINE = "command line"
    ENVIRONMENT = "environment"
    CONFIG_FILE = "configuration file"


@dataclass
class RawOptions:
    """Option values as strings, merged by precedence; lists for repeatable options."""

    values: dict[str, str | list[str]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def get_list(self, name: str) -> list[str]:
        value = self.values.get(name)
        return list(value) if isinstance(value, list) else []

    def given(self, name: str) -> bool:
        return name in self.values


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


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_text_file(path: Path) -> str:
    """UTF-8 (with or without BOM), else Windows-1252 ("ANSI"): how Notepad saves."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _expand_response_files(argv: Sequence[str], depth: int = 0,
                           base: Path | None = None) -> list[str]:
    """Replace each @file by its lines; nested @files are relative to the file naming them."""
    tokens: list[str] = []
    for token in argv:
        if not token.startswith("@") or len(token) == 1:
            tokens.append(token)
            continue
        if depth >= 8:
            raise ParamError(_("Response files are nested too deeply: {path}").format(path=token[1:]))
        path = Path(_unquote(token[1:]))
        if base is not None and not path.is_absolute():
            path = base / path
        if not is_file(path):
            raise FileMissingError(_("Response file not found: {path}").format(path=path))
        try:
            lines = [line.strip() for line in read_text_file(path).splitlines()]
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
        lines = [line for line in lines if line and not line.startswith(("#", ";"))]
        tokens.extend(_expand_response_files(lines, depth + 1, path.parent))
    return tokens


def _layer_from_argv(argv: Sequence[str]) -> _Layer:
    layer = _Layer()
    for token in _expand_response_files(argv):
        parts = split_token(token)
        if parts is None:
            raise ParamError(_("Unexpected argument \"{arg}\": options look like /NAME=value.").format(
                arg=token[:200]))
        name, value = parts
        option = find(name)
        if value is None:
            if not option.switch:
                raise ParamError(_("Option /{name} needs a value: /{name}=...").format(
                    name=option.name))
            value = "YES"
        layer.put(option, _unquote(value) if value[:1] in "\"'" else value)
    return layer


def _layer_from_environ(environ: Mapping[str, str]) -> _Layer:
    layer = _Layer()
    for option in OPTIONS:
        for name in (option.name, *option.aliases):
            value = environ.get(f"SMAIL_{name}")
            if value is not None and name.isidentifier():
                layer.put(option, value)
                break
    return layer


def _layer_from_config(path: Path) -> _Layer:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(read_text_file(path), source=str(path))
    except (configparser.Error, OSError) as exc:
        raise ParamError(_("Cannot read the configuration file {path}: {reason}").format(
            path=path, reason=str(exc).splitlines()[0])) from None
    if not parser.has_section("smail"):
        raise ParamError(_("The configuration file {path} has no [smail] section.").format(path=path))
    layer = _Layer()
    for key, value in parser.items("smail"):
        try:
            option = find(key)
        except ParamError as exc:
            raise ParamError(_("In the configuration file {path}: {problem}").format(
                path=path, problem=exc.message)) from None
        if option.name == "CONFIG":
            raise ParamError(_("In the configuration file {path}: a configuration file cannot name another one.").format(path=path))
        layer.put(option, _unquote(value) if not option.repeat else value)
    return layer


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> RawOptions:
    """Merge the command line, SMAIL_* variables and /CONFIG, in that order of precedence."""
    layers = [(Source.COMMAND_LINE, _layer_from_argv(argv)),
              (Source.ENVIRONMENT, _layer_from_environ(environ))]
    config = next((layer.values["CONFIG"] for _s, layer in layers if "CONFIG" in layer.values), None)
    if isinstance(config, str):
        path = convert(BY_NAME["CONFIG"], config)
        assert isinstance(path, Path)
        layers.append((Source.CONFIG_FILE, _layer_from_config(path)))
    raw = RawOptions()
    for source, layer in reversed(layers):  # lowest precedence first, higher ones overwrite
        for name, value in layer.values.items():
            raw.values[name] = value
            raw.sources[name] = source
    return raw


def peek(argv: Sequence[str], environ: Mapping[str, str], name: str) -> str | None:
    """A value read without full parsing, for what must work even when parsing fails."""
    option = BY_NAME[name]
    names = {option.name, *option.aliases}
    found: str | None = None
    for token in argv:
        parts = split_token(token)
        if parts and parts[0].upper().replace("-", "_") in names and parts[1] is not None:
            found = _unquote(parts[1])
    if found is None:
        found = environ.get(option.env_name)
    return found


def wants(argv: Sequence[str], name: str) -> bool:
    """Whether a switch such as /? or /VERSION appears on the command line."""
    option = BY_NAME[name]
    names = {option.name, *option.aliases}
    for token in argv:
        parts = split_token(token)
        if parts and parts[0].upper().replace("-", "_") in names:
            try:
                return parts[1] is None or yes_no(parts[1])
            except ConversionError:
                return True
    return False


def expand_wildcards(pattern: str) -> list[Path]:
    """`*.pdf` -> the matching files, sorted; a pattern matching nothing is exit 8."""
    if not glob.has_magic(pattern):
        return [Path(pattern)]
    matches = sorted(Path(p) for p in glob.glob(pattern) if is_file(Path(p)))
    if not matches:
        raise FileMissingError(_("No file matches {pattern}").format(pattern=pattern))
    return matches


def split_list(values: Iterable[str]) -> list[str]:
    """Items of `,`/`;`-separated lists, blanks dropped (for file lists)."""
    items: list[str] = []
    for value in values:
        for item in value.replace(";", ",").split(","):
            item = _unquote(item)
            if item:
                items.append(item)
    return items


def peek_config(argv: Sequence[str], environ: Mapping[str, str], name: str) -> str | None:
    """A value from the /CONFIG file read leniently (for the language, before parsing)."""
    path = peek(argv, environ, "CONFIG")
    if not path:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(read_text_file(Path(path)))
        return _unquote(parser.get("smail", name.lower(), fallback="")) or None
    except (configparser.Error, OSError, ValueError):
        return None


# Exit codes for the help screen, in SPEC.md's order.
EXIT_CODE_HELP: Final = (
    (0, N_("message accepted by the server or by Graph")),
    (1, N_("generic error")),
    (2, N_("missing or invalid option")),
    (3, N_("connection failure: DNS, TCP, TLS handshake or certificate")),
    (4, N_("authentication refused")),
    (5, N_("message refused by the server or by Graph")),
    (6, N_("every attempt of /RETRY failed on a transient error")),
    (7, N_("internal error (a bug)")),
    (8, N_("file not found: body, attachment, inline, token, certificate or configuration")),
    (9, N_("/MODE is not SMTP or GRAPH")),
)

EXAMPLES: Final = (
    (N_("SMTP with an attachment:"),
     'SMail /SMTP_SERVER=smtp.example.com /FROM_ADDR=albert@example.com /TO=client@example.com '
     '/SUBJECT="Invoice" /BODY_FILE=Mail.txt /ATTACH=Invoice.pdf'),
    (N_("Office 365 with XOAUTH2 (token obtained by SMail):"),
     'SMail /SMTP_SERVER=smtp.office365.com /SSL_VERSION=TLSV1_2 /AUTH_TYPE=XOAUTH2 '
     '/SMTP_USERNAME=user@example.com /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET=... '
     '/TO=client@example.com /BODY_FILE=Msg.html'),
    (N_("Microsoft Graph (app-only):"),
     'SMail /MODE=GRAPH /O365_TENANT_ID=... /O365_APP_ID=... /O365_SECRET=... '
     '/GRAPH_SENDER=user@example.com /TO=client@example.com /BODY_FILE=Msg.html'),
)


def help_text(version: str) -> str:
    """The full help screen in the active language."""
    lines = [_("SMail {version}: send one e-mail through SMTP or Microsoft Graph.").format(
                 version=version), "",
             _("Usage: SMail [options]     SMail /?     SMail /VERSION"),
             _("Options are /NAME=value (also -NAME=value or --name=value), @file reads options from a file, SMAIL_<NAME> environment variables and /CONFIG=file.ini give defaults."),
             ""]
    for group in Group:
        lines.append(_(group.value))
        for option in OPTIONS:
            if option.group is not group:
                continue
            usage = f"/{option.name}" + (f"={option.metavar}" if option.metavar else "")
            if option.aliases and option.name not in ("HELP",):
                usage += "".join(f", /{alias}" for alias in option.aliases)
            lines.append(f"  {usage:<34} {_(option.help)}")
        lines.append("")
    lines.append(_("Exit codes:"))
    lines.extend(f"  {code}  {_(text)}" for code, text in EXIT_CODE_HELP)
    lines.append("")
    lines.append(_("Examples:"))
    for title, command in EXAMPLES:
        lines.extend([f"  {_(title)}", f"    {command}"])
    return "\n".join(lines) + "\n"
