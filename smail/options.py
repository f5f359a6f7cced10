"""The table of every option, the values as given (RawOptions) and the lookup of a name.

Every consumer reads the one OPTIONS table: the parser, the help screen and its defaults,
the SMAIL_<NAME> environment lookup, the INI keys, the typo hints, the converters (which hold
each option's own checks), the secret registry and the batch columns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Final

from smail import eventlog, files, redact
from smail.cloud import CertStore, Cloud, SignIn
from smail.converters import (
    ConversionError,
    ca_file,
    certificate_list,
    charset,
    choice,
    client_id,
    duration,
    error_file_charset,
    existing_file,
    file_list,
    folder,
    header_text,
    helo,
    integer,
    ip_family,
    mode,
    output_path,
    proxy_value,
    rate,
    scope,
    seconds,
    secret,
    secret_file,
    server,
    text,
    thumbprint,
    url,
    yes_no,
)
from smail.errors import ParamError
from smail.i18n import N_, Language, _
from smail.kinds import Mode, Priority
from smail.log import LogLevel
from smail.network import IPFamily
from smail.output import ErrorFileOnSuccess
from smail.sasl import AuthType
from smail.tls import TLSMode, TLSVersion


class Group(Enum):
    GENERAL = N_("General options")
    MESSAGE = N_("Message options")
    SMIME = N_("Signed and encrypted messages (S/MIME)")
    MANY = N_("Many messages: batch, outbox, result file")
    SMTP = N_("SMTP options (/MODE=SMTP)")
    GRAPH = N_("Microsoft Graph options (/MODE=GRAPH)")


class SecretScope(Enum):
    USER = "USER"
    MACHINE = "MACHINE"


@dataclass(frozen=True, kw_only=True)
class Option:
    """One command-line option: /NAME, SMAIL_NAME and the INI key `name`; its name is the
    attribute of `Opt` that holds it."""

    name: str = ""
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
    secret_file_of: Option | None = None  # this file option holds the secret of that option
    input_file: bool = False           # a file SMail reads: no output may name it
    output_file: bool = False          # a file SMail writes
    per_row: bool = False              # a /BATCH column may set it for its row
    required_in: frozenset[Mode] = frozenset()

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "name", name)

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
_SMIME = Group.SMIME
SMTP_ONLY, GRAPH_ONLY = frozenset({Mode.SMTP}), frozenset({Mode.GRAPH})
# Words the table uses more than once: placeholders of the help screen, one default.
_PATH, _PASSWORD, _TEXT, _NAME = N_("path"), N_("password"), N_("text"), N_("name")
_ADDRESS, _ADDRESSES, _FILES = N_("address"), N_("addresses"), N_("files")
_EITHER_STORE = N_("the user's, then the computer's")


class _General:
    """General options: the transport, retries, logs, languages, proxies."""

    MODE = Option(group=_GENERAL, metavar="SMTP|GRAPH", convert=mode, default=Mode.SMTP,
        help=N_("Transport: SMTP or GRAPH."))
    LANG = Option(group=_GENERAL, metavar="|".join(language.value for language in Language), convert=choice(Language),
        default_text=N_("the system's language"),
        help=N_("Language of messages, help and log."))
    RETRY = Option(group=_GENERAL, metavar="N", convert=integer(1, 100), default=1,
        help=N_("Number of send attempts, 1 to 100; only transient failures are retried."))
    RETRY_DELAY = Option(group=_GENERAL, metavar="S", convert=seconds, default=5.0,
        help=N_("Seconds before the second attempt, doubled each time."))
    TIMEOUT = Option(group=_GENERAL, metavar="S", convert=seconds, default=60.0,
        help=N_("Network timeout in seconds for each operation."))
    LOG = Option(group=_GENERAL, metavar=_PATH, convert=output_path, aliases=("LOG_FILE",),
        output_file=True, help=N_("Append a timestamped log to this file (UTF-8)."))
    LOG_LEVEL = Option(group=_GENERAL, metavar="ERROR|INFO|DEBUG", convert=choice(LogLevel),
        default=LogLevel.INFO,
        help=N_("Log detail; DEBUG shows the protocol dialogue, secrets masked."))
    ERROR_FILE = Option(group=_GENERAL, metavar=_PATH, convert=output_path, output_file=True,
        help=N_("On failure, write the final error message to this file."))
    ERROR_FILE_CHARSET = Option(group=_GENERAL, metavar="UTF-8|ANSI|OEM", convert=error_file_charset,
        default="utf-8", default_text=N_("UTF-8"),
        help=N_("Encoding of the error file; OEM is what set /p reads in a .bat file."))
    ERROR_FILE_ON_SUCCESS = Option(group=_GENERAL, metavar="DELETE|EMPTY",
        convert=choice(ErrorFileOnSuccess), default=ErrorFileOnSuccess.DELETE,
        help=N_("On success, delete the error file or leave it empty."))
    QUIET = Option(group=_GENERAL, switch=True, convert=yes_no,
        help=N_("Print nothing on success."))
    DRY_RUN = Option(group=_GENERAL, switch=True, convert=yes_no,
        help=N_("Check the options and build the message, but connect to nothing."))
    SAVE_EML = Option(group=_GENERAL, metavar=_PATH, convert=folder, output_file=True,
        help=N_("Also save the exact message sent (or that would be sent) to this file; with /BATCH, a folder."))
    CONFIG = Option(group=_GENERAL, metavar=_PATH, convert=existing_file, input_file=True,
        help=N_("Read default options from this INI file (section [smail])."))
    PROXY = Option(group=_GENERAL, metavar="http://...|socks5://...|NONE", convert=proxy_value,
        default_text=N_("HTTPS_PROXY or ALL_PROXY unless NO_PROXY names the server"),
        help=N_("Proxy for SMTP and Graph: HTTP CONNECT (http://[user@]host:port) or SOCKS5 (socks5://[user@]host:port); NONE ignores the environment."))
    PROXY_PASSWORD = Option(group=_GENERAL, metavar=_PASSWORD, convert=secret, secret=True,
        help=N_("Password of the proxy user (prefer SMAIL_PROXY_PASSWORD or /PROXY_PASSWORD_FILE)."))
    PROXY_PASSWORD_FILE = Option(group=_GENERAL, metavar=_PATH, convert=secret_file, input_file=True,
        secret_file_of=PROXY_PASSWORD, help=N_("Read the proxy password from this file."))
    HELP = Option(group=_GENERAL, switch=True, convert=yes_no, aliases=("?", "H"),
        help=N_("Show this help."))
    VERSION = Option(group=_GENERAL, switch=True, convert=yes_no,
        help=N_("Show the version."))
    EVENT_LOG = Option(group=_GENERAL, metavar="NONE|ERRORS|ALL", convert=eventlog.level,
        default=eventlog.EventLogLevel.NONE,
        help=N_("Windows: write one entry per run to the Application event log, source SMail: ERRORS for failures, ALL for every run."))
    REGISTER_EVENT_SOURCE = Option(group=_GENERAL, switch=True, convert=yes_no,
        help=N_("Windows: register the event source SMail once (needs administrator rights)."))
    PROTECT_SECRET = Option(group=_GENERAL, switch=True, convert=yes_no,
        help=N_("Windows: read a secret (console without echo, or standard input) and write it to /OUT encrypted for this user (DPAPI)."))
    OUT = Option(group=_GENERAL, metavar=_PATH, convert=output_path, output_file=True,
        help=N_("The file /PROTECT_SECRET writes."))
    SCOPE = Option(group=_GENERAL, metavar="USER|MACHINE", convert=choice(SecretScope),
        default=SecretScope.USER,
        help=N_("/PROTECT_SECRET: who can decrypt: this user, or every account of this computer."))


class _Message:
    """The message: sender, recipients, subject, body, attachments, headers."""

    SUBJECT = Option(group=_MESSAGE, metavar=_TEXT, convert=header_text, per_row=True,
        help=N_("Subject of the message."))
    FROM_NAME = Option(group=_MESSAGE, metavar=_NAME, convert=header_text, per_row=True,
        help=N_("Display name of the sender."))
    FROM_ADDR = Option(group=_MESSAGE, metavar=_ADDRESS, convert=header_text, per_row=True,
        default_text=N_("/SMTP_USERNAME, or /GRAPH_SENDER"),
        help=N_("Sender address."))
    TO = Option(group=_MESSAGE, metavar=_ADDRESSES, repeat=True, convert=header_text, per_row=True,
        help=N_("Recipients, separated by , or ; as addr or Name <addr>."))
    CC = Option(group=_MESSAGE, metavar=_ADDRESSES, repeat=True, convert=header_text, per_row=True,
        help=N_("Copy recipients."))
    BCC = Option(group=_MESSAGE, metavar=_ADDRESSES, repeat=True, convert=header_text, per_row=True,
        help=N_("Blind copy recipients (never shown in the headers)."))
    REPLY_TO = Option(group=_MESSAGE, metavar=_ADDRESSES, convert=header_text, per_row=True,
        help=N_("Reply-to address(es)."))
    BODY_FILE = Option(group=_MESSAGE, metavar=_PATH, convert=existing_file, input_file=True,
        per_row=True, help=N_("Body file: .htm/.html is sent as HTML, anything else as plain text."))
    BODY = Option(group=_MESSAGE, metavar=_TEXT, per_row=True,
        help=N_("Body text given on the command line (plain text)."))
    BODY_CHARSET = Option(group=_MESSAGE, metavar=N_("charset"), convert=charset, per_row=True,
        default_text=N_("detected"), help=N_("Encoding of the body file."))
    ATTACH = Option(group=_MESSAGE, metavar=_FILES, repeat=True, convert=file_list, input_file=True,
        per_row=True, help=N_("Attachments, separated by , or ; (wildcards * and ? allowed)."))
    INLINE = Option(group=_MESSAGE, metavar=_FILES, repeat=True, convert=file_list, input_file=True,
        per_row=True, help=N_("Images for an HTML body, referenced as cid:<file name>."))
    PRIORITY = Option(group=_MESSAGE, metavar="HIGHEST|HIGH|NORMAL|LOW|LOWEST",
        convert=choice(Priority), per_row=True, help=N_("Priority of the message."))
    READ_ACK = Option(group=_MESSAGE, switch=True, convert=yes_no, per_row=True,
        help=N_("Ask for a read receipt."))
    RECEPTION_ACK = Option(group=_MESSAGE, switch=True, convert=yes_no, per_row=True,
        help=N_("Ask for a delivery receipt (DSN)."))
    HEADER = Option(group=_MESSAGE, metavar=N_("\"X-Name: value\""), repeat=True, convert=header_text,
        per_row=True, help=N_("Extra header, repeatable."))


class _Smime:
    """S/MIME: signing and encryption certificates."""

    SIGN_CERT = Option(group=_SMIME, metavar=_PATH, convert=existing_file, input_file=True,
        help=N_("Sign the message (S/MIME) with this certificate and its private key: .pfx/.p12, or PEM. It must name /FROM_ADDR and be valid for e-mail protection."))
    SIGN_CERT_PASSWORD = Option(group=_SMIME, metavar=_PASSWORD, convert=secret, secret=True,
        help=N_("Password of the signing certificate file."))
    SIGN_CERT_PASSWORD_FILE = Option(group=_SMIME, metavar=_PATH, convert=secret_file, input_file=True,
        secret_file_of=SIGN_CERT_PASSWORD, help=N_("Read the signing certificate's password from this file."))
    SIGN_CERT_THUMBPRINT = Option(group=_SMIME, metavar="SHA-1", convert=thumbprint,
        help=N_("Windows: sign with this certificate of the certificate store (My), whose key stays there (non-exportable keys work)."))
    SIGN_CERT_STORE = Option(group=_SMIME, metavar="USER|MACHINE", convert=choice(CertStore),
        default_text=_EITHER_STORE,
        help=N_("Store of /SIGN_CERT_THUMBPRINT: My of the current user, or of the computer."))
    SIGN_ANY_ADDRESS = Option(group=_SMIME, switch=True, convert=yes_no,
        help=N_("Sign even when the certificate does not name /FROM_ADDR (recipients' mail programs will warn)."))
    ENCRYPT_TO = Option(group=_SMIME, metavar=_FILES, repeat=True, convert=certificate_list, input_file=True,
        per_row=True,
        help=N_("Encrypt the message (S/MIME, AES-256) to these certificates (.cer, .crt, .pem files, or thumbprints of the Windows store's Other People), separated by , or ;: one for every recipient of /TO, /CC and /BCC."))
    ENCRYPT_NO_SELF = Option(group=_SMIME, switch=True, convert=yes_no,
        help=N_("Do not encrypt to the sender's own certificate as well (the copy in Sent Items then cannot be read)."))


class _Many:
    """Many messages: the batch, the outbox, the result file."""

    RESULT_FILE = Option(group=_MANY, metavar=N_("path.json"), convert=output_path, output_file=True,
        help=N_("Write a receipt of the run as JSON (every message, on success and on failure)."))
    BATCH = Option(group=_MANY, metavar=N_("rows.csv"), convert=existing_file, input_file=True,
        help=N_("Send one message per row of this CSV file; columns named like options set them per row, the others are template variables."))
    BATCH_RESULT = Option(group=_MANY, metavar=N_("results.csv"), convert=output_path, output_file=True,
        help=N_("Write one line per row of /BATCH as each message finishes; a file that already records sent rows is refused without /BATCH_RESUME."))
    BATCH_RESUME = Option(group=_MANY, switch=True, convert=yes_no,
        help=N_("Send only the rows /BATCH_RESULT does not mark as sent; those marked sending or may-have-been-sent are reported, not sent (see /RESEND_UNCERTAIN)."))
    RATE = Option(group=_MANY, metavar="N/MIN", convert=rate,
        help=N_("Send at most this many messages per minute (N/MIN), second (N/S) or hour (N/H)."))
    OUTBOX = Option(group=_MANY, metavar=N_("folder"), convert=folder,
        help=N_("Keep a message that cannot be delivered now (not refused: the server unreachable or failing) in this folder, for /FLUSH."))
    FLUSH = Option(group=_MANY, switch=True, convert=yes_no,
        help=N_("Send the messages waiting in /OUTBOX, oldest first."))
    RESEND_UNCERTAIN = Option(group=_MANY, switch=True, convert=yes_no,
        help=N_("Send again what SMail marked as may have been sent, once you have checked that it did not arrive: with /FLUSH the entries in the outbox's uncertain folder, with /BATCH_RESUME the rows marked sending or may-have-been-sent. Each is recorded as a resend."))
    OUTBOX_MAX_AGE = Option(group=_MANY, metavar="72H", convert=duration, default=72 * 3600.0,
        default_text=N_("72H"),
        help=N_("A message older than this in the outbox is moved to its failed folder."))


class _Smtp:
    """/MODE=SMTP: the server, TLS, authentication."""

    SMTP_SERVER = Option(group=_SMTP, metavar=N_("host"), convert=server, required_in=SMTP_ONLY,
        help=N_("SMTP server (required in SMTP mode)."))
    SMTP_PORT = Option(group=_SMTP, metavar="n", convert=integer(1, 65535),
        default_text=N_("25; 587 with STARTTLS; 465 with implicit TLS"), help=N_("Port."))
    SMTP_USERNAME = Option(group=_SMTP, metavar=N_("login"),
        help=N_("User name for authentication."))
    SMTP_PASSWORD = Option(group=_SMTP, metavar=_PASSWORD, convert=secret, secret=True,
        help=N_("Password (prefer SMAIL_SMTP_PASSWORD or /SMTP_PASSWORD_FILE)."))
    SMTP_PASSWORD_FILE = Option(group=_SMTP, metavar=_PATH, convert=secret_file, input_file=True,
        secret_file_of=SMTP_PASSWORD, help=N_("Read the password from this file."))
    SMTP_TOKEN_FILE = Option(group=_SMTP, metavar=_PATH, convert=secret_file, input_file=True,
        help=N_("File holding an OAuth2 access token for XOAUTH2."))
    AUTH_TYPE = Option(group=_SMTP, metavar="DEFAULT|NONE|SASL|XOAUTH2", convert=choice(AuthType),
        default=AuthType.DEFAULT,
        help=N_("Authentication: DEFAULT (when a user name is given), NONE, SASL or XOAUTH2."))
    SSL_VERSION = Option(group=_SMTP, metavar="TLSV1_2|TLSV1_3", convert=choice(TLSVersion),
        help=N_("Use TLS with at least this version."))
    SSL_MODE = Option(group=_SMTP, metavar="AUTO|STARTTLS|IMPLICIT|NONE", convert=choice(TLSMode),
        default=TLSMode.AUTO,
        help=N_("TLS mode (AUTO: implicit on port 465, STARTTLS when /SSL_VERSION is given)."))
    CA_FILE = Option(group=_SMTP, metavar=_PATH, convert=ca_file, input_file=True,
        help=N_("Extra trusted CA certificates (PEM), for SMTP and HTTPS."))
    SSL_NO_VERIFY = Option(group=_SMTP, switch=True, convert=yes_no,
        help=N_("Accept any server certificate (unsafe; logged as a warning)."))
    IP = Option(group=_SMTP, metavar="4|6|ANY", convert=ip_family, default=IPFamily.ANY,
        help=N_("Connect over IPv4 only (4) or IPv6 only (6); by default every address of the server in turn."))
    HELO = Option(group=_SMTP, metavar=_NAME, convert=helo,
        default_text=N_("this computer's full name"), help=N_("Name sent in EHLO."))


class _Graph:
    """/MODE=GRAPH: the application, its credential, the cloud, the mailbox."""

    O365_AUTH = Option(group=_GRAPH, metavar="APP|MANAGED_IDENTITY", convert=choice(SignIn),
        default=SignIn.APP,
        help=N_("How to sign in to Microsoft (Graph, and XOAUTH2 without a token file): APP, an application's secret or certificate; MANAGED_IDENTITY, this machine's identity (Azure Arc or Azure VM), with no tenant, application or secret."))
    O365_MANAGED_IDENTITY = Option(group=_GRAPH, metavar="client-id", convert=client_id,
        default_text=N_("the system-assigned identity"),
        help=N_("With /O365_AUTH=MANAGED_IDENTITY: the client ID of a user-assigned identity."))
    O365_TENANT_ID = Option(group=_GRAPH, metavar="id",
        help=N_("Directory (tenant) ID or verified domain (required, except with a managed identity)."))
    O365_APP_ID = Option(group=_GRAPH, metavar="id",
        help=N_("Application (client) ID (required, except with a managed identity)."))
    O365_SECRET = Option(group=_GRAPH, metavar=N_("secret"), convert=secret, secret=True,
        help=N_("Client secret (prefer SMAIL_O365_SECRET or /O365_SECRET_FILE)."))
    O365_SECRET_FILE = Option(group=_GRAPH, metavar=_PATH, convert=secret_file, input_file=True,
        secret_file_of=O365_SECRET, help=N_("Read the client secret from this file."))
    O365_CERT_FILE = Option(group=_GRAPH, metavar=_PATH, convert=existing_file, input_file=True,
        help=N_("Certificate credential: .pfx/.p12, or PEM with its private key."))
    O365_CERT_THUMBPRINT = Option(group=_GRAPH, metavar="SHA-1", convert=thumbprint,
        help=N_("Windows: certificate credential from the certificate store, by its SHA-1 thumbprint (spaces ignored); its private key stays in the store, even when it is not exportable."))
    O365_CERT_STORE = Option(group=_GRAPH, metavar="USER|MACHINE", convert=choice(CertStore),
        default_text=_EITHER_STORE,
        help=N_("Store of /O365_CERT_THUMBPRINT: My of the current user, or of the computer."))
    O365_CERT_PASSWORD = Option(group=_GRAPH, metavar=_PASSWORD, convert=secret, secret=True,
        help=N_("Password of the certificate file."))
    O365_CERT_PASSWORD_FILE = Option(group=_GRAPH, metavar=_PATH, convert=secret_file, input_file=True,
        secret_file_of=O365_CERT_PASSWORD, help=N_("Read the certificate password from this file."))
    GRAPH_SENDER = Option(group=_GRAPH, metavar=_ADDRESS, required_in=GRAPH_ONLY,
        help=N_("Mailbox that sends (required in Graph mode)."))
    O365_CLOUD = Option(group=_GRAPH, metavar="GLOBAL|USGOV|USGOV_DOD|CHINA", convert=choice(Cloud),
        default=Cloud.GLOBAL, help=N_("National cloud; sets the two endpoints below."))
    O365_AUTHORITY_HOST = Option(group=_GRAPH, metavar="https://...", convert=url,
        default_text=N_("the cloud's, https://login.microsoftonline.com"),
        help=N_("Identity platform host."))
    GRAPH_ENDPOINT = Option(group=_GRAPH, metavar="https://...", convert=url,
        default_text=N_("the cloud's, https://graph.microsoft.com"), help=N_("Graph host."))
    GRAPH_SCOPE = Option(group=_GRAPH, metavar="https://.../.default", convert=scope,
        default_text=N_("the Graph resource of the cloud"),
        help=N_("Token scope; a private /GRAPH_ENDPOINT does not change it."))
    SAVE_TO_SENT = Option(group=_GRAPH, metavar="YES|NO", convert=yes_no, default=True,
        help=N_("Keep a copy in Sent Items."))


class Opt(_General, _Message, _Smime, _Many, _Smtp, _Graph):
    """The table: one attribute per option, in help order (one base class per section of the
    help screen), named as the option is (`Opt.SMTP_SERVER.name == "SMTP_SERVER"`). Code names
    an option by its attribute, so that a misspelt name is an error for mypy and when it runs,
    never an option not given."""


OPTIONS: Final[tuple[Option, ...]] = tuple(
    option for section in (_General, _Message, _Smime, _Many, _Smtp, _Graph)
    for option in vars(section).values() if isinstance(option, Option))

BY_NAME: Final[Mapping[str, Option]] = {
    key: option for option in OPTIONS for key in (option.name, *option.aliases)}


def recover_text(value: str) -> str:
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
        value = recover_text(value)
    try:
        return option.convert(value)
    except ConversionError as exc:
        shown = "****" if option.secret else redact.shown(value[:80])
        raise ParamError.invalid_value(option.name, shown, exc) from None


def echoed(token: str) -> str:
    """A token as an error may show it: one line, and never what follows a name and a
    separator (`SMTP_PASWORD=...` without its "/", `/SMTP_PASSWORD:...`, `SMAIL_...=...`): a
    misspelt option may carry a password. The name is enough to tell what is wrong."""
    match = re.match(r"([^=:\s]*)([=:\s])", token)
    if match and token[match.end():].strip():
        return redact.shown(recover_text(match.group(1) + match.group(2))) + "****"
    return redact.shown(recover_text(token))


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


def key(option: Option | str) -> str:
    """The table's name of an option, or of a name (an alias gives its option's): a name the
    table does not hold is a KeyError, never read as an option that was not given."""
    return option.name if isinstance(option, Option) else BY_NAME[option].name


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
    proxy_environment: dict[str, str] = field(default_factory=dict)  # HTTPS_PROXY, NO_PROXY...

    def get(self, option: Option | str) -> str | None:
        value = self.values.get(key(option))
        return value if isinstance(value, str) else None

    def get_list(self, option: Option | str) -> list[str]:
        value = self.values.get(key(option))
        return list(value) if isinstance(value, list) else []

    def given(self, option: Option | str) -> bool:
        return key(option) in self.values

    def flag(self, option: Option | str) -> bool:
        """A switch read without failing: an unreadable value counts as given."""
        value = self.get(option)
        if value is None:
            return False
        try:
            return yes_no(value)
        except ConversionError:
            return True
