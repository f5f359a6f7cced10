"""RawOptions -> Config (frozen): converted values with the table's defaults, then the rules
that involve several options and the checks each mode needs before anything is sent."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, TypeVar

from smail import cloud, files, proxy
from smail.addresses import no_recipient, parse_header
from smail.cloud import AppCredentials, CertStore, Cloud, SignIn
from smail.converters import is_credential_reference, path_of
from smail.errors import ParamError, SMailError
from smail.eventlog import EventLogLevel
from smail.i18n import _
from smail.kinds import Mode, Priority, RunKind
from smail.log import LogLevel, LogSettings
from smail.network import IPFamily
from smail.options import OPTIONS, Opt, Option, RawOptions, Source, convert
from smail.output import ErrorFileOnSuccess
from smail.proxy import Proxy, ProxyOff
from smail.redact import Secret
from smail.retry import RetryPolicy
from smail.sasl import AuthType
from smail.settings import (
    BatchSettings,
    GraphSettings,
    MessageSettings,
    OutboxSettings,
    OutputSettings,
    Reporting,
    SMIMESettings,
    SMTPSettings,
    is_html,
)
from smail.tls import TLSMode, TLSSettings, TLSVersion

T = TypeVar("T")

# Graph's internetMessageHeaders: only X- names, at most 5 (Microsoft's page "message resource
# type"), refused by Graph otherwise; checked here so that /DRY_RUN refuses them too.
GRAPH_MAX_HEADERS = 5


@dataclass(frozen=True, kw_only=True)
class Run:
    """What every kind of run has; each kind adds, non-optional, what it needs."""

    kind: ClassVar[RunKind]
    mode: Mode
    transport: SMTPSettings | GraphSettings
    retry: RetryPolicy
    output: OutputSettings
    outbox: OutboxSettings | None = None  # where a transient failure is kept (/OUTBOX)
    smime: SMIMESettings | None = None  # /SIGN_CERT, /ENCRYPT_TO
    secrets: tuple[Secret, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # said on stderr and in the log before anything is sent


@dataclass(frozen=True, kw_only=True)
class SingleRun(Run):
    """One message, described by the options."""

    kind: ClassVar[RunKind] = RunKind.SINGLE
    message: MessageSettings


@dataclass(frozen=True, kw_only=True)
class BatchRun(Run):
    """One message per row of /BATCH; each row's message is validated by the batch."""

    kind: ClassVar[RunKind] = RunKind.BATCH
    batch: BatchSettings


@dataclass(frozen=True, kw_only=True)
class FlushRun(Run):
    """/FLUSH: sends what the outbox holds, so it has no message of its own."""

    kind: ClassVar[RunKind] = RunKind.FLUSH
    outbox: OutboxSettings


Config = SingleRun | BatchRun | FlushRun


