"""RawOptions -> Config (frozen): converted values with the table's defaults, then the rules
that involve several options and the checks each mode needs before anything is sent."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from smail import cloud, files, proxy
from smail.addresses import parse_header
from smail.cloud import AppCredentials, CertStore, Cloud, SignIn
from smail.converters import is_credential_reference, path_of
from smail.errors import ParamError, SMailError
from smail.eventlog import EventLogLevel
from smail.i18n import _
from smail.kinds import Mode, Priority, RunKind
from smail.log import LogLevel, LogSettings
from smail.network import IPFamily
from smail.options import BY_NAME, OPTIONS, Option, RawOptions, Source, convert
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
class Config:
    mode: Mode
    kind: RunKind
    message: MessageSettings | None  # None for /FLUSH, which sends what the outbox holds
    transport: SMTPSettings | GraphSettings
    retry: RetryPolicy
    output: OutputSettings
    batch: BatchSettings | None = None
    outbox: OutboxSettings | None = None
    smime: SMIMESettings | None = None  # /SIGN_CERT, /ENCRYPT_TO
    secrets: tuple[Secret, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # said on stderr and in the log before anything is sent


class Values:
    """Converted option values, each converted once, with the table's defaults."""

    def __init__(self, raw: RawOptions, options: tuple[Option, ...] = OPTIONS) -> None:
        self.raw = raw
        self.converted: dict[str, object] = {}
        if raw.given("MODE"):  # an invalid mode is exit 9 whatever else is wrong
            self.converted["MODE"] = convert(BY_NAME["MODE"], raw.get("MODE") or "")
        for option in options:
            if option.name in self.converted or not raw.given(option.name):
                continue
            if option.repeat:
                items: list[object] = []
                for item in raw.get_list(option.name):
                    value = convert(option, item)
                    items.extend(value if isinstance(value, tuple) else (value,))
                self.converted[option.name] = tuple(items)
            else:
                self.converted[option.name] = convert(option, raw.get(option.name) or "")

    def get(self, name: str, kind: type[T]) -> T | None:
        """The converted value of `name`, else the table's default (converters fix its type)."""
        value = self.converted.get(name, BY_NAME[name].default)
        return value if isinstance(value, kind) else None

    def require(self, name: str, kind: type[T]) -> T:
        """A value the table gives a default for."""
        value = self.get(name, kind)
        assert value is not None, name
        return value

    def items(self, name: str, kind: type[T]) -> tuple[T, ...]:
        value = self.converted.get(name)
        return tuple(v for v in value if isinstance(v, kind)) if isinstance(value, tuple) else ()

    def text(self, name: str) -> str | None:
        value = self.converted.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def flag(self, name: str) -> bool:
        return bool(self.get(name, bool))

    def secret(self, name: str) -> Secret | None:
        """A secret given directly or through its *_FILE option, not both."""
        direct = self.get(name, Secret)
        direct = direct if direct is not None and direct.reveal().strip() else None
        for option in OPTIONS:
            if option.secret_file_of == name and option.name in self.converted:
                if direct is not None:
                    raise ParamError(_("Give /{name} or /{file_name}, not both.").format(
                        name=name, file_name=option.name))
                return self.get(option.name, Secret)
        return direct


def _required(name: str, mode: Mode) -> ParamError:
    return ParamError(_("Option /{name} is required in {mode} mode.").format(name=name, mode=mode.value))


def _require(values: Values, mode: Mode) -> None:
    """Every option the OPTIONS table marks as required in `mode`, in table order."""
    for option in OPTIONS:
        if mode in option.required_in and values.text(option.name) is None:
            raise _required(option.name, mode)


