"""SMTPSession: one connection (STARTTLS or implicit TLS, AUTH) that sends many messages.

smtplib connects, says EHLO and starts TLS; SMail sends the transaction itself (pipelined
when the server offers PIPELINING, RFC 2920) and streams DATA. Every smtplib / ssl / socket
failure becomes an SMailError here, with the exit code SPEC.md gives it.

Never twice: once the final dot is out, a timeout or a lost connection is MaybeSentError.
Before it, the server has accepted nothing, so a reused connection that turns out to be
dead (or full: a 4xx to MAIL after some messages) is reopened and the message sent again.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from smail import hosts, network, proxy, redact, sasl, tls
from smail.errors import (
    AuthError,
    ConnectError,
    InterruptedAfterCommitError,
    MaybeSentError,
    RecipientsRefusedError,
    SendError,
    SMailError,
    SMTPReply,
    TLSError,
    reason,
)
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered, dot_stuff
from smail.receipt import Receipt, Status
from smail.redact import Secret
from smail.sasl import AuthType
from smail.settings import SMTPSettings
from smail.tls import TLSMode
from smail.transports import Commit, smtp_replies
from smail.transports.exchange import explain
from smail.transports.smtp_client import (
    Opener,
    close_quietly,
    coalesce,
    ehlo_name,
    is_loopback,
    local_address,
    new_client,
    read_reply,
    sasl_exchange,
    text_of,
    transcript,
)
from smail.transports.smtp_replies import (
    AUTH_REFUSED,
    OK,
    READY,
    SERVICE_CLOSING,
    START_MAIL_INPUT,
    WILL_FORWARD,
    dropped,
    reply_error,
)

log = logging.getLogger("smail")

WRITE_SIZE: Final = 256 * 1024
_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9._-]+)", re.IGNORECASE)


class _StaleConnection(Exception):
    """A reused connection failed before the message was committed: reconnect and resend."""

    def __init__(self, error: SMailError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _Connection:
    client: smtplib.SMTP
    tls_version: str | None = None
    cipher: str | None = None
    delivered: int = 0  # messages accepted on this connection
    used: bool = False  # a transaction was started: RSET before the next one


class SMTPSession:
    """Delivers rendered messages to one SMTP server over one connection, reopened when needed."""

    def __init__(self, settings: SMTPSettings, *,
                 token_source: Callable[[], Secret] | None = None) -> None:
        self.settings = settings
        self.token_source = token_source
        self._context: ssl.SSLContext | None = None
        self._connection: _Connection | None = None
        self._token: Secret | None = settings.token

    @classmethod
    def from_settings(cls, settings: SMTPSettings) -> SMTPSession:
        """A session whose XOAUTH2 token, when the application obtains it, is asked for on first use."""
        token_source = None
        if settings.auth is AuthType.XOAUTH2 and settings.token is None and settings.app:
            app = settings.app

            def token_source() -> Secret:
                from smail import auth  # msal and requests only on this path
                # The token request goes through the same proxy when it is an HTTP one.
                http_proxy = settings.proxy.url() if settings.proxy is not None \
                    and settings.proxy.kind is proxy.ProxyKind.HTTP else None
                return auth.client_token(app, app.smtp_scope, tls_settings=settings.tls,
                                         timeout=settings.timeout, proxy=http_proxy,
                                         proxy_from_environment=settings.proxy_from_environment)
        return cls(settings, token_source=token_source)

    @property
    def where(self) -> str:
        return hosts.with_port(self.settings.server, self.settings.port)

    # -- the session ---------------------------------------------------------------------------

    def send(self, message: Message, rendered: Rendered, *, on_commit: Commit | None = None) -> Receipt:
        """Send one message; reuse the open connection, or reopen it if it went stale."""
        if self._connection is not None:
            try:
                return self._transaction(self._connection, message, rendered, on_commit)
            except _StaleConnection as stale:
                log.info(_("The connection to {where} can no longer be used ({error}): reconnecting.").format(
                    where=self.where, error=stale.error.message))
                self._drop()
        connection = self._open()
        try:
            return self._transaction(connection, message, rendered, on_commit)
        except _StaleConnection as stale:  # only raised on a reused connection
            self._drop()
            raise stale.error from None

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.client.quit()
        except (smtplib.SMTPException, OSError):
            close_quietly(connection.client)

    def _drop(self) -> None:
        if self._connection is not None:
            close_quietly(self._connection.client)
        self._connection = None

    def _open(self) -> _Connection:
        connection = self._connect()
        try:
            self._authenticate(connection)
        except BaseException:
            close_quietly(connection.client)
            raise
        self._connection = connection
        return connection

    # -- connection ----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = tls.create_context(self.settings.tls)
        return self._context

    def _connect(self) -> _Connection:
        s = self.settings
        if s.proxy is not None:
            log.info(_("Connecting to {where} through the proxy {proxy} (TLS mode: {mode}).").format(
                where=self.where, proxy=s.proxy, mode=s.tls_mode.value))
        else:
            log.info(_("Connecting to {where} (TLS mode: {mode}).").format(where=self.where, mode=s.tls_mode.value))
        client: smtplib.SMTP
        try:
            client = new_client(s.server, timeout=s.timeout,
                                context=self._tls_context() if s.tls_mode is TLSMode.IMPLICIT else None,
                                opener=self._opener())
            code, greeting = client.connect(s.server, s.port)
            if code != READY:  # smtplib checks the greeting only when its constructor connects
                close_quietly(client)
                reply = SMTPReply(code, text_of(greeting), "CONNECT")
                raise ConnectError(_("{where} refused the session: {reply}").format(
                    where=self.where, reply=reply), reply=reply)
        except SMailError:
            raise
        except Exception as exc:
            raise self._network_error(exc) from exc
        connection = _Connection(client)
        try:
            client.local_hostname = s.helo or ehlo_name(local_address(client))
            self._hello(client)
            if s.tls_mode is TLSMode.STARTTLS:
                if not client.has_extn("starttls"):
                    raise TLSError(_("{where} does not offer STARTTLS, and TLS was asked for: nothing was sent in clear text.").format(
                        where=self.where))
                client.starttls(context=self._tls_context())
                # RFC 3207 section 4.2: forget what was learnt before TLS and say EHLO again.
                self._hello(client)
            sock = client.sock
            if isinstance(sock, ssl.SSLSocket):
                connection.tls_version, cipher = sock.version(), sock.cipher()
                connection.cipher = cipher[0] if cipher else None
                log.info(_("TLS established with {where}: {version}, {cipher}.").format(
                    where=self.where, version=connection.tls_version, cipher=connection.cipher))
        except SMailError:
            close_quietly(client)
            raise
        except smtplib.SMTPResponseException as exc:
            close_quietly(client)
            raise TLSError(_("{where} refused STARTTLS: {reply}").format(
                where=self.where, reply=f"{exc.smtp_code} {text_of(exc.smtp_error)}"),
                reply=SMTPReply(exc.smtp_code, text_of(exc.smtp_error), "STARTTLS")) from exc
        except Exception as exc:
            close_quietly(client)
            raise self._network_error(exc) from exc
        return connection

    def _opener(self) -> Opener:
        """TCP to the server (each address in turn, /IP), or a tunnel through the proxy."""
        family, via = self.settings.ip, self.settings.proxy

        def direct(host: str, port: int, timeout: float) -> socket.socket:
            return network.connect(host, port, timeout, family=family)
        if via is None:
            return direct

        def tunnel(host: str, port: int, timeout: float) -> socket.socket:
            return proxy.open_tunnel(via, host, port, timeout=timeout, connect=direct)
        return tunnel

    def _hello(self, client: smtplib.SMTP) -> None:
        code, reply = client.ehlo()
        if not 200 <= code < 300:
            code, reply = client.helo()
            if not 200 <= code < 300:
                raise reply_error(SMTPReply(code, text_of(reply), "EHLO"))

    def _network_error(self, exc: BaseException) -> SMailError:
        """The SMail error for a connection failure; a bug is raised as it is."""
        error = smtp_replies.network_error(exc, where=self.where, server=self.settings.server,
                                           timeout=self.settings.timeout)
        if error is None:
            raise exc
        return error

    # -- authentication ------------------------------------------------------------------------

    def _authenticate(self, connection: _Connection) -> None:
        s = self.settings
        if s.auth is AuthType.NONE:
            return
        client = connection.client
        if not client.has_extn("auth"):
            if connection.tls_version:
                raise AuthError(_("{where} does not offer authentication (AUTH).").format(where=self.where))
            raise AuthError(_("{where} does not offer authentication (AUTH) without TLS; many servers offer it only over TLS: try /SSL_VERSION=TLSV1_2.").format(
                where=self.where))
        offered = client.esmtp_features["auth"].upper().split()
        user = s.username or ""
        reasons: list[str] = []
        if s.auth is AuthType.XOAUTH2:
            mechanism = "XOAUTH2"
            if mechanism not in offered:
                raise AuthError(_("{where} does not offer XOAUTH2; it offers: {offered}.").format(
                    where=self.where, offered=" ".join(offered) or "-"))
            responder = sasl.xoauth2_responder(user, self._xoauth2_token().reveal(), reasons)
        else:
            mechanism = next((m for m in sasl.PASSWORD_MECHANISMS if m in offered), "")
            if not mechanism:
                raise AuthError(_("{where} offers none of CRAM-MD5, PLAIN, LOGIN; it offers: {offered}.").format(
                    where=self.where, offered=" ".join(offered) or "-"))
            responder = sasl.password_responder(mechanism, user, s.password.reveal() if s.password else "")
        if connection.tls_version is None and (self.settings.proxy is not None or not is_loopback(client)):
            log.warning(_("Authenticating without TLS: the credentials cross the network unencrypted."))
        try:
            sasl_exchange(client, mechanism, responder)
        except smtplib.SMTPAuthenticationError as exc:
            reply = SMTPReply(exc.smtp_code, text_of(exc.smtp_error), "AUTH")
            if reasons:
                text = _("{where} refused the authentication of {user} with {mechanism}: {reply} (reason given by the server: {reason})").format(
                    where=self.where, user=s.username, mechanism=mechanism, reply=reply, reason=reasons[-1])
            else:
                text = _("{where} refused the authentication of {user} with {mechanism}: {reply}").format(
                    where=self.where, user=s.username, mechanism=mechanism, reply=reply)
            raise AuthError(explain(text, reply, mechanism=mechanism), reply=reply) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise self._network_error(exc) from exc
        log.info(_("Authenticated as {user} with {mechanism}.").format(user=s.username, mechanism=mechanism))

    def _xoauth2_token(self) -> Secret:
        if self._token is None:
            if self.token_source is None:
                raise AuthError(_("No OAuth2 token is available for XOAUTH2."))
            self._token = self.token_source()
            redact.remember(self._token)
        return self._token

    # -- transaction ---------------------------------------------------------------------------

    def _transaction(self, connection: _Connection, message: Message, rendered: Rendered,
                     on_commit: Commit | None) -> Receipt:
        """MAIL, RCPT, DATA; a failure other than a complete refusal closes the connection."""
        reused = connection.delivered > 0
        try:
            accepted = self._envelope(connection, message, rendered, reused)
            reply = self._data(connection, rendered, on_commit)
        except _StaleConnection:
            raise
        except ConnectError as err:  # dropped before the final dot: nothing was accepted
            self._drop()
            if reused:
                raise _StaleConnection(err) from err
            raise dropped(err, err.__cause__) from err
        except SMailError as err:
            # After a refusal the server is in a known state: keep the line, unless the reply
            # was 421, which closes it (RFC 5321 section 3.8).
            if not isinstance(err, SendError) or isinstance(err, MaybeSentError) or err.reply is None \
                    or err.reply.code == SERVICE_CLOSING:
                self._drop()
            raise
        except (smtplib.SMTPException, OSError) as exc:  # smtplib's errors derive from OSError
            self._drop()
            error = self._network_error(exc)
            if reused:
                raise _StaleConnection(error) from exc
            raise dropped(error, exc) from exc
        except BaseException:
            self._drop()
            raise
        connection.delivered += 1
        log.info(_("{where} accepted the message: {reply}").format(where=self.where, reply=reply))
        return self._receipt(connection, message, accepted, reply)

    def _commands(self, client: smtplib.SMTP, commands: list[tuple[str, bytes]]) -> list[SMTPReply]:
        """Send commands and read their replies; all at once when the server pipelines."""
        if client.has_extn("pipelining"):
            client.send(b"".join(line + b"\r\n" for _verb, line in commands))
            return [SMTPReply(*read_reply(client), verb) for verb, _line in commands]
        replies = []
        for verb, line in commands:
            client.send(line + b"\r\n")
            replies.append(SMTPReply(*read_reply(client), verb))
        return replies

    def _mail_options(self, client: smtplib.SMTP, message: Message, rendered: Rendered) -> tuple[str, str]:
        mail_options: list[str] = []
        rcpt_options: list[str] = []
        if client.has_extn("size"):
            limit = client.esmtp_features.get("size", "").strip()
            if limit.isdigit() and 0 < int(limit) < rendered.size:
                raise SendError(_("The message is {size} bytes but {where} accepts at most {limit} bytes.").format(
                    size=rendered.size, where=self.where, limit=limit))
            mail_options.append(f"SIZE={rendered.size}")
        if message.needs_smtputf8:
            if not client.has_extn("smtputf8"):
                raise SendError(_("An address contains non-ASCII characters before the @, which needs SMTPUTF8, and {where} does not offer it.").format(
                    where=self.where))
            mail_options.append("SMTPUTF8")
            if client.has_extn("8bitmime"):
                mail_options.append("BODY=8BITMIME")
        if message.reception_ack:
            if client.has_extn("dsn"):
                mail_options.append("RET=HDRS")
                rcpt_options.append("NOTIFY=SUCCESS,FAILURE")
            else:
                log.info(_("{where} does not offer DSN: no delivery receipt can be requested from it (Return-Receipt-To is still set).").format(
                    where=self.where))
        return "".join(f" {o}" for o in mail_options), "".join(f" {o}" for o in rcpt_options)

    def _envelope(self, connection: _Connection, message: Message, rendered: Rendered,
                  reused: bool) -> tuple[str, ...]:
        """MAIL FROM and RCPT TO (after RSET on a reused connection); all recipients or none."""
        client = connection.client
        mail_options, rcpt_options = self._mail_options(client, message, rendered)
        encoding = "utf-8" if message.needs_smtputf8 else "ascii"
        reset = connection.used  # an earlier transaction (sent, refused, abandoned) may be open
        connection.used = True
        commands = [("RSET", b"RSET")] if reset else []
        commands.append(("MAIL FROM", f"MAIL FROM:<{message.sender.address}>{mail_options}".encode(encoding)))
        recipients = message.recipients
        commands += [("RCPT TO", f"RCPT TO:<{box.address}>{rcpt_options}".encode(encoding)) for box in recipients]
        try:
            replies = self._commands(client, commands)
        except (smtplib.SMTPException, OSError) as exc:
            if reused:
                raise _StaleConnection(self._network_error(exc)) from exc
            raise
        if reset:
            replies = replies[1:]
        mail, rcpts = replies[0], replies[1:]
        if mail.code != OK:
            if reused and mail.temporary:  # e.g. a limit of messages per connection
                raise _StaleConnection(reply_error(mail))
            raise reply_error(mail)
        refused = tuple((box.address, reply) for box, reply in zip(recipients, rcpts, strict=True)
                        if reply.code not in (OK, WILL_FORWARD))
        if refused:
            try:
                self._commands(client, [("RSET", b"RSET")])
            except (smtplib.SMTPException, OSError):
                self._drop()
            details = "; ".join(f"{address}: {reply}" for address, reply in refused)
            first = refused[0][1]
            if any(reply.code in AUTH_REFUSED for _a, reply in refused):
                raise AuthError(explain(_("The server requires authentication before {what}: {reply}").format(
                    what="RCPT TO", reply=details), first), reply=first)
            raise RecipientsRefusedError(explain(ngettext(
                "The server refused {n} recipient, so nothing was sent: {details}",
                "The server refused {n} recipients, so nothing was sent: {details}",
                len(refused)).format(n=len(refused), details=details), first), refused=refused)
        return tuple(box.address for box in recipients)

    def _data(self, connection: _Connection, rendered: Rendered, on_commit: Commit | None) -> SMTPReply:
        """Stream the message; once the final dot is out, no answer means "may have been sent"."""
        client = connection.client
        [start] = self._commands(client, [("DATA", b"DATA")])
        if start.code != START_MAIL_INPUT:
            raise reply_error(start)
        sock = client.sock
        assert sock is not None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # A file that changed or vanished raises here, before the final dot: the server then
        # discards what it received when the connection closes (RFC 5321 section 4.1.1.4).
        try:
            for block in coalesce(dot_stuff(rendered.chunks()), WRITE_SIZE):
                sock.sendall(block)
        except OSError as exc:
            self._drop()
            raise ConnectError(_("The connection to {where} was lost while sending the message: {reason}").format(
                where=self.where, reason=self._network_error(exc).message)) from exc
        if on_commit is not None:
            on_commit()
        try:
            sock.sendall(b".\r\n")
            transcript.debug("C: <%d bytes of message data>", rendered.size)
            end = SMTPReply(*read_reply(client), "DATA")
        except KeyboardInterrupt:
            self._drop()
            raise InterruptedAfterCommitError(_("Interrupted after the message was handed over to {where}: it may have been delivered. Check before sending it again.").format(
                where=self.where)) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            why = _("no answer within {seconds:g} s").format(seconds=self.settings.timeout) \
                if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError) else reason(exc)
            raise MaybeSentError(_("The message was handed over to {where}, but no answer came ({reason}): it may have been delivered. Check before sending it again.").format(
                where=self.where, reason=why)) from exc
        if end.code == OK:
            return end
        if 400 <= end.code < 600:  # a refusal: the server did not take the message
            raise reply_error(end)
        self._drop()  # not an SMTP reply: nobody knows whether it was accepted
        raise MaybeSentError(_("The message was handed over to {where}, but its answer could not be understood ({reply}): it may have been delivered. Check before sending it again.").format(
            where=self.where, reply=redact.shown(end.text[:200])))

    def _receipt(self, connection: _Connection, message: Message, accepted: tuple[str, ...],
                 reply: SMTPReply) -> Receipt:
        count = len(accepted)
        security = connection.tls_version or _("no TLS")
        match = _QUEUE_ID.search(reply.text)
        queue_id = match.group(1) if match else None
        if queue_id:
            summary = ngettext(
                "Message sent to {n} recipient via {where} ({security}), queued as {queue_id}.",
                "Message sent to {n} recipients via {where} ({security}), queued as {queue_id}.",
                count).format(n=count, where=self.where, security=security, queue_id=queue_id)
        else:
            summary = ngettext(
                "Message sent to {n} recipient via {where} ({security}).",
                "Message sent to {n} recipients via {where} ({security}).",
                count).format(n=count, where=self.where, security=security)
        return Receipt(status=Status.SENT, message_id=message.message_id, accepted=accepted,
                       server=self.where, reply=str(reply), queue_id=queue_id,
                       tls_version=connection.tls_version, summary=summary)