class Values:
    """Converted option values, each converted once, with the table's defaults."""

    def __init__(self, raw: RawOptions, options: tuple[Option, ...] = OPTIONS) -> None:
        self.raw = raw
        self.converted: dict[str, object] = {}
        if raw.given(Opt.MODE):  # an invalid mode is exit 9 whatever else is wrong
            self.converted[Opt.MODE.name] = convert(Opt.MODE, raw.get(Opt.MODE) or "")
        for option in options:
            if option.name in self.converted or not raw.given(option):
                continue
            if option.repeat:
                items: list[object] = []
                for item in raw.get_list(option):
                    value = convert(option, item)
                    items.extend(value if isinstance(value, tuple) else (value,))
                self.converted[option.name] = tuple(items)
            else:
                self.converted[option.name] = convert(option, raw.get(option) or "")

    def given(self, option: Option) -> bool:
        return option.name in self.converted

    def get(self, option: Option, kind: type[T]) -> T | None:
        """The converted value of `option`, else the table's default (converters fix its type)."""
        value = self.converted.get(option.name, option.default)
        return value if isinstance(value, kind) else None

    def require(self, option: Option, kind: type[T]) -> T:
        """A value the table gives a default for."""
        value = self.get(option, kind)
        assert value is not None, option.name
        return value

    def items(self, option: Option, kind: type[T]) -> tuple[T, ...]:
        value = self.converted.get(option.name)
        return tuple(v for v in value if isinstance(v, kind)) if isinstance(value, tuple) else ()

    def text(self, option: Option) -> str | None:
        value = self.converted.get(option.name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def flag(self, option: Option) -> bool:
        return bool(self.get(option, bool))

    def secret(self, option: Option) -> Secret | None:
        """A secret given directly or through its *_FILE option, not both."""
        direct = self.get(option, Secret)
        direct = direct if direct is not None and direct.reveal().strip() else None
        for file_option in OPTIONS:
            if file_option.secret_file_of is option and self.given(file_option):
                if direct is not None:
                    raise ParamError(_("Give /{name} or /{file_name}, not both.").format(
                        name=option.name, file_name=file_option.name))
                return self.get(file_option, Secret)
        return direct


def _required(option: Option, mode: Mode) -> ParamError:
    return ParamError(_("Option /{name} is required in {mode} mode.").format(name=option.name, mode=mode.value))


def _require(values: Values, mode: Mode) -> None:
    """Every option the OPTIONS table marks as required in `mode`, in table order."""
    for option in OPTIONS:
        if mode in option.required_in and values.text(option) is None:
            raise _required(option, mode)


def _app_credentials(values: Values) -> AppCredentials | None:
    tenant, app_id = values.text(Opt.O365_TENANT_ID), values.text(Opt.O365_APP_ID)
    secret = values.secret(Opt.O365_SECRET)
    cert = values.get(Opt.O365_CERT_FILE, Path)
    thumbprint = values.get(Opt.O365_CERT_THUMBPRINT, str)
    sign_in = values.require(Opt.O365_AUTH, SignIn)
    if not (tenant or app_id or secret or cert or thumbprint) and sign_in is SignIn.APP:
        return None
    endpoints = cloud.ENDPOINTS[values.require(Opt.O365_CLOUD, Cloud)]
    graph_endpoint = values.text(Opt.GRAPH_ENDPOINT) or endpoints.graph_root
    return AppCredentials(
        tenant_id=tenant or "", app_id=app_id or "", secret=secret, cert_file=cert,
        cert_password=values.secret(Opt.O365_CERT_PASSWORD), cert_thumbprint=thumbprint,
        cert_store=values.get(Opt.O365_CERT_STORE, CertStore), sign_in=sign_in,
        managed_identity=values.get(Opt.O365_MANAGED_IDENTITY, str),
        authority_host=values.text(Opt.O365_AUTHORITY_HOST) or endpoints.authority_host,
        graph_endpoint=graph_endpoint,
        graph_scope=values.text(Opt.GRAPH_SCOPE) or cloud.graph_scope(
            values.require(Opt.O365_CLOUD, Cloud), values.text(Opt.GRAPH_ENDPOINT)),
        smtp_scope=endpoints.smtp_scope)


def _check_sign_in(values: Values) -> None:
    """The options of one way of signing in only, each with what it needs (exit 2)."""
    managed = values.require(Opt.O365_AUTH, SignIn) is SignIn.MANAGED_IDENTITY
    if values.get(Opt.O365_MANAGED_IDENTITY, str) is not None and not managed:
        raise ParamError(_("/O365_MANAGED_IDENTITY needs /O365_AUTH=MANAGED_IDENTITY."))
    if managed:
        for option in (Opt.O365_SECRET, Opt.O365_SECRET_FILE, Opt.O365_CERT_FILE, Opt.O365_CERT_THUMBPRINT):
            if values.given(option):
                raise ParamError(_("/O365_AUTH=MANAGED_IDENTITY signs in with this machine's identity: /{name} cannot be given with it.").format(
                    name=option.name))
    if values.get(Opt.O365_CERT_STORE, CertStore) is not None and values.get(Opt.O365_CERT_THUMBPRINT, str) is None:
        raise ParamError(_("/O365_CERT_STORE needs /O365_CERT_THUMBPRINT."))
    if values.get(Opt.O365_CERT_THUMBPRINT, str) is not None and sys.platform != "win32":
        raise ParamError(_("/O365_CERT_THUMBPRINT and /O365_CERT_STORE use the Windows certificate store, which exists only on Windows: use /O365_CERT_FILE (a .pfx or PEM file) here."))


def _check_app(app: AppCredentials | None, mode: Mode) -> AppCredentials:
    if app is not None and app.sign_in is SignIn.MANAGED_IDENTITY:
        return app  # no tenant, application or secret: the identity endpoint knows the machine
    if app is None or not app.tenant_id:
        raise _required(Opt.O365_TENANT_ID, mode)
    if not app.app_id:
        raise _required(Opt.O365_APP_ID, mode)
    given = [c for c in (app.secret, app.cert_file, app.cert_thumbprint) if c is not None]
    if not given:
        raise ParamError(_("Give a client secret (/O365_SECRET or /O365_SECRET_FILE) or a certificate (/O365_CERT_FILE or /O365_CERT_THUMBPRINT)."))
    if len(given) > 1:
        raise ParamError(_("Give one credential: a client secret, a certificate file or a certificate thumbprint."))
    return app


def credential_warnings(app: AppCredentials | None) -> tuple[str, ...]:
    """Open the certificate credential as a run would: exit 4 when it cannot be used or has
    expired (before Entra is contacted); a warning when it expires within 30 days."""
    if app is None:
        return ()
    warning = None
    if app.cert_file is not None:
        from smail import certificate  # cryptography: only when a certificate is given

        warning = certificate.inspect(app.cert_file, app.cert_password)
    elif app.cert_thumbprint is not None:
        from smail import certstore

        warning = certstore.inspect(app.cert_thumbprint, app.cert_store)
    return (warning,) if warning else ()


def _tls(values: Values) -> TLSSettings:
    return TLSSettings(min_version=values.get(Opt.SSL_VERSION, TLSVersion),
                       ca_file=values.get(Opt.CA_FILE, Path), verify=not values.flag(Opt.SSL_NO_VERIFY))


def _given_proxy(values: Values) -> Proxy | ProxyOff | None:
    """/PROXY with /PROXY_PASSWORD (or its file) applied; None when /PROXY is not given."""
    given = values.get(Opt.PROXY, object)
    password = values.secret(Opt.PROXY_PASSWORD)
    if isinstance(given, Proxy) and password is not None:
        if given.username is None:
            raise ParamError(_("/PROXY_PASSWORD needs a user name in /PROXY: http://user@host:port or socks5://user@host:port."))
        if given.password is not None:
            raise ParamError(_("Give the proxy password in /PROXY or in /PROXY_PASSWORD, not both."))
        return given.with_password(password)
    return given if isinstance(given, (Proxy, ProxyOff)) else None


def _smtp_proxy(values: Values, server: str, port: int) -> Proxy | None:
    """The proxy for server:port: /PROXY, or HTTPS_PROXY/ALL_PROXY unless NO_PROXY names it."""
    chosen = _smtp_proxy_of(values, server, port)
    try:
        return proxy.check_credentials(chosen) if chosen is not None else None
    except ValueError as exc:
        raise ParamError(str(exc)) from None


def _smtp_proxy_of(values: Values, server: str, port: int) -> Proxy | None:
    given = _given_proxy(values)
    if isinstance(given, Proxy):
        return given
    if given is ProxyOff.NONE:
        return None
    url = proxy.from_environment(values.raw.proxy_environment, server, port)
    if url is None:
        return None
    try:
        found = proxy.parse(url)
    except ValueError as exc:
        raise ParamError(_("The proxy of the environment (HTTPS_PROXY or ALL_PROXY) cannot serve SMTP: {reason}. Use /PROXY=NONE to connect directly.").format(
            reason=exc)) from None
    password = values.secret(Opt.PROXY_PASSWORD)
    if password is not None and found.username is not None and found.password is None:
        found = found.with_password(password)
    return found


def _ip(values: Values, server: str) -> IPFamily:
    """/IP, which an address literal in /SMTP_SERVER must not contradict."""
    import ipaddress

    family = values.require(Opt.IP, IPFamily)
    try:
        version = ipaddress.ip_address(server).version
    except ValueError:
        return family
    if family is not IPFamily.ANY and str(version) != family.value:
        raise ParamError(_("/SMTP_SERVER={server} is an IPv{version} address, and /IP={family} asks for the other family.").format(
            server=server, version=version, family=family.value))
    return family


def _server(values: Values) -> tuple[str, int | None]:
    """/SMTP_SERVER and its port: /SMTP_PORT, or the one written in /SMTP_SERVER (not both
    unless equal)."""
    from smail import hosts

    server, written = hosts.server_address(values.text(Opt.SMTP_SERVER) or "")
    port = values.get(Opt.SMTP_PORT, int)
    if written is not None and port is not None and written != port:
        raise ParamError(_("/SMTP_SERVER names the port {written} and /SMTP_PORT the port {port}: give one.").format(
            written=written, port=port))
    return server, port if port is not None else written


def _smtp(values: Values) -> SMTPSettings:
    _require(values, Mode.SMTP)
    server, port = _server(values)
    tls_mode = values.require(Opt.SSL_MODE, TLSMode)
    if tls_mode is TLSMode.AUTO:
        if port == 465:
            tls_mode = TLSMode.IMPLICIT
        elif values.get(Opt.SSL_VERSION, TLSVersion) is not None:
            tls_mode = TLSMode.STARTTLS
        else:
            tls_mode = TLSMode.NONE
    if tls_mode is TLSMode.NONE and values.get(Opt.SSL_VERSION, TLSVersion) is not None:
        raise ParamError(_("/SSL_VERSION asks for TLS but /SSL_MODE=NONE forbids it."))
    if port is None:
        port = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}.get(tls_mode, 25)
    username = values.text(Opt.SMTP_USERNAME)
    password = values.secret(Opt.SMTP_PASSWORD)
    token = values.get(Opt.SMTP_TOKEN_FILE, Secret)
    app = _app_credentials(values)
    auth = values.require(Opt.AUTH_TYPE, AuthType)
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
                raise ParamError(_("/AUTH_TYPE=XOAUTH2 needs /SMTP_TOKEN_FILE, or /O365_TENANT_ID, /O365_APP_ID and a credential (/O365_SECRET, /O365_CERT_FILE or /O365_CERT_THUMBPRINT), or /O365_AUTH=MANAGED_IDENTITY."))
            _check_app(app, Mode.SMTP)
    return SMTPSettings(
        server=server, port=port, proxy=_smtp_proxy(values, server, port), ip=_ip(values, server),
        proxy_from_environment=_given_proxy(values) is not ProxyOff.NONE, tls_mode=tls_mode, tls=_tls(values), auth=auth,
        username=username, password=password, token=token,
        app=app if auth is AuthType.XOAUTH2 and token is None else None,
        helo=values.text(Opt.HELO), timeout=values.require(Opt.TIMEOUT, float))