def _app_credentials(values: Values) -> AppCredentials | None:
    tenant, app_id = values.text("O365_TENANT_ID"), values.text("O365_APP_ID")
    secret = values.secret("O365_SECRET")
    cert = values.get("O365_CERT_FILE", Path)
    thumbprint = values.get("O365_CERT_THUMBPRINT", str)
    sign_in = values.require("O365_AUTH", SignIn)
    if not (tenant or app_id or secret or cert or thumbprint) and sign_in is SignIn.APP:
        return None
    endpoints = cloud.ENDPOINTS[values.require("O365_CLOUD", Cloud)]
    graph_endpoint = values.text("GRAPH_ENDPOINT") or endpoints.graph_root
    return AppCredentials(
        tenant_id=tenant or "", app_id=app_id or "", secret=secret, cert_file=cert,
        cert_password=values.secret("O365_CERT_PASSWORD"), cert_thumbprint=thumbprint,
        cert_store=values.get("O365_CERT_STORE", CertStore), sign_in=sign_in,
        managed_identity=values.get("O365_MANAGED_IDENTITY", str),
        authority_host=values.text("O365_AUTHORITY_HOST") or endpoints.authority_host,
        graph_endpoint=graph_endpoint,
        graph_scope=values.text("GRAPH_SCOPE") or cloud.graph_scope(
            values.require("O365_CLOUD", Cloud), values.text("GRAPH_ENDPOINT")),
        smtp_scope=endpoints.smtp_scope)


def _check_sign_in(values: Values) -> None:
    """The options of one way of signing in only, each with what it needs (exit 2)."""
    managed = values.require("O365_AUTH", SignIn) is SignIn.MANAGED_IDENTITY
    if values.get("O365_MANAGED_IDENTITY", str) is not None and not managed:
        raise ParamError(_("/O365_MANAGED_IDENTITY needs /O365_AUTH=MANAGED_IDENTITY."))
    if managed:
        for name in ("O365_SECRET", "O365_SECRET_FILE", "O365_CERT_FILE", "O365_CERT_THUMBPRINT"):
            if name in values.converted:
                raise ParamError(_("/O365_AUTH=MANAGED_IDENTITY signs in with this machine's identity: /{name} cannot be given with it.").format(
                    name=name))
    if values.get("O365_CERT_STORE", CertStore) is not None and values.get("O365_CERT_THUMBPRINT", str) is None:
        raise ParamError(_("/O365_CERT_STORE needs /O365_CERT_THUMBPRINT."))
    if values.get("O365_CERT_THUMBPRINT", str) is not None and sys.platform != "win32":
        raise ParamError(_("/O365_CERT_THUMBPRINT and /O365_CERT_STORE use the Windows certificate store, which exists only on Windows: use /O365_CERT_FILE (a .pfx or PEM file) here."))


def _check_app(app: AppCredentials | None, mode: Mode) -> AppCredentials:
    if app is not None and app.sign_in is SignIn.MANAGED_IDENTITY:
        return app  # no tenant, application or secret: the identity endpoint knows the machine
    if app is None or not app.tenant_id:
        raise _required("O365_TENANT_ID", mode)
    if not app.app_id:
        raise _required("O365_APP_ID", mode)
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
    return TLSSettings(min_version=values.get("SSL_VERSION", TLSVersion),
                       ca_file=values.get("CA_FILE", Path), verify=not values.flag("SSL_NO_VERIFY"))


def _given_proxy(values: Values) -> Proxy | ProxyOff | None:
    """/PROXY with /PROXY_PASSWORD (or its file) applied; None when /PROXY is not given."""
    given = values.converted.get("PROXY")
    password = values.secret("PROXY_PASSWORD")
    if isinstance(given, Proxy) and password is not None:
        if given.username is None:
            raise ParamError(_("/PROXY_PASSWORD needs a user name in /PROXY: http://user@host:port or socks5://user@host:port."))
        if given.password is not None:
            raise ParamError(_("Give the proxy password in /PROXY or in /PROXY_PASSWORD, not both."))
        return given.with_password(password)
    return given if isinstance(given, (Proxy, ProxyOff)) else None


def _smtp_proxy(values: Values, server: str, port: int) -> Proxy | None:
    """The proxy for server:port: /PROXY, or HTTPS_PROXY/ALL_PROXY unless NO_PROXY names it."""
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
    password = values.secret("PROXY_PASSWORD")
    if password is not None and found.username is not None and found.password is None:
        found = found.with_password(password)
    return found


