"""SMTPSession: one connection (STARTTLS or implicit TLS, AUTH) that sends many messages.

smtplib connects, says EHLO and starts TLS; SMail sends the transaction itself (pipelined
when the server offers PIPELINING, RFC 2920) and streams DATA. Every smtplib / ssl / socket
failure becomes an SMailError here, with the exit code SPEC.md gives it.

Never twice: once the final dot is out, a timeout or a lost connection is MaybeSentError.
Before it, the server has accepted nothing, so a reused connection that turns out to be
dead (or full: a 4xx to MAIL after some messages) is reopened and the message sent again.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from smail import redact, sasl, tls
from smail.config import Config, SMTPSettings
from smail.errors import (
    AuthError,
    ConnectError,
    InterruptedAfterCommitError,
    MaybeSentError,
    NameResolutionError,
    RecipientsRefusedError,
    SendError,
    SMailError,
    SMTPReply,
    TLSError,
    reason,
)
from smail.hosts import ascii_name
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered, dot_stuff
from smail.receipt import Receipt, Status
from smail.redact import Secret
from smail.sasl import AuthType
from smail.tls import TLSMode
from smail.transports import Commit

log = logging.getLogger("smail")
transcript = logging.getLogger("smail.smtp")

# Reply codes (RFC 5321 section 4.2.3, RFC 4954 section 6).
READY: Final = 220
AUTH_SUCCEEDED: Final = 235
OK: Final = 250
WILL_FORWARD: Final = 251
AUTH_CHALLENGE: Final = 334
START_MAIL_INPUT: Final = 354
BAD_SEQUENCE: Final = 503        # AUTH when already authenticated: nothing to do
SERVICE_CLOSING: Final = 421
AUTH_REFUSED: Final = frozenset({530, 534, 535, 538})
WRITE_SIZE: Final = 256 * 1024
_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9._-]+)", re.IGNORECASE)


class _Transcript:
    """Logs the dialogue at DEBUG; AUTH lines are masked by structure (never by value)."""

    masking_auth = False
    _host: str  # set by smtplib; SMail sets it too, see _connect()

    def send(self, s: Any) -> None:
        if transcript.isEnabledFor(logging.DEBUG):
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
            for line in text.rstrip("\r\n").split("\r\n"):
                if self.masking_auth:
                    shown = redact.mask_auth_command(line) if line.upper().startswith("AUTH") \
                        else redact.MASK
                else:
                    shown = line
                transcript.debug("C: %s", shown)
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        """smtplib's reply reader, with /TIMEOUT for the whole reply: a server that trickles
        a reply, line by line or byte by byte, cannot hold SMail beyond it. Lines are read
        from the socket itself, each recv() given only the time left."""
        client: Any = self
        timeout = client.timeout if isinstance(client.timeout, (int, float)) else None
        deadline = time.monotonic() + timeout if timeout is not None else None
        lines: list[bytes] = []
        code = -1
        try:
            while True:
                line = self._read_line(client, deadline)
                if not line:
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                if len(line) > smtplib._MAXLINE:  # type: ignore[attr-defined]
                    raise smtplib.SMTPResponseException(500, b"Line too long.")
                lines.append(line[4:].strip(b" \t\r\n"))
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                    break
                if line[3:4] != b"-":
                    break
        except BaseException:
            client.close()
            raise
        finally:
            if client.sock is not None:
                client.sock.settimeout(timeout)
        message = b"\n".join(lines)
        if transcript.isEnabledFor(logging.DEBUG):
            for index, text in enumerate(lines):
                transcript.debug("S: %s%s%s", code, "-" if index < len(lines) - 1 else " ",
                                 text.decode("utf-8", "replace"))
        return code, message


    _buffer = b""
    _buffer_sock: Any = None

    def _read_line(self, client: Any, deadline: float | None) -> bytes:
        """One line, or what came before the connection closed; TimeoutError past `deadline`."""
        sock = client.sock
        if sock is None:
            return b""
        if self._buffer_sock is not sock:  # a new connection, or TLS just started (RFC 3207 4.2)
            self._buffer, self._buffer_sock = b"", sock
        while b"\n" not in self._buffer and len(self._buffer) <= smtplib._MAXLINE:  # type: ignore[attr-defined]
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the reply did not end in time")
                sock.settimeout(left)
            chunk = sock.recv(8192)
            if not chunk:
                break
            self._buffer += chunk
        line, newline, self._buffer = self._buffer.partition(b"\n")
        return line + newline


class _SMTP(_Transcript, smtplib.SMTP):
    pass


class _SMTPS(_Transcript, smtplib.SMTP_SSL):
    pass


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).replace("\n", " ")


def reply_error(reply: SMTPReply) -> SMailError:
    """A reply refusing a command: 530-538 -> exit 4; otherwise exit 5 (4xx temporary)."""
    if reply.code in AUTH_REFUSED:
        return AuthError(_("The server requires authentication before {what}: {reply}").format(
            what=reply.command, reply=reply), reply=reply)
    if reply.temporary:
        return SendError(_("The server temporarily refused {what}: {reply}").format(
            what=reply.command, reply=reply), reply=reply)
    return SendError(_("The server refused {what}: {reply}").format(what=reply.command, reply=reply),
                     reply=reply)


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
    def from_config(cls, config: Config) -> SMTPSession:
        settings = config.transport
        assert isinstance(settings, SMTPSettings)
        token_source = None
        if settings.auth is AuthType.XOAUTH2 and settings.token is None and settings.app:
            app = settings.app

            def token_source() -> Secret:
                from smail import auth  # msal and requests only on this path
                return auth.client_token(app, app.smtp_scope, tls_settings=settings.tls,
                                         timeout=settings.timeout)
        return cls(settings, token_source=token_source)

    @property
    def where(self) -> str:
        return f"{self.settings.server}:{self.settings.port}"

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
            _close(connection.client)

    def _drop(self) -> None:
        if self._connection is not None:
            _close(self._connection.client)
        self._connection = None

    def _open(self) -> _Connection:
        connection = self._connect()
        try:
            self._authenticate(connection)
        except BaseException:
            _close(connection.client)
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
        log.info(_("Connecting to {where} (TLS mode: {mode}).").format(where=self.where, mode=s.tls_mode.value))
        client: smtplib.SMTP
        try:
            # A placeholder name: smtplib would otherwise look up this computer's FQDN here.
            if s.tls_mode is TLSMode.IMPLICIT:
                client = _SMTPS(local_hostname="localhost", timeout=s.timeout, context=self._tls_context())
            else:
                client = _SMTP(local_hostname="localhost", timeout=s.timeout)
            client._host = s.server  # smtplib sets it only when the constructor connects
            code, greeting = client.connect(s.server, s.port)
            if code != READY:  # smtplib checks the greeting only when its constructor connects
                _close(client)
                reply = SMTPReply(code, _text(greeting), "CONNECT")
                raise ConnectError(_("{where} refused the session: {reply}").format(
                    where=self.where, reply=reply), reply=reply)
        except SMailError:
            raise
        except Exception as exc:
            raise self._network_error(exc) from exc
        connection = _Connection(client)
        try:
            client.local_hostname = s.helo or ehlo_name(_local_address(client))
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
            _close(client)
            raise
        except smtplib.SMTPResponseException as exc:
            _close(client)
            raise TLSError(_("{where} refused STARTTLS: {reply}").format(
                where=self.where, reply=f"{exc.smtp_code} {_text(exc.smtp_error)}"),
                reply=SMTPReply(exc.smtp_code, _text(exc.smtp_error), "STARTTLS")) from exc
        except Exception as exc:
            _close(client)
            raise self._network_error(exc) from exc
        return connection

    def _hello(self, client: smtplib.SMTP) -> None:
        code, reply = client.ehlo()
        if not 200 <= code < 300:
            code, reply = client.helo()
            if not 200 <= code < 300:
                raise reply_error(SMTPReply(code, _text(reply), "EHLO"))

    def _network_error(self, exc: BaseException) -> SMailError:
        """socket, ssl and smtplib connection failures -> exit 3, transient where retrying helps."""
        where, timeout = self.where, self.settings.timeout
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, SMailError):
            return exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TLSError(_("The certificate of {where} could not be verified: {reason}. Use /CA_FILE to trust its CA.").format(
                where=where, reason=exc.verify_message or exc.reason))
        if (failure := tls.verifier_failure(exc)) is not None:
            return TLSError(_("The certificate of {where} could not be verified: the system's certificate verifier failed: {reason}.").format(
                where=where, reason=str(reason(failure)).rstrip(".")))
        if isinstance(exc, ssl.SSLError):
            return TLSError(_("The TLS handshake with {where} failed: {reason}").format(
                where=where, reason=exc.reason or exc))
        if isinstance(exc, socket.gaierror):
            return NameResolutionError(_("The server name {server} could not be resolved: {reason}").format(
                server=self.settings.server, reason=exc.strerror), temporary=exc.errno == socket.EAI_AGAIN)
        if isinstance(exc, UnicodeError):  # a host name the IDNA codec refuses
            return NameResolutionError(_("The server name {server} could not be resolved: {reason}").format(
                server=self.settings.server, reason=exc), temporary=False)
        if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
            return ConnectError(_("{where} did not answer within {seconds:g} s.").format(
                where=where, seconds=timeout))
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(_("{where} refused the connection.").format(where=where))
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return ConnectError(_("{where} closed the connection unexpectedly.").format(where=where))
        if isinstance(exc, OSError):
            return ConnectError(_("Cannot connect to {where}: {reason}").format(
                where=where, reason=reason(exc)))
        raise exc

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
        if connection.tls_version is None and not _is_loopback(client):
            log.warning(_("Authenticating without TLS: the credentials cross the network unencrypted."))
        try:
            self._sasl(client, mechanism, responder)
        except smtplib.SMTPAuthenticationError as exc:
            reply = SMTPReply(exc.smtp_code, _text(exc.smtp_error), "AUTH")
            if reasons:
                raise AuthError(_("{where} refused the authentication of {user} with {mechanism}: {reply} (reason given by the server: {reason})").format(
                    where=self.where, user=s.username, mechanism=mechanism, reply=reply,
                    reason=reasons[-1]), reply=reply) from exc
            raise AuthError(_("{where} refused the authentication of {user} with {mechanism}: {reply}").format(
                where=self.where, user=s.username, mechanism=mechanism, reply=reply), reply=reply) from exc
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

    @staticmethod
    def _sasl(client: smtplib.SMTP, mechanism: str, responder: sasl.Responder) -> None:
        """RFC 4954 exchange with UTF-8 credentials (smtplib.auth() only sends ASCII)."""
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode("ascii")
        initial = responder(None)
        assert isinstance(client, _Transcript)
        client.masking_auth = True
        try:
            command = f"AUTH {mechanism}" + (f" {b64(initial)}" if initial is not None else "")
            code, reply = client.docmd(command)
            for _round in range(5):
                if code != AUTH_CHALLENGE:
                    break
                try:
                    challenge = base64.b64decode(reply, validate=False)
                except ValueError:
                    challenge = reply
                code, reply = client.docmd(b64(responder(challenge) or b""))
        finally:
            client.masking_auth = False
        if code not in (AUTH_SUCCEEDED, BAD_SEQUENCE):
            raise smtplib.SMTPAuthenticationError(code, reply)

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
            raise
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
            raise error from exc
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
            return [SMTPReply(*_reply(client), verb) for verb, _line in commands]
        replies = []
        for verb, line in commands:
            client.send(line + b"\r\n")
            replies.append(SMTPReply(*_reply(client), verb))
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
            if any(reply.code in AUTH_REFUSED for _a, reply in refused):
                raise AuthError(_("The server requires authentication before {what}: {reply}").format(
                    what="RCPT TO", reply=details), reply=refused[0][1])
            raise RecipientsRefusedError(ngettext(
                "The server refused {n} recipient, so nothing was sent: {details}",
                "The server refused {n} recipients, so nothing was sent: {details}",
                len(refused)).format(n=len(refused), details=details), refused=refused)
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
            for block in _coalesce(dot_stuff(rendered.chunks()), WRITE_SIZE):
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
            end = SMTPReply(*_reply(client), "DATA")
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


def _reply(client: smtplib.SMTP) -> tuple[int, str]:
    code, text = client.getreply()
    return code, _text(text)


def ehlo_name(local_address: str | None, *, fqdn: Callable[[], str] = socket.getfqdn) -> str:
    """The EHLO name: this computer's fully qualified name (in IDNA), else the address literal
    of the connection's local address (RFC 5321 section 4.1.3), never a bare short name."""
    name = fqdn()
    if "." in name.strip("."):
        try:
            return ascii_name(name)
        except ValueError:
            pass
    try:
        address = ipaddress.ip_address((local_address or "127.0.0.1").split("%")[0])
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1")
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"


def _local_address(client: smtplib.SMTP) -> str | None:
    try:
        assert client.sock is not None
        return str(client.sock.getsockname()[0])
    except (OSError, AssertionError):
        return None


def _coalesce(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Group small chunks into writes of about `size` bytes (fewer packets, no stalls)."""
    pending: list[bytes] = []
    length = 0
    for chunk in chunks:
        pending.append(chunk)
        length += len(chunk)
        if length >= size:
            yield b"".join(pending)
            pending, length = [], 0
    if pending:
        yield b"".join(pending)


def _is_loopback(client: smtplib.SMTP) -> bool:
    try:
        assert client.sock is not None
        return ipaddress.ip_address(client.sock.getpeername()[0]).is_loopback
    except (OSError, ValueError, AssertionError):
        return False


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing a broken connection must not hide the real error
        pass