def _graph_proxy(values: Values) -> str | None:
    """/PROXY for requests; without it requests reads HTTPS_PROXY/NO_PROXY itself."""
    given = _given_proxy(values)
    if not isinstance(given, Proxy):
        return None
    if given.kind is not proxy.ProxyKind.HTTP:
        raise ParamError(_("In Graph mode /PROXY must be an HTTP proxy (http://host:port); SOCKS5 serves SMTP only."))
    return given.url()


def _graph(values: Values) -> GraphSettings:
    _require(values, Mode.GRAPH)
    app = _check_app(_app_credentials(values), Mode.GRAPH)
    return GraphSettings(
        app=app, sender=values.text(Opt.GRAPH_SENDER) or "",
        save_to_sent=values.flag(Opt.SAVE_TO_SENT), proxy=_graph_proxy(values),
        proxy_from_environment=_given_proxy(values) is not ProxyOff.NONE, tls=_tls(values),
        timeout=values.require(Opt.TIMEOUT, float))


def check_graph_headers(headers: tuple[str, ...]) -> None:
    """Graph's internetMessageHeaders rule: only X- names, at most 5 (exit 2 otherwise)."""
    names = [parse_header(h)[0] for h in headers]
    for name in names:
        if not name.lower().startswith("x-"):
            raise ParamError(_("Microsoft Graph accepts only custom headers whose name starts with X- (\"{name}\" does not).").format(
                name=name))
    if len(names) > GRAPH_MAX_HEADERS:
        raise ParamError(_("Microsoft Graph accepts at most {limit} custom headers; {count} were given.").format(
            limit=GRAPH_MAX_HEADERS, count=len(names)))