def _ip(values: Values, server: str) -> IPFamily:
    """/IP, which an address literal in /SMTP_SERVER must not contradict."""
    import ipaddress

    family = values.require("IP", IPFamily)
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

    server, written = hosts.server_address(values.text("SMTP_SERVER") or "")
    port = values.get("SMTP_PORT", int)
    if written is not None and port is not None and written != port:
        raise ParamError(_("/SMTP_SERVER names the port {written} and /SMTP_PORT the port {port}: give one.").format(
            written=written, port=port))
    return server, port if port is not None else written


def _smtp(values: Values) -> SMTPSettings:
    _require(values, Mode.SMTP)
    server, port = _server(values)
    tls_mode = values.require("SSL_MODE", TLSMode)
    if tls_mode is TLSMode.AUTO:
        if port == 465:
            tls_mode = TLSMode.IMPLICIT
        elif values.get("SSL_VERSION", TLSVersion) is not None:
            tls_mode = TLSMode.STARTTLS
        else:
            tls_mode = TLSMode.NONE
    if tls_mode is TLSMode.NONE and values.get("SSL_VERSION", TLSVersion) is not None:
        raise ParamError(_("/SSL_VERSION asks for TLS but /SSL_MODE=NONE forbids it."))
    if port is None:
        port = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}.get(tls_mode, 25)
    username = values.text("SMTP_USERNAME")
    password = values.secret("SMTP_PASSWORD")
    token = values.get("SMTP_TOKEN_FILE", Secret)
    app = _app_credentials(values)
    auth = values.require("AUTH_TYPE", AuthType)
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
        helo=values.text("HELO"), timeout=values.require("TIMEOUT", float))


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
        app=app, sender=values.text("GRAPH_SENDER") or "",
        save_to_sent=values.flag("SAVE_TO_SENT"), proxy=_graph_proxy(values),
        proxy_from_environment=_given_proxy(values) is not ProxyOff.NONE, tls=_tls(values),
        timeout=values.require("TIMEOUT", float))


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


def given_message(values: Values) -> MessageSettings:
    """The message options as given, converted, with the table's defaults, before the rules
    that involve several of them (settle_message); `from_addr` is empty when not given."""
    return MessageSettings(
        subject=values.get("SUBJECT", str) or "", from_name=values.text("FROM_NAME"),
        from_addr=values.text("FROM_ADDR") or "", to=values.items("TO", str), cc=values.items("CC", str),
        bcc=values.items("BCC", str), reply_to=values.text("REPLY_TO"),
        body_file=values.get("BODY_FILE", Path), body_text=values.get("BODY", str),
        body_charset=values.text("BODY_CHARSET"), attachments=values.items("ATTACH", Path),
        inline=values.items("INLINE", Path), priority=values.get("PRIORITY", Priority),
        read_ack=values.flag("READ_ACK"), reception_ack=values.flag("RECEPTION_ACK"),
        headers=values.items("HEADER", str))


def default_sender(values: Values, mode: Mode) -> str | None:
    """What /FROM_ADDR defaults to: the mode's account, when it is an address."""
    return values.text("SMTP_USERNAME") if mode is Mode.SMTP else values.text("GRAPH_SENDER")


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
        raise ParamError(_("At least one recipient is required: /TO, /CC or /BCC."))
    if given.body_file is not None and given.body_text is not None:
        raise ParamError(_("Give /BODY_FILE or /BODY, not both."))
    if given.body_file is None and given.body_text is None:
        raise ParamError(_("A body is required: /BODY_FILE=path or /BODY=\"text\"."))
    if given.inline and not is_html(given.body_file):
        raise ParamError(_("/INLINE needs an HTML body (/BODY_FILE ending in .htm or .html)."))
    if mode is Mode.GRAPH:
        check_graph_headers(given.headers)
    return replace(given, from_addr=from_addr)


def message_settings(values: Values, mode: Mode) -> MessageSettings:
    """The message options, with the rules that involve several of them."""
    return settle_message(given_message(values), mode, default_sender=default_sender(values, mode))


