"""RawOptions -> Config (frozen): converted values, defaults, cross-option and per-mode rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from smail.errors import FileMissingError, ParamError
from smail.i18n import _
from smail.options import (
    BY_NAME,
    OPTIONS,
    AuthType,
    Cloud,
    ErrorFileOnSuccess,
    LogLevel,
    Mode,
    Priority,
    RawOptions,
    TLSMode,
    TLSVersion,
    convert,
    expand_wildcards,
    is_dir,
    is_file,
    read_text_file,
    split_list,
)
from smail.redact import Secret
from smail.retry import RetryPolicy

T = TypeVar("T")
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRY_DELAY = 5.0

# National clouds: identity platform host and Graph root (reference, section 4).
CLOUDS: dict[Cloud, tuple[str, str]] = {
    Cloud.GLOBAL: ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    Cloud.USGOV: ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    Cloud.USGOV_DOD: ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    Cloud.CHINA: ("https://login.partner.microsoftonline.cn",
                  "https://microsoftgraph.chinacloudapi.cn"),
}


@dataclass(frozen=True, kw_only=True)
class MessageSettings:
    subject: str = ""
    from_name: str | None = None
    from_addr: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    body_file: Path | None = None
    body_text: str | None = None
    body_charset: str | None = None
    attachments: tuple[Path, ...] = ()
    inline: tuple[Path, ...] = ()
    priority: Priority | None = None
    read_ack: bool = False
    reception_ack: bool = False
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class AppCredentials:
    """An Entra ID application: client secret or certificate, and where to ask for tokens."""

    tenant_id: str
    app_id: str
    secret: Secret | None = None
    cert_file: Path | None = None
    cert_password: Secret | None = None
    authority_host: str
    graph_endpoint: str


@dataclass(frozen=True, kw_only=True)
class TLSSettings:
    min_version: TLSVersion | None = None
    ca_file: Path | None = None
    verify: bool = True


@dataclass(frozen=True, kw_only=True)
class SMTPSettings:
    server: str
    port: int
    tls_mode: TLSMode  # resolved: STARTTLS, IMPLICIT or NONE
    tls: TLSSettings
    auth: AuthType  # resolved: NONE, SASL or XOAUTH2
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    app: AppCredentials | None = None
    helo: str | None = None
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class GraphSettings:
    app: AppCredentials
    sender: str
    save_to_sent: bool = True
    proxy: str | None = None
    tls: TLSSettings
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    error_file: Path | None = None
    error_file_on_success: ErrorFileOnSuccess = ErrorFileOnSuccess.DELETE
    quiet: bool = False
    dry_run: bool = False
    save_eml: Path | None = None


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    path: Path | None = None
    level: LogLevel = LogLevel.INFO


@dataclass(frozen=True, kw_only=True)
class Config:
    mode: Mode
    message: MessageSettings
    transport: SMTPSettings | GraphSettings
    retry: RetryPolicy
    output: OutputSettings
    logging: LogSettings
    secrets: tuple[Secret, ...] = field(default=())


def _check_header_text(name: str, value: str) -> None:
    """CR, LF or NUL in a header value would let a value inject headers: refuse them."""
    if any(ch in value for ch in "\r\n\0"):
        raise ParamError(_("The value of /{name} contains a line break or a NUL character, which is not allowed.").format(name=name))


class _Values:
    """Converted option values, read once each."""

    def __init__(self, raw: RawOptions) -> None:
        self.raw = raw
        self.converted: dict[str, object] = {}
        mode_option = BY_NAME["MODE"]
        if raw.given("MODE"):  # an invalid mode is exit 9 whatever else is wrong
            self.converted["MODE"] = convert(mode_option, raw.get("MODE") or "")
        for option in OPTIONS:
            if option.name in self.converted or not raw.given(option.name):
                continue
            if option.repeat:
                items = raw.get_list(option.name)
                if option.name in ("ATTACH", "INLINE"):
                    self.converted[option.name] = _files(option.name, items)
                else:
                    self.converted[option.name] = tuple(items)
            else:
                self.converted[option.name] = convert(option, raw.get(option.name) or "")

    def __getitem__(self, name: str) -> object:
        return self.converted.get(name)

    def get(self, name: str, kind: type[T]) -> T | None:
        """The converted value of `name` when it was given (converters fix its type)."""
        value = self.converted.get(name)
        return value if isinstance(value, kind) else None

    def items(self, name: str) -> tuple[str, ...]:
        value = self.converted.get(name)
        return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()

    def files(self, name: str) -> tuple[Path, ...]:
        value = self.converted.get(name)
        return tuple(v for v in value if isinstance(v, Path)) if isinstance(value, tuple) else ()

    def text(self, name: str) -> str | None:
        value = self.converted.get(name)
        return value if isinstance(value, str) and value.strip() else None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.converted.get(name)
        return default if value is None else bool(value)


def _files(name: str, items: list[str]) -> tuple[Path, ...]:
    paths: list[Path] = []
    for item in split_list(items):
        for path in expand_wildcards(item):
            if not is_file(path):
                if is_dir(path):
                    raise FileMissingError(_("/{name}: {path} is a folder, not a file.").format(
                        name=name, path=path))
                raise FileMissingError(_("File not found: {path}").format(path=path))
            paths.append(path)
    return tuple(paths)


def _read_secret_file(path: Path, what: str) -> Secret:
    try:
        value = read_text_file(path).strip("\r\n\ufeff")
    except OSError as exc:
        raise FileMissingError.unreadable(path, exc) from None
    if not value.strip():
        raise ParamError(_("The file {path} given for {what} is empty.").format(path=path, what=what))
    return Secret(value)


def _require(values: _Values, mode: Mode) -> None:
    """Every option the OPTIONS table marks as required in `mode`, in table order."""
    for option in OPTIONS:
        if mode in option.required_in and values.text(option.name) is None:
            raise ParamError(_("Option /{name} is required in {mode} mode.").format(
                name=option.name, mode=mode.value))


def _secret(values: _Values, name: str, file_name: str, what: str) -> Secret | None:
    path = values.get(file_name, Path)
    if path is not None:
        if values.text(name):
            raise ParamError(_("Give /{name} or /{file_name}, not both.").format(
                name=name, file_name=file_name))
        return _read_secret_file(path, what)
    text = values.text(name)
    return Secret(text) if text else None


def _app_credentials(values: _Values) -> AppCredentials | None:
    tenant, app_id = values.text("O365_TENANT_ID"), values.text("O365_APP_ID")
    secret = _secret(values, "O365_SECRET", "O365_SECRET_FILE", "/O365_SECRET_FILE")
    cert = values.get("O365_CERT_FILE", Path)
    if not (tenant or app_id or secret or cert):
        return None
    authority, graph = CLOUDS[values.get("O365_CLOUD", Cloud) or Cloud.GLOBAL]
    password = values.text("O365_CERT_PASSWORD")
    return AppCredentials(
        tenant_id=tenant or "", app_id=app_id or "", secret=secret,
        cert_file=cert,
        cert_password=Secret(password) if password else None,
        authority_host=values.text("O365_AUTHORITY_HOST") or authority,
        graph_endpoint=values.text("GRAPH_ENDPOINT") or graph)


def _check_app(app: AppCredentials | None, mode: Mode) -> AppCredentials:
    if app is None or not app.tenant_id:
        raise ParamError(_("Option /{name} is required in {mode} mode.").format(
            name="O365_TENANT_ID", mode=mode.value))
    if not app.app_id:
        raise ParamError(_("Option /{name} is required in {mode} mode.").format(
            name="O365_APP_ID", mode=mode.value))
    if app.secret is None and app.cert_file is None:
        raise ParamError(_("Give a client secret (/O365_SECRET or /O365_SECRET_FILE) or a certificate (/O365_CERT_FILE)."))
    if app.secret is not None and app.cert_file is not None:
        raise ParamError(_("Give either a client secret or a certificate, not both."))
    return app


def _tls(values: _Values) -> TLSSettings:
    return TLSSettings(min_version=values.get("SSL_VERSION", TLSVersion),
                       ca_file=values.get("CA_FILE", Path), verify=not values.flag("SSL_NO_VERIFY"))


def _smtp(values: _Values) -> SMTPSettings:
    _require(values, Mode.SMTP)
    server = values.text("SMTP_SERVER") or ""
    port = values.get("SMTP_PORT", int)
    tls_mode = values.get("SSL_MODE", TLSMode) or TLSMode.AUTO
    if tls_mode is TLSMode.AUTO:
        if port == 465:
            tls_mode = TLSMode.IMPLICIT
        elif values["SSL_VERSION"] is not None:
            tls_mode = TLSMode.STARTTLS
        else:
            tls_mode = TLSMode.NONE
    if tls_mode is TLSMode.NONE and values["SSL_VERSION"] is not None:
        raise ParamError(_("/SSL_VERSION asks for TLS but /SSL_MODE=NONE forbids it."))
    if port is None:
        port = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}.get(tls_mode, 25)
    username = values.text("SMTP_USERNAME")
    password = _secret(values, "SMTP_PASSWORD", "SMTP_PASSWORD_FILE", "/SMTP_PASSWORD_FILE")
    token_file = values.get("SMTP_TOKEN_FILE", Path)
    token = None
    if token_file is not None:
        token = _read_secret_file(token_file, "/SMTP_TOKEN_FILE")
        token = Secret(token.reveal().strip())
    app = _app_credentials(values)
    auth = values.get("AUTH_TYPE", AuthType) or AuthType.DEFAULT
    if auth is AuthType.DEFAULT:
        if not username:
            auth = AuthType.NONE
        elif token is not None or (app is not None and password is None):
            auth = AuthType.XOAUTH2
        elif password is not None:
            auth = AuthType.SASL
        else:
            raise ParamError(_("/SMTP_USERNAME is given without /SMTP_PASSWORD or /SMTP_TOKEN_FILE (use /AUTH_TYPE=NONE to send without authenticating)."))
    if auth is AuthType.SASL:
        if not username:
            raise ParamError(_("/AUTH_TYPE=SASL needs /SMTP_USERNAME."))
        if password is None:
            raise ParamError(_("/AUTH_TYPE=SASL needs /SMTP_PASSWORD (or /SMTP_PASSWORD_FILE)."))
    if auth is AuthType.XOAUTH2:
        if not username:
            raise ParamError(_("/AUTH_TYPE=XOAUTH2 needs /SMTP_USERNAME."))
        if token is None:
            if app is None:
                raise ParamError(_("/AUTH_TYPE=XOAUTH2 needs /SMTP_TOKEN_FILE, or /O365_TENANT_ID, /O365_APP_ID and /O365_SECRET (or /O365_CERT_FILE)."))
            _check_app(app, Mode.SMTP)
    helo = values.text("HELO")
    if helo and not helo.strip().isascii():
        raise ParamError(_("Invalid value \"{value}\" for /{name}: {reason}.").format(
            value=helo, name="HELO", reason=_("expected an ASCII host name")))
    return SMTPSettings(
        server=server.strip(), port=port, tls_mode=tls_mode, tls=_tls(values), auth=auth,
        username=username, password=password, token=token,
        app=app if auth is AuthType.XOAUTH2 and token is None else None,
        helo=helo.strip() if helo else None,
        timeout=values.get("TIMEOUT", float) or DEFAULT_TIMEOUT)


def _graph(values: _Values) -> GraphSettings:
    _require(values, Mode.GRAPH)
    app = _check_app(_app_credentials(values), Mode.GRAPH)
    return GraphSettings(
        app=app, sender=(values.text("GRAPH_SENDER") or "").strip(),
        save_to_sent=values.flag("SAVE_TO_SENT", default=True),
        proxy=values.text("PROXY"), tls=_tls(values),
        timeout=values.get("TIMEOUT", float) or DEFAULT_TIMEOUT)


def _message(values: _Values, mode: Mode) -> MessageSettings:
    for name in ("SUBJECT", "FROM_NAME", "FROM_ADDR", "REPLY_TO", "TO", "CC", "BCC", "HEADER"):
        value = values[name]
        for item in (value if isinstance(value, tuple) else (value,)):
            if isinstance(item, str):
                _check_header_text(name, item)
    from_addr = values.text("FROM_ADDR")
    if not from_addr:
        username = values.text("SMTP_USERNAME") if mode is Mode.SMTP else values.text("GRAPH_SENDER")
        if username and "@" in username:
            from_addr = username.strip()
    if not from_addr:
        raise ParamError(_("Option /FROM_ADDR is required: the sender address (it defaults to /SMTP_USERNAME when that is an address)."))
    to, cc, bcc = values.items("TO"), values.items("CC"), values.items("BCC")
    if not any(item.strip(" ,;") for item in (*to, *cc, *bcc)):
        raise ParamError(_("At least one recipient is required: /TO, /CC or /BCC."))
    body_file, body_text = values.get("BODY_FILE", Path), values.get("BODY", str)
    if body_file is not None and body_text is not None:
        raise ParamError(_("Give /BODY_FILE or /BODY, not both."))
    if body_file is None and body_text is None:
        raise ParamError(_("A body is required: /BODY_FILE=path or /BODY=\"text\"."))
    charset = values.text("BODY_CHARSET")
    if charset:
        import codecs
        try:
            codecs.lookup(charset)
        except LookupError:
            raise ParamError(_("Invalid value \"{value}\" for /{name}: {reason}.").format(
                value=charset, name="BODY_CHARSET", reason=_("unknown character set"))) from None
    inline = values.files("INLINE")
    is_html = body_file is not None and body_file.suffix.lower() in (".htm", ".html")
    if inline and not is_html:
        raise ParamError(_("/INLINE needs an HTML body (/BODY_FILE ending in .htm or .html)."))
    return MessageSettings(
        subject=values.text("SUBJECT") or "", from_name=values.text("FROM_NAME"),
        from_addr=from_addr, to=to, cc=cc, bcc=bcc, reply_to=values.text("REPLY_TO"),
        body_file=body_file, body_text=body_text, body_charset=charset,
        attachments=values.files("ATTACH"), inline=inline, priority=values.get("PRIORITY", Priority),
        read_ack=values.flag("READ_ACK"), reception_ack=values.flag("RECEPTION_ACK"),
        headers=values.items("HEADER"))


def log_settings(raw: RawOptions) -> LogSettings:
    """Logging from raw options, tolerant of bad values, so that validation errors are logged."""
    path, level = raw.get("LOG"), (raw.get("LOG_LEVEL") or "").strip().upper()
    return LogSettings(path=Path(path.strip().strip('"')) if path and path.strip() else None,
                       level=LogLevel[level] if level in LogLevel.__members__ else LogLevel.INFO)


def validate(raw: RawOptions) -> Config:
    """Check every option and rule before any network or send work; raise SMailError."""
    values = _Values(raw)
    mode = values.get("MODE", Mode) or Mode.SMTP
    transport = _smtp(values) if mode is Mode.SMTP else _graph(values)
    message = _message(values, mode)
    secrets = tuple(s for s in (
        getattr(transport, "password", None), getattr(transport, "token", None),
        transport.app.secret if transport.app else None,
        transport.app.cert_password if transport.app else None) if s is not None)
    return Config(
        mode=mode, message=message, transport=transport,
        retry=RetryPolicy(attempts=values.get("RETRY", int) or 1,
                          delay=values.get("RETRY_DELAY", float) or DEFAULT_RETRY_DELAY),
        output=OutputSettings(
            error_file=values.get("ERROR_FILE", Path), quiet=values.flag("QUIET"),
            error_file_on_success=values.get("ERROR_FILE_ON_SUCCESS", ErrorFileOnSuccess)
            or ErrorFileOnSuccess.DELETE,
            dry_run=values.flag("DRY_RUN"), save_eml=values.get("SAVE_EML", Path)),
        logging=LogSettings(path=values.get("LOG", Path),
                            level=values.get("LOG_LEVEL", LogLevel) or LogLevel.INFO),
        secrets=secrets)


def raw_secrets(raw: RawOptions) -> list[str]:
    """Secret option values as given, registered before anything can fail and print them."""
    return [value for option in OPTIONS if option.secret
            for value in [raw.get(option.name)] if value]