def inline_without_html() -> ParamError:
    return ParamError(_("/INLINE needs an HTML body (/BODY_FILE ending in .htm or .html)."))


def given_message(values: Values) -> MessageSettings:
    """The message options as given, converted, with the table's defaults, before the rules
    that involve several of them (settle_message); `from_addr` is empty when not given."""
    return MessageSettings(
        subject=values.get(Opt.SUBJECT, str) or "", from_name=values.text(Opt.FROM_NAME),
        from_addr=values.text(Opt.FROM_ADDR) or "", to=values.items(Opt.TO, str), cc=values.items(Opt.CC, str),
        bcc=values.items(Opt.BCC, str), reply_to=values.text(Opt.REPLY_TO),
        body_file=values.get(Opt.BODY_FILE, Path), body_text=values.get(Opt.BODY, str),
        body_charset=values.text(Opt.BODY_CHARSET), attachments=values.items(Opt.ATTACH, Path),
        inline=values.items(Opt.INLINE, Path), priority=values.get(Opt.PRIORITY, Priority),
        read_ack=values.flag(Opt.READ_ACK), reception_ack=values.flag(Opt.RECEPTION_ACK),
        headers=values.items(Opt.HEADER, str))


def default_sender(values: Values, mode: Mode) -> str | None:
    """What /FROM_ADDR defaults to: the mode's account, when it is an address."""
    return values.text(Opt.SMTP_USERNAME) if mode is Mode.SMTP else values.text(Opt.GRAPH_SENDER)