def reporting(raw: RawOptions) -> Reporting:
    """Reporting settings from tolerantly parsed options: a bad value falls back to the default."""
    def tolerant(name: str, kind: type[T]) -> T:
        try:
            value = convert(BY_NAME[name], raw.get(name) or "") if raw.given(name) else None
        except SMailError:
            value = None
        if not isinstance(value, kind):
            value = BY_NAME[name].default
        assert isinstance(value, kind)
        return value
    return Reporting(log=LogSettings(path=path_of(raw.get("LOG")), level=tolerant("LOG_LEVEL", LogLevel)),
                     error_file=path_of(raw.get("ERROR_FILE")),
                     error_file_on_success=tolerant("ERROR_FILE_ON_SUCCESS", ErrorFileOnSuccess),
                     error_file_encoding=tolerant("ERROR_FILE_CHARSET", str),
                     quiet=raw.flag("QUIET"), result_file=path_of(raw.get("RESULT_FILE")),
                     event_log=tolerant("EVENT_LOG", EventLogLevel))


def _batch(values: Values, mode: Mode) -> BatchSettings | None:
    rows = values.get("BATCH", Path)
    results = values.get("BATCH_RESULT", Path)
    if rows is None:
        for name in ("BATCH_RESULT", "BATCH_RESUME"):
            if name in values.converted:
                raise ParamError(_("/{name} needs /BATCH.").format(name=name))
        return None
    if values.flag("BATCH_RESUME") and results is None:
        raise ParamError(_("/BATCH_RESUME needs /BATCH_RESULT: the file that tells which rows were sent."))
    written = (path_of(values.raw.get(name)) for name in ("RESULT_FILE", "LOG", "ERROR_FILE"))
    return BatchSettings(rows=rows, results=results, resume=values.flag("BATCH_RESUME"),
                         resend_uncertain=values.flag("RESEND_UNCERTAIN"), per_second=values.get("RATE", float),
                         message=given_message(values), default_sender=default_sender(values, mode), receipts=values.raw.given("RESULT_FILE"),
                         outputs=tuple(path for path in written if path is not None))


def _outbox(values: Values) -> OutboxSettings | None:
    folder = values.get("OUTBOX", Path)
    if folder is None:
        if values.flag("FLUSH"):
            raise ParamError(_("/FLUSH needs /OUTBOX: the folder of the messages to send."))
        return None
    if files.exists(folder) and not files.is_dir(folder):
        raise ParamError(_("/OUTBOX={path} is not a folder.").format(path=folder))
    return OutboxSettings(folder=folder, flush=values.flag("FLUSH"),
                          resend_uncertain=values.flag("RESEND_UNCERTAIN") and values.flag("FLUSH"),
                          max_age=values.require("OUTBOX_MAX_AGE", float), per_second=values.get("RATE", float))


def smime_settings(values: Values) -> SMIMESettings | None:
    """/SIGN_CERT and /ENCRYPT_TO with their companions; None when neither is given."""
    sign_cert = values.get("SIGN_CERT", Path)
    password = values.secret("SIGN_CERT_PASSWORD")
    thumbprint = values.get("SIGN_CERT_THUMBPRINT", str)
    encrypt_to = values.items("ENCRYPT_TO", Path)
    if sign_cert is not None and thumbprint is not None:
        raise ParamError(_("Give /SIGN_CERT or /SIGN_CERT_THUMBPRINT, not both."))
    if thumbprint is None and "SIGN_CERT_STORE" in values.converted:
        raise ParamError(_("/SIGN_CERT_STORE needs /SIGN_CERT_THUMBPRINT."))
    if thumbprint is not None and sys.platform != "win32":
        raise ParamError(_("/SIGN_CERT_THUMBPRINT and /SIGN_CERT_STORE use the Windows certificate store, which exists only on Windows: use /SIGN_CERT (a .pfx or PEM file) here."))
    if sign_cert is None:
        for name in ("SIGN_CERT_PASSWORD", "SIGN_CERT_PASSWORD_FILE"):
            if name in values.converted:
                raise ParamError(_("/{name} needs /SIGN_CERT.").format(name=name))
    if sign_cert is None and thumbprint is None and "SIGN_ANY_ADDRESS" in values.converted:
        raise ParamError(_("/{name} needs /SIGN_CERT.").format(name="SIGN_ANY_ADDRESS"))
    if not encrypt_to and "ENCRYPT_NO_SELF" in values.converted and values.get("BATCH", Path) is None:
        raise ParamError(_("/{name} needs /ENCRYPT_TO.").format(name="ENCRYPT_NO_SELF"))
    if sign_cert is None and thumbprint is None and not encrypt_to and not values.flag("ENCRYPT_NO_SELF"):
        return None
    return SMIMESettings(sign_cert=sign_cert, sign_password=password, sign_thumbprint=thumbprint,
                         sign_store=values.get("SIGN_CERT_STORE", CertStore), sign_any_address=values.flag("SIGN_ANY_ADDRESS"),
                         encrypt_to=encrypt_to, encrypt_self=not values.flag("ENCRYPT_NO_SELF"))


