"""The transport's settings: how SMail signs in (an application, a certificate, the machine's
identity), the SMTP server with its TLS, proxy and authentication, or Microsoft Graph."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

from smail import cloud, proxy
from smail.addresses import parse_header
from smail.cloud import AppCredentials, CertStore, Cloud, SignIn
from smail.config.values import Values, require_all, required
from smail.errors import ParamError
from smail.i18n import _
from smail.kinds import Mode
from smail.network import IPFamily
from smail.options import Opt
from smail.proxy import Proxy, ProxyOff
from smail.redact import Secret
from smail.sasl import AuthType
from smail.settings import GraphSettings, SMTPSettings
from smail.tls import TLSMode, TLSSettings, TLSVersion

# Graph's internetMessageHeaders: only X- names, at most 5 (Microsoft's page "message resource
# type"), refused by Graph otherwise; checked here so that /DRY_RUN refuses them too.
GRAPH_MAX_HEADERS = 5


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


def check_sign_in(values: Values) -> None:
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
        raise required(Opt.O365_TENANT_ID, mode)
    if not app.app_id:
        raise required(Opt.O365_APP_ID, mode)
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


def given_proxy(values: Values) -> Proxy | ProxyOff | None:
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
    given = given_proxy(values)
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


def check_https_proxy_of_environment(values: Values, urls: tuple[str, ...]) -> None:
    """The proxy requests takes from HTTPS_PROXY or ALL_PROXY for these https:// addresses (the
    identity platform, Graph), checked before anything is sent: one requests cannot use (a
    malformed URL, a SOCKS5 proxy) made the sign-in fail as if the tenant did not exist (exit 4)."""
    given = given_proxy(values)
    if given is ProxyOff.NONE or (isinstance(given, Proxy) and given.kind is proxy.ProxyKind.HTTP):
        return  # /PROXY=NONE, or /PROXY=http://...: requests does not read the environment's
    for address in urls:
        parts = urlsplit(address)
        url = proxy.from_environment(values.raw.proxy_environment, parts.hostname or "", parts.port or 443)
        if url is None:
            continue
        text = url.strip()
        if text[:8].lower() == "https://":  # a proxy reached over TLS: requests speaks to it
            text = "http://" + text[8:]
        try:
            found = proxy.parse(text)
        except ValueError as exc:
            raise ParamError(_("The proxy of the environment (HTTPS_PROXY or ALL_PROXY) cannot serve the HTTPS requests to {where}: {reason}. Use /PROXY=NONE to connect directly.").format(
                where=parts.netloc, reason=exc)) from None
        if found.kind is not proxy.ProxyKind.HTTP:
            raise ParamError(_("The proxy of the environment (HTTPS_PROXY or ALL_PROXY) is a SOCKS5 proxy, which cannot carry the HTTPS requests to {where}: give /PROXY=http://host:port, name {host} in NO_PROXY, or use /PROXY=NONE to connect directly.").format(
                where=parts.netloc, host=parts.hostname))


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


def smtp_settings(values: Values) -> SMTPSettings:
    require_all(values, Mode.SMTP)
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
            if app.sign_in is not SignIn.MANAGED_IDENTITY:  # the token is asked for over HTTPS
                check_https_proxy_of_environment(values, (app.authority_host,))
    return SMTPSettings(
        server=server, port=port, proxy=_smtp_proxy(values, server, port), ip=_ip(values, server),
        proxy_from_environment=given_proxy(values) is not ProxyOff.NONE, tls_mode=tls_mode, tls=_tls(values), auth=auth,
        username=username, password=password, token=token,
        app=app if auth is AuthType.XOAUTH2 and token is None else None,
        helo=values.text(Opt.HELO), timeout=values.require(Opt.TIMEOUT, float))


def _graph_proxy(values: Values) -> str | None:
    """/PROXY for requests; without it requests reads HTTPS_PROXY/NO_PROXY itself."""
    given = given_proxy(values)
    if not isinstance(given, Proxy):
        return None
    if given.kind is not proxy.ProxyKind.HTTP:
        raise ParamError(_("In Graph mode /PROXY must be an HTTP proxy (http://host:port); SOCKS5 serves SMTP only."))
    return given.url()


def graph_settings(values: Values) -> GraphSettings:
    require_all(values, Mode.GRAPH)
    app = _check_app(_app_credentials(values), Mode.GRAPH)
    graph_proxy = _graph_proxy(values)
    # A managed identity's endpoint is never reached through a proxy; Graph is.
    check_https_proxy_of_environment(values, (app.graph_endpoint,) if app.sign_in is SignIn.MANAGED_IDENTITY
                                     else (app.authority_host, app.graph_endpoint))
    return GraphSettings(
        app=app, sender=values.text(Opt.GRAPH_SENDER) or "",
        save_to_sent=values.flag(Opt.SAVE_TO_SENT), proxy=graph_proxy,
        proxy_from_environment=given_proxy(values) is not ProxyOff.NONE, tls=_tls(values),
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