def settle_message(given: MessageSettings, mode: Mode, *, default_sender: str | None) -> MessageSettings:
    """The message options with the rules that involve several of them (exit 2 otherwise)."""
    from_addr = given.from_addr
    if not from_addr:
        username = default_sender
        if username and "@" in username:
            from_addr = username
    if not from_addr:
        raise ParamError(_("Option /FROM_ADDR is required: the sender address (it defaults to /SMTP_USERNAME when that is an address)."))
    if not any(item.strip(" ,;") for item in (*given.to, *given.cc, *given.bcc)):
        raise no_recipient()
    if given.body_file is not None and given.body_text is not None:
        raise ParamError(_("Give /BODY_FILE or /BODY, not both."))
    if given.body_file is None and given.body_text is None:
        raise ParamError(_("A body is required: /BODY_FILE=path or /BODY=\"text\"."))
    if given.inline and not is_html(given.body_file):
        raise inline_without_html()
    if mode is Mode.GRAPH:
        check_graph_headers(given.headers)
    return replace(given, from_addr=from_addr)


def message_settings(values: Values, mode: Mode) -> MessageSettings:
    """The message options, with the rules that involve several of them."""
    return settle_message(given_message(values), mode, default_sender=default_sender(values, mode))


def reporting(raw: RawOptions) -> Reporting:
    """Reporting settings from tolerantly parsed options: a bad value falls back to the default."""
    def tolerant(option: Option, kind: type[T]) -> T:
        try:
            value = convert(option, raw.get(option) or "") if raw.given(option) else None
        except SMailError:
            value = None
        if not isinstance(value, kind):
            value = option.default
        assert isinstance(value, kind)
        return value
    return Reporting(log=LogSettings(path=path_of(raw.get(Opt.LOG)), level=tolerant(Opt.LOG_LEVEL, LogLevel)),
                     error_file=path_of(raw.get(Opt.ERROR_FILE)),
                     error_file_on_success=tolerant(Opt.ERROR_FILE_ON_SUCCESS, ErrorFileOnSuccess),
                     error_file_encoding=tolerant(Opt.ERROR_FILE_CHARSET, str),
                     quiet=raw.flag(Opt.QUIET), result_file=path_of(raw.get(Opt.RESULT_FILE)),
                     event_log=tolerant(Opt.EVENT_LOG, EventLogLevel))