def validate(raw: RawOptions) -> Config:
    """Check every option and rule before any network or send work; raise SMailError."""
    values = Values(raw)
    mode = values.require("MODE", Mode)
    _check_sign_in(values)
    transport = _smtp(values) if mode is Mode.SMTP else _graph(values)
    batch, outbox = _batch(values, mode), _outbox(values)
    if values.flag("RESEND_UNCERTAIN") and raw.sources.get("RESEND_UNCERTAIN", Source.COMMAND_LINE) \
            is not Source.COMMAND_LINE:
        # Kept in SMAIL_* or the INI file that a scheduled flush reads, it would send the same
        # uncertain messages again at every run: it is a decision for one run.
        raise ParamError(_("/RESEND_UNCERTAIN is only taken from the command line: set in SMAIL_RESEND_UNCERTAIN or in a configuration file, every run reading it would send the uncertain messages again. Remove it there, and give it on the command line of one run once you have checked that they did not arrive."))
    if values.flag("RESEND_UNCERTAIN") and not (outbox is not None and outbox.flush) \
            and not (batch is not None and batch.resume):
        # An explicit decision about what an earlier run left uncertain: never implied.
        raise ParamError(_("/RESEND_UNCERTAIN needs /FLUSH (the outbox's uncertain folder) or /BATCH_RESUME (the rows marked may-have-been-sent)."))
    if outbox is not None and outbox.flush and batch is not None:
        raise ParamError(_("Give /FLUSH or /BATCH, not both."))
    # /FLUSH sends what the outbox holds; /BATCH validates each row's message itself.
    kind = RunKind.FLUSH if outbox is not None and outbox.flush else RunKind.BATCH if batch is not None \
        else RunKind.SINGLE
    message = message_settings(values, mode) if kind is RunKind.SINGLE else None
    smime = smime_settings(values)
    app = transport.app
    smtp_proxy = transport.proxy if isinstance(transport, SMTPSettings) else _given_proxy(values)
    smtp_proxy = smtp_proxy if isinstance(smtp_proxy, Proxy) else None
    secrets = tuple(s for s in (
        getattr(transport, "password", None), getattr(transport, "token", None),
        smtp_proxy.password if smtp_proxy else None,
        app.secret if app else None, app.cert_password if app else None,
        smime.sign_password if smime else None) if s is not None)
    return Config(
        mode=mode, kind=kind, message=message, transport=transport,
        retry=RetryPolicy(attempts=values.require("RETRY", int), delay=values.require("RETRY_DELAY", float)),
        output=OutputSettings(dry_run=values.flag("DRY_RUN"), save_eml=values.get("SAVE_EML", Path)),
        batch=batch, outbox=outbox, smime=smime, secrets=secrets, warnings=credential_warnings(app))


def raw_secrets(raw: RawOptions) -> list[str]:
    """Secret option values as given, registered before anything can fail and print them
    (`@wincred:NAME` names a secret and is not one: the secret it reads is registered then)."""
    values = [value for option in OPTIONS if option.secret
              for value in [raw.get(option.name)] if value and not is_credential_reference(value)]
    # A proxy's password may stand in its URL, in /PROXY or in the environment's variables.
    urls = [raw.get("PROXY") or "", *raw.proxy_environment.values()]
    return values + [password for url in urls for password in [proxy.password_in(url)] if password]

