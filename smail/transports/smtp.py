"""SMTPTransport: connect, STARTTLS or implicit TLS, AUTH, envelope, streamed DATA.

smtplib does the dialogue; every smtplib / ssl / socket failure becomes an SMailError here,
with the exit code SPEC.md gives it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from smail import redact, tls
from smail.config import Config, SMTPSettings
from smail.errors import AuthError, ConnectError, FileMissingError, SendError, SMailError, TLSError, reason
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered, dot_stuff
from smail.options import AuthType, TLSMode
from smail.redact import Secret
from smail.transports import Receipt

log = logging.getLogger("smail")
transcript = logging.getLogger("smail.smtp")

# Preferred SASL mechanisms first (the order of strength).
SASL_MECHANISMS: Final = ("CRAM-MD5", "PLAIN", "LOGIN")
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
        code, message = super().getreply()  # type: ignore[misc]
        if transcript.isEnabledFor(logging.DEBUG):
            lines = message.decode("utf-8", "replace").split("\n")
            for index, line in enumerate(lines):
                transcript.debug("S: %s%s%s", code, "-" if index < len(lines) - 1 else " ", line)
        return code, message


class _SMTP(_Transcript, smtplib.SMTP):
    pass


class _SMTPS(_Transcript, smtplib.SMTP_SSL):
    pass


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).replace("\n", " ")


def _reply_error(code: int, reply: bytes | str, what: str) -> SMailError:
    """An SMTP reply refusing `what` (MAIL, RCPT, DATA): 530-538 -> 4, 4xx transient, 5xx -> 5."""
    text = f"{code} {_text(reply)}"
    if code in AUTH_REFUSED:
        return AuthError(_("The server requires authentication before {what}: {reply}").format(
            what=what, reply=text))
    if 400 <= code < 500:
        return SendError(_("The server temporarily refused {what}: {reply}").format(
            what=what, reply=text), transient=True)
    return SendError(_("The server refused {what}: {reply}").format(what=what, reply=text))


@dataclass
class _Session:
    client: smtplib.SMTP
    tls_version: str | None = None
    cipher: str | None = None


class SMTPTransport:
    """Delivers one rendered message to one SMTP server."""

    def __init__(self, settings: SMTPSettings, *,
                 token_source: Callable[[], Secret] | None = None) -> None:
        self.settings = settings
        self.context = tls.create_context(settings.tls) if settings.tls_mode is not TLSMode.NONE \
            else None
        self.token_source = token_source

    @classmethod
    def from_config(cls, config: Config) -> SMTPTransport:
        settings = config.transport
        assert isinstance(settings, SMTPSettings)
        token_source = None
        if settings.auth is AuthType.XOAUTH2 and settings.token is None and settings.app:
            app = settings.app

            def token_source() -> Secret:
                from smail import auth  # msal and requests only on this path
                return auth.client_token(app, "https://outlook.office365.com/.default",
                                         tls_settings=settings.tls, timeout=settings.timeout)
        return cls(settings, token_source=token_source)

    @property
    def where(self) -> str:
        return f"{self.settings.server}:{self.settings.port}"

    # -- connection -------------------------------------------------------------------------

    def _connect(self) -> _Session:
        s = self.settings
        helo = s.helo or local_hostname()
        log.info(_("Connecting to {where} (TLS mode: {mode}).").format(where=self.where, mode=s.tls_mode.value))
        client: smtplib.SMTP
        try:
            if s.tls_mode is TLSMode.IMPLICIT:
                client = _SMTPS(local_hostname=helo, timeout=s.timeout, context=self.context)
            else:
                client = _SMTP(local_hostname=helo, timeout=s.timeout)
            client._host = s.server  # smtplib sets it only when the constructor connects
            code, greeting = client.connect(s.server, s.port)
            if code != 220:  # smtplib checks the greeting only when its constructor connects
                _close(client)
                raise smtplib.SMTPConnectError(code, greeting)
        except smtplib.SMTPConnectError as exc:  # the greeting was not 220
            raise ConnectError(_("{where} refused the session: {reply}").format(
                where=self.where, reply=f"{exc.smtp_code} {_text(exc.smtp_error)}"),
                transient=400 <= exc.smtp_code < 500) from exc
        except Exception as exc:
            raise self._network_error(exc) from exc
        session = _Session(client)
        try:
            self._hello(client)
            if s.tls_mode is TLSMode.STARTTLS:
                if not client.has_extn("starttls"):
                    raise TLSError(_("{where} does not offer STARTTLS, and TLS was asked for: nothing was sent in clear text.").format(
                        where=self.where))
                client.starttls(context=self.context)
                # RFC 3207 section 4.2: forget what was learnt before TLS and say EHLO again.
                self._hello(client)
            sock = client.sock
            if isinstance(sock, ssl.SSLSocket):
                session.tls_version, cipher = sock.version(), sock.cipher()
                session.cipher = cipher[0] if cipher else None
                log.info(_("TLS established with {where}: {version}, {cipher}.").format(
                    where=self.where, version=session.tls_version, cipher=session.cipher))
        except SMailError:
            _close(client)
            raise
        except smtplib.SMTPResponseException as exc:
            _close(client)
            raise TLSError(_("{where} refused STARTTLS: {reply}").format(
                where=self.where, reply=f"{exc.smtp_code} {_text(exc.smtp_error)}")) from exc
        except Exception as exc:
            _close(client)
            raise self._network_error(exc) from exc
        return session

    def _hello(self, client: smtplib.SMTP) -> None:
        code, reply = client.ehlo()
        if not 200 <= code < 300:
            code, reply = client.helo()
            if not 200 <= code < 300:
                raise _reply_error(code, reply, "EHLO")

    def _network_error(self, exc: BaseException) -> SMailError:
        """socket, ssl and smtplib connection failures -> exit 3, transient where retrying helps."""
        where, timeout = self.where, self.settings.timeout
        cause = exc.__cause__ or exc.__context__
        if isinstance(exc, SMailError):
            return exc
        if isinstance(exc, ssl.SSLCertVerificationError):
            return TLSError(_("The certificate of {where} could not be verified: {reason}. Use /CA_FILE to trust its CA.").format(
                where=where, reason=exc.verify_message or exc.reason))
        if isinstance(exc, ssl.SSLError):
            return TLSError(_("The TLS handshake with {where} failed: {reason}").format(
                where=where, reason=exc.reason or exc))
        if isinstance(exc, socket.gaierror):
            return ConnectError(_("The server name {server} could not be resolved: {reason}").format(
                server=self.settings.server, reason=exc.strerror),
                transient=exc.errno == socket.EAI_AGAIN)
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

    # -- authentication ---------------------------------------------------------------------

    def _authenticate(self, session: _Session) -> str | None:
        s = self.settings
        if s.auth is AuthType.NONE:
            return None
        client = session.client
        if not client.has_extn("auth"):
            if session.tls_version:
                raise AuthError(_("{where} does not offer authentication (AUTH).").format(where=self.where))
            raise AuthError(_("{where} does not offer authentication (AUTH) without TLS; many servers offer it only over TLS: try /SSL_VERSION=TLSV1_2.").format(
                where=self.where))
        offered = client.esmtp_features["auth"].upper().split()
        if s.auth is AuthType.XOAUTH2:
            mechanism = "XOAUTH2"
            if mechanism not in offered:
                raise AuthError(_("{where} does not offer XOAUTH2; it offers: {offered}.").format(
                    where=self.where, offered=" ".join(offered) or "-"))
        else:
            mechanism = next((m for m in SASL_MECHANISMS if m in offered), "")
            if not mechanism:
                raise AuthError(_("{where} offers none of CRAM-MD5, PLAIN, LOGIN; it offers: {offered}.").format(
                    where=self.where, offered=" ".join(offered) or "-"))
        if session.tls_version is None and not _is_loopback(client):
            log.warning(_("Authenticating without TLS: the credentials cross the network unencrypted."))
        responder, reasons = self._responder(mechanism)
        try:
            self._sasl(client, mechanism, responder)
        except smtplib.SMTPAuthenticationError as exc:
            reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
            transient = 400 <= exc.smtp_code < 500
            if reasons:
                raise AuthError(_("{where} refused the authentication of {user} with {mechanism}: {reply} (reason given by the server: {reason})").format(
                    where=self.where, user=s.username, mechanism=mechanism, reply=reply,
                    reason=reasons[-1]), transient=transient) from exc
            raise AuthError(_("{where} refused the authentication of {user} with {mechanism}: {reply}").format(
                where=self.where, user=s.username, mechanism=mechanism, reply=reply),
                transient=transient) from exc
        log.info(_("Authenticated as {user} with {mechanism}.").format(user=s.username, mechanism=mechanism))
        return mechanism

    def _responder(self, mechanism: str) -> tuple[Callable[[bytes | None], bytes | None], list[str]]:
        """The SASL answers for `mechanism`: called with None first, then with each challenge."""
        s = self.settings
        user = (s.username or "").encode("utf-8")
        reasons: list[str] = []
        if mechanism == "XOAUTH2":
            token = s.token if s.token is not None else self._fetch_token()
            initial = b"user=" + user + b"\x01auth=Bearer " + token.reveal().encode("utf-8") + b"\x01\x01"

            def xoauth2(challenge: bytes | None) -> bytes | None:
                # The 334 error challenge carries a JSON reason; the client answers with an
                # empty line so that the server ends the exchange with 535 (Google's protocol).
                if challenge is None or not challenge.strip():
                    return initial  # no challenge yet: the server ignored the initial response
                reasons.append(challenge.decode("utf-8", "replace"))
                return b""
            return xoauth2, reasons
        password = (s.password.reveal() if s.password else "").encode("utf-8")
        if mechanism == "PLAIN":
            return lambda c: b"\0" + user + b"\0" + password if c is None else b"", reasons
        if mechanism == "CRAM-MD5":
            return lambda c: None if c is None else (
                user + b" " + hmac.new(password, c, hashlib.md5).hexdigest().encode("ascii")), reasons
        answers = iter((user, password))  # LOGIN: user name, then password
        return lambda c: None if c is None else next(answers, b""), reasons

    def _fetch_token(self) -> Secret:
        if self.token_source is None:
            raise AuthError(_("No OAuth2 token is available for XOAUTH2."))
        token = self.token_source()
        redact.remember(token)
        return token

    @staticmethod
    def _sasl(client: smtplib.SMTP, mechanism: str,
              responder: Callable[[bytes | None], bytes | None]) -> None:
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
                if code != 334:
                    break
                try:
                    challenge = base64.b64decode(reply, validate=False)
                except ValueError:
                    challenge = reply
                code, reply = client.docmd(b64(responder(challenge) or b""))
        finally:
            client.masking_auth = False
        if code not in (235, 503):
            raise smtplib.SMTPAuthenticationError(code, reply)

    # -- transaction ------------------------------------------------------------------------

    def _envelope(self, session: _Session, message: Message, rendered: Rendered) -> None:
        client = session.client
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
        code, reply = client.mail(message.sender.address, mail_options)
        if code != 250:
            raise _reply_error(code, reply, "MAIL FROM")
        refused: list[tuple[str, int, str]] = []
        for box in message.recipients:
            code, reply = client.rcpt(box.address, rcpt_options)
            if code not in (250, 251):
                refused.append((box.address, code, _text(reply)))
        if refused:
            try:
                client.rset()
            except (smtplib.SMTPException, OSError):
                pass
            details = "; ".join(f"{addr}: {code} {text}" for addr, code, text in refused)
            if any(code in AUTH_REFUSED for _a, code, _t in refused):
                raise AuthError(_("The server requires authentication before {what}: {reply}").format(
                    what="RCPT TO", reply=details))
            transient = all(400 <= code < 500 for _a, code, _t in refused)
            raise SendError(ngettext(
                "The server refused {n} recipient, so nothing was sent: {details}",
                "The server refused {n} recipients, so nothing was sent: {details}",
                len(refused)).format(n=len(refused), details=details), transient=transient)

    def _data(self, session: _Session, rendered: Rendered) -> str:
        client = session.client
        code, reply = client.docmd("DATA")
        if code != 354:
            raise _reply_error(code, reply, "DATA")
        sock = client.sock
        assert sock is not None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            for block in _coalesce(dot_stuff(rendered.chunks()), WRITE_SIZE):
                sock.sendall(block)
            sock.sendall(b".\r\n")
            transcript.debug("C: <%d bytes of message data>", rendered.size)
            code, reply = client.getreply()
        except FileMissingError:
            raise
        except Exception as exc:
            raise ConnectError(_("The connection to {where} was lost while sending the message: {reason}").format(
                where=self.where, reason=self._network_error(exc).message)) from exc
        if code != 250:
            raise _reply_error(code, reply, "DATA")
        return f"{code} {_text(reply)}"

    def send(self, message: Message, rendered: Rendered) -> Receipt:
        session = self._connect()
        client = session.client
        try:
            mechanism = self._authenticate(session)
            self._envelope(session, message, rendered)
            reply = self._data(session, rendered)
        except SMailError:
            _close(client)
            raise
        except OSError as exc:  # smtplib's errors derive from OSError
            _close(client)
            raise self._network_error(exc) from exc
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        log.info(_("{where} accepted the message: {reply}").format(where=self.where, reply=reply))
        count = len(message.recipients)
        security = session.tls_version or _("no TLS")
        match = _QUEUE_ID.search(reply)
        if match:
            summary = ngettext(
                "Message sent to {n} recipient via {where} ({security}), queued as {queue_id}.",
                "Message sent to {n} recipients via {where} ({security}), queued as {queue_id}.",
                count).format(n=count, where=self.where, security=security, queue_id=match.group(1))
        else:
            summary = ngettext(
                "Message sent to {n} recipient via {where} ({security}).",
                "Message sent to {n} recipients via {where} ({security}).",
                count).format(n=count, where=self.where, security=security)
        if mechanism:
            log.info(_("Authentication mechanism used: {mechanism}.").format(mechanism=mechanism))
        return Receipt(recipients=count, summary=summary)


def local_hostname(get: Callable[[], str] = socket.gethostname) -> str:
    """The EHLO name: this computer's name, in IDNA when it has non-ASCII letters."""
    name = get() or "localhost"
    try:
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


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