def _batch(values: Values, mode: Mode) -> BatchSettings | None:
    rows = values.get(Opt.BATCH, Path)
    results = values.get(Opt.BATCH_RESULT, Path)
    if rows is None:
        for option in (Opt.BATCH_RESULT, Opt.BATCH_RESUME):
            if values.given(option):
                raise ParamError(_("/{name} needs /BATCH.").format(name=option.name))
        return None
    if values.flag(Opt.BATCH_RESUME) and results is None:
        raise ParamError(_("/BATCH_RESUME needs /BATCH_RESULT: the file that tells which rows were sent."))
    written = (path_of(values.raw.get(option)) for option in (Opt.RESULT_FILE, Opt.LOG, Opt.ERROR_FILE))
    return BatchSettings(rows=rows, results=results, resume=values.flag(Opt.BATCH_RESUME),
                         resend_uncertain=values.flag(Opt.RESEND_UNCERTAIN), per_second=values.get(Opt.RATE, float),
                         message=given_message(values), default_sender=default_sender(values, mode),
                         receipts=values.raw.given(Opt.RESULT_FILE),
                         outputs=tuple(path for path in written if path is not None))


def _outbox(values: Values) -> OutboxSettings | None:
    folder = values.get(Opt.OUTBOX, Path)
    if folder is None:
        if values.flag(Opt.FLUSH):
            raise ParamError(_("/FLUSH needs /OUTBOX: the folder of the messages to send."))
        return None
    if files.exists(folder) and not files.is_dir(folder):
        raise ParamError(_("/OUTBOX={path} is not a folder.").format(path=folder))
    return OutboxSettings(folder=folder, flush=values.flag(Opt.FLUSH),
                          resend_uncertain=values.flag(Opt.RESEND_UNCERTAIN) and values.flag(Opt.FLUSH),
                          max_age=values.require(Opt.OUTBOX_MAX_AGE, float), per_second=values.get(Opt.RATE, float))


def _needs_sign_cert(option: Option) -> ParamError:
    return ParamError(_("/{name} needs /SIGN_CERT.").format(name=option.name))


def no_certificate_to_encrypt_to() -> ParamError:
    """/ENCRYPT_TO (or a row's cell) that lists no file, `,` or `;` alone: the message would go
    out unencrypted although encryption was asked for."""
    return ParamError(_("/ENCRYPT_TO names no certificate: give the recipients' certificate files, or leave it out to send the message unencrypted."))


def smime_settings(values: Values) -> SMIMESettings | None:
    """/SIGN_CERT and /ENCRYPT_TO with their companions; None when neither is given."""
    sign_cert = values.get(Opt.SIGN_CERT, Path)
    password = values.secret(Opt.SIGN_CERT_PASSWORD)
    thumbprint = values.get(Opt.SIGN_CERT_THUMBPRINT, str)
    encrypt_to = values.items(Opt.ENCRYPT_TO, Path)
    if not encrypt_to and any(item.strip() for item in values.raw.get_list(Opt.ENCRYPT_TO)):
        raise no_certificate_to_encrypt_to()
    if sign_cert is not None and thumbprint is not None:
        raise ParamError(_("Give /SIGN_CERT or /SIGN_CERT_THUMBPRINT, not both."))
    if thumbprint is None and values.given(Opt.SIGN_CERT_STORE):
        raise ParamError(_("/SIGN_CERT_STORE needs /SIGN_CERT_THUMBPRINT."))
    if thumbprint is not None and sys.platform != "win32":
        raise ParamError(_("/SIGN_CERT_THUMBPRINT and /SIGN_CERT_STORE use the Windows certificate store, which exists only on Windows: use /SIGN_CERT (a .pfx or PEM file) here."))
    if sign_cert is None:
        for option in (Opt.SIGN_CERT_PASSWORD, Opt.SIGN_CERT_PASSWORD_FILE):
            if values.given(option):
                raise _needs_sign_cert(option)
    if sign_cert is None and thumbprint is None and values.given(Opt.SIGN_ANY_ADDRESS):
        raise _needs_sign_cert(Opt.SIGN_ANY_ADDRESS)
    if not encrypt_to and values.given(Opt.ENCRYPT_NO_SELF) and values.get(Opt.BATCH, Path) is None:
        raise ParamError(_("/{name} needs /ENCRYPT_TO.").format(name=Opt.ENCRYPT_NO_SELF.name))
    if sign_cert is None and thumbprint is None and not encrypt_to and not values.flag(Opt.ENCRYPT_NO_SELF):
        return None
    return SMIMESettings(sign_cert=sign_cert, sign_password=password, sign_thumbprint=thumbprint,
                         sign_store=values.get(Opt.SIGN_CERT_STORE, CertStore), sign_any_address=values.flag(Opt.SIGN_ANY_ADDRESS),
                         encrypt_to=encrypt_to, encrypt_self=not values.flag(Opt.ENCRYPT_NO_SELF))


