"""SMTPSession: one connection (STARTTLS or implicit TLS, AUTH) that sends many messages.

smtplib connects, says EHLO and starts TLS (smtp_connect); SMail authenticates (smtp_auth),
then sends the transaction itself and streams DATA (smtp_transaction). Every smtplib / ssl /
socket failure becomes an SMailError on the way, with the exit code SPEC.md gives it.

Never twice: once the final dot is out, a timeout or a lost connection is MaybeSentError.
Before it, the server has accepted nothing, so a reused connection that turns out to be dead
(or full: a 4xx to MAIL after some messages) is reopened and the message sent again.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable

from smail import tls
from smail.errors import ConnectError, MaybeSentError, SendError, SMailError, SMTPReply
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered
from smail.receipt import Receipt, Status
from smail.redact import Secret
from smail.settings import SMTPSettings
from smail.transports import Commit
from smail.transports.smtp_auth import Token, authenticate
from smail.transports.smtp_client import close_quietly
from smail.transports.smtp_connect import Connection, connect, network_error, where
from smail.transports.smtp_replies import SERVICE_CLOSING, dropped
from smail.transports.smtp_transaction import StaleConnection, data, envelope

log = logging.getLogger("smail")

_QUEUE_ID = re.compile(r"queued as ([A-Za-z0-9._-]+)", re.IGNORECASE)


class SMTPSession:
    """Delivers rendered messages to one SMTP server over one connection, reopened when needed."""

    def __init__(self, settings: SMTPSettings, *,
                 token_source: Callable[[], Secret] | None = None) -> None:
        self.settings = settings
        self.token = Token(settings.token, token_source)
        self._context: ssl.SSLContext | None = None
        self._connection: Connection | None = None

    @classmethod
    def from_settings(cls, settings: SMTPSettings) -> SMTPSession:
        """A session whose XOAUTH2 token, when the application obtains it, is asked for on first use."""
        return cls(settings, token_source=Token.from_settings(settings).source)

    @property
    def where(self) -> str:
        return where(self.settings)

    def send(self, message: Message, rendered: Rendered, *, on_commit: Commit | None = None) -> Receipt:
        """Send one message; reuse the open connection, or reopen it if it went stale."""
        if self._connection is not None:
            try:
                return self._transaction(self._connection, message, rendered, on_commit)
            except StaleConnection as stale:
                log.info(_("The connection to {where} can no longer be used ({error}): reconnecting.").format(
                    where=self.where, error=stale.error.message))
                self._drop()
        connection = self._open()
        try:
            return self._transaction(connection, message, rendered, on_commit)
        except StaleConnection as stale:  # only raised on a reused connection
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

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = tls.create_context(self.settings.tls)
        return self._context

    def _open(self) -> Connection:
        connection = connect(self.settings, self._tls_context)
        try:
            authenticate(connection, self.settings, self.token)
        except BaseException:
            close_quietly(connection.client)
            raise
        self._connection = connection
        return connection

    def _transaction(self, connection: Connection, message: Message, rendered: Rendered,
                     on_commit: Commit | None) -> Receipt:
        """MAIL, RCPT, DATA; a failure other than a complete refusal closes the connection."""
        reused = connection.delivered > 0
        try:
            accepted = envelope(connection, message, rendered, reused=reused, settings=self.settings)
            reply = data(connection, rendered, on_commit, settings=self.settings)
        except StaleConnection:
            raise
        except ConnectError as err:  # dropped before the final dot: nothing was accepted
            self._drop()
            if reused:
                raise StaleConnection(err) from err
            raise dropped(err, err.__cause__) from err
        except SMailError as err:
            # After a refusal the server is in a known state: keep the line, unless the reply
            # was 421, which closes it (RFC 5321 section 3.8), or the line was lost meanwhile.
            if not isinstance(err, SendError) or isinstance(err, MaybeSentError) or err.reply is None \
                    or err.reply.code == SERVICE_CLOSING or connection.closed:
                self._drop()
            raise
        except (smtplib.SMTPException, OSError) as exc:  # smtplib's errors derive from OSError
            self._drop()
            error = network_error(exc, self.settings)
            if reused:
                raise StaleConnection(error) from exc
            raise dropped(error, exc) from exc
        except BaseException:
            self._drop()
            raise
        connection.delivered += 1
        log.info(_("{where} accepted the message: {reply}").format(where=self.where, reply=reply))
        return self._receipt(connection, message, accepted, reply)

    def _receipt(self, connection: Connection, message: Message, accepted: tuple[str, ...],
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
