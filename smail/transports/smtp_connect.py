"""Opening an SMTP connection: TCP to every address of the server (or a tunnel through the
proxy), the greeting, EHLO, then STARTTLS or implicit TLS; every failure as the SMailError
SPEC.md gives it (exit 3)."""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from smail import hosts, network, proxy
from smail.errors import ConnectError, SMailError, SMTPReply, TLSError
from smail.i18n import _
from smail.settings import SMTPSettings
from smail.tls import TLSMode
from smail.transports import smtp_replies
from smail.transports.smtp_client import Opener, close_quietly, ehlo_name, local_address, new_client, text_of
from smail.transports.smtp_replies import READY, reply_error

log = logging.getLogger("smail")


@dataclass
class Connection:
    """One open connection to the server, and what SMail learnt of it."""

    client: smtplib.SMTP
    tls_version: str | None = None
    cipher: str | None = None
    delivered: int = 0    # messages accepted on this connection
    used: bool = False    # a transaction was started: RSET before the next one
    closed: bool = False  # closed during a transaction: the session forgets it

    def close(self) -> None:
        self.closed = True
        close_quietly(self.client)


def where(settings: SMTPSettings) -> str:
    return hosts.with_port(settings.server, settings.port)


def network_error(exc: BaseException, settings: SMTPSettings) -> SMailError:
    """The SMail error for a connection failure; a bug is raised as it is."""
    error = smtp_replies.network_error(exc, where=where(settings), server=settings.server,
                                       timeout=settings.timeout)
    if error is None:
        raise exc
    return error


def connect(settings: SMTPSettings, tls_context: Callable[[], ssl.SSLContext]) -> Connection:
    """A connection that has said EHLO (again after STARTTLS); `tls_context` is asked for only
    when TLS is used."""
    s = settings
    if s.proxy is not None:
        log.info(_("Connecting to {where} through the proxy {proxy} (TLS mode: {mode}).").format(
            where=where(s), proxy=s.proxy, mode=s.tls_mode.value))
    else:
        log.info(_("Connecting to {where} (TLS mode: {mode}).").format(where=where(s), mode=s.tls_mode.value))
    client: smtplib.SMTP
    try:
        client = new_client(s.server, timeout=s.timeout,
                            context=tls_context() if s.tls_mode is TLSMode.IMPLICIT else None,
                            opener=_opener(s))
        code, greeting = client.connect(s.server, s.port)
        if code != READY:  # smtplib checks the greeting only when its constructor connects
            close_quietly(client)
            reply = SMTPReply(code, text_of(greeting), "CONNECT")
            raise ConnectError(_("{where} refused the session: {reply}").format(
                where=where(s), reply=reply), reply=reply)
    except SMailError:
        raise
    except Exception as exc:
        raise network_error(exc, s) from exc
    connection = Connection(client)
    try:
        client.local_hostname = s.helo or ehlo_name(local_address(client))
        _hello(client)
        if s.tls_mode is TLSMode.STARTTLS:
            if not client.has_extn("starttls"):
                raise TLSError(_("{where} does not offer STARTTLS, and TLS was asked for: nothing was sent in clear text.").format(
                    where=where(s)))
            client.starttls(context=tls_context())
            # RFC 3207 section 4.2: forget what was learnt before TLS and say EHLO again.
            _hello(client)
        sock = client.sock
        if isinstance(sock, ssl.SSLSocket):
            connection.tls_version, cipher = sock.version(), sock.cipher()
            connection.cipher = cipher[0] if cipher else None
            log.info(_("TLS established with {where}: {version}, {cipher}.").format(
                where=where(s), version=connection.tls_version, cipher=connection.cipher))
    except SMailError:
        close_quietly(client)
        raise
    except smtplib.SMTPResponseException as exc:
        close_quietly(client)
        raise TLSError(_("{where} refused STARTTLS: {reply}").format(
            where=where(s), reply=f"{exc.smtp_code} {text_of(exc.smtp_error)}"),
            reply=SMTPReply(exc.smtp_code, text_of(exc.smtp_error), "STARTTLS")) from exc
    except Exception as exc:
        close_quietly(client)
        raise network_error(exc, s) from exc
    return connection


def _opener(settings: SMTPSettings) -> Opener:
    """TCP to the server (each address in turn, /IP), or a tunnel through the proxy."""
    family, via = settings.ip, settings.proxy

    def direct(host: str, port: int, timeout: float) -> socket.socket:
        return network.connect(host, port, timeout, family=family)
    if via is None:
        return direct

    def tunnel(host: str, port: int, timeout: float) -> socket.socket:
        return proxy.open_tunnel(via, host, port, timeout=timeout, connect=direct)
    return tunnel


def _hello(client: smtplib.SMTP) -> None:
    code, reply = client.ehlo()
    if not 200 <= code < 300:
        code, reply = client.helo()
        if not 200 <= code < 300:
            raise reply_error(SMTPReply(code, text_of(reply), "EHLO"))