def validate(raw: RawOptions) -> Config:
    """Check every option and rule before any network or send work; raise SMailError."""
    values = Values(raw)
    mode = values.require(Opt.MODE, Mode)
    _check_sign_in(values)
    transport = _smtp(values) if mode is Mode.SMTP else _graph(values)
    batch, outbox = _batch(values, mode), _outbox(values)
    if values.flag(Opt.RESEND_UNCERTAIN) and raw.sources.get(Opt.RESEND_UNCERTAIN.name, Source.COMMAND_LINE) \
            is not Source.COMMAND_LINE:
        # Kept in SMAIL_* or the INI file that a scheduled flush reads, it would send the same
        # uncertain messages again at every run: it is a decision for one run.
        raise ParamError(_("/RESEND_UNCERTAIN is only taken from the command line: set in SMAIL_RESEND_UNCERTAIN or in a configuration file, every run reading it would send the uncertain messages again. Remove it there, and give it on the command line of one run once you have checked that they did not arrive."))
    if values.flag(Opt.RESEND_UNCERTAIN) and not (outbox is not None and outbox.flush) \
            and not (batch is not None and batch.resume):
        # An explicit decision about what an earlier run left uncertain: never implied.
        raise ParamError(_("/RESEND_UNCERTAIN needs /FLUSH (the outbox's uncertain folder) or /BATCH_RESUME (the rows marked may-have-been-sent)."))
    if outbox is not None and outbox.flush and batch is not None:
        raise ParamError(_("Give /FLUSH or /BATCH, not both."))
    # /FLUSH sends what the outbox holds; /BATCH validates each row's message itself.
    flush = outbox if outbox is not None and outbox.flush else None
    message = message_settings(values, mode) if batch is None and flush is None else None
    smime = smime_settings(values)
    app = transport.app
    smtp_proxy = transport.proxy if isinstance(transport, SMTPSettings) else _given_proxy(values)
    smtp_proxy = smtp_proxy if isinstance(smtp_proxy, Proxy) else None
    secrets = tuple(s for s in (
        getattr(transport, "password", None), getattr(transport, "token", None),
        smtp_proxy.password if smtp_proxy else None,
        app.secret if app else None, app.cert_password if app else None,
        smime.sign_password if smime else None) if s is not None)
    retry = RetryPolicy(attempts=values.require(Opt.RETRY, int), delay=values.require(Opt.RETRY_DELAY, float))
    output = OutputSettings(dry_run=values.flag(Opt.DRY_RUN), save_eml=values.get(Opt.SAVE_EML, Path))
    warnings = credential_warnings(app)
    if flush is not None:
        return FlushRun(mode=mode, transport=transport, retry=retry, output=output, outbox=flush, smime=smime,
                        secrets=secrets, warnings=warnings)
    if batch is not None:
        return BatchRun(mode=mode, transport=transport, retry=retry, output=output, outbox=outbox, smime=smime,
                        secrets=secrets, warnings=warnings, batch=batch)
    assert message is not None  # neither /FLUSH nor /BATCH: message_settings() gave one or raised
    return SingleRun(mode=mode, transport=transport, retry=retry, output=output, outbox=outbox, smime=smime,
                     secrets=secrets, warnings=warnings, message=message)


def raw_secrets(raw: RawOptions) -> list[str]:
    """Secret option values as given, registered before anything can fail and print them
    (`@wincred:NAME` names a secret and is not one: the secret it reads is registered then)."""
    values = [value for option in OPTIONS if option.secret
              for value in [raw.get(option)] if value and not is_credential_reference(value)]
    # A proxy's password may stand in its URL, in /PROXY or in the environment's variables.
    urls = [raw.get(Opt.PROXY) or "", *raw.proxy_environment.values()]
    return values + [password for url in urls for password in [proxy.password_in(url)] if password]

