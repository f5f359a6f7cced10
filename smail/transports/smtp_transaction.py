"""One SMTP mail transaction on an open connection: MAIL FROM and RCPT TO (pipelined when the
server offers PIPELINING, RFC 2920), then DATA streamed, with the final dot as the commit.

Never twice: once the final dot is out, a timeout or a lost connection is MaybeSentError.
Before it, the server has accepted nothing: on a reused connection that turns out to be dead
(or full: a 4xx to MAIL after some messages) StaleConnection says to reopen it and send again.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from typing import Final

from smail import redact
from smail.errors import (
    AuthError,
    ConnectError,
    InterruptedAfterCommitError,
    MaybeSentError,
    RecipientsRefusedError,
    SendError,
    SMailError,
    SMTPReply,
    reason,
)
from smail.i18n import _, ngettext
from smail.message import Message
from smail.mime import Rendered, dot_stuff
from smail.settings import SMTPSettings
from smail.transports import Commit
from smail.transports.exchange import explain
from smail.transports.smtp_client import coalesce, read_reply, transcript
from smail.transports.smtp_connect import Connection, network_error, where
from smail.transports.smtp_replies import AUTH_REFUSED, OK, START_MAIL_INPUT, WILL_FORWARD, reply_error

log = logging.getLogger("smail")

WRITE_SIZE: Final = 256 * 1024


class StaleConnection(Exception):
    """A reused connection failed before the message was committed: reconnect and resend."""

    def __init__(self, error: SMailError) -> None:
        super().__init__(error.message)
        self.error = error


def commands(client: smtplib.SMTP, lines: list[tuple[str, bytes]]) -> list[SMTPReply]:
    """Send commands and read their replies; all at once when the server pipelines."""
    if client.has_extn("pipelining"):
        client.send(b"".join(line + b"\r\n" for _verb, line in lines))
        return [SMTPReply(*read_reply(client), verb) for verb, _line in lines]
    replies = []
    for verb, line in lines:
        client.send(line + b"\r\n")
        replies.append(SMTPReply(*read_reply(client), verb))
    return replies


def _mail_options(client: smtplib.SMTP, message: Message, rendered: Rendered, settings: SMTPSettings) -> tuple[str, str]:
    mail_options: list[str] = []
    rcpt_options: list[str] = []
    if client.has_extn("size"):
        limit = client.esmtp_features.get("size", "").strip()
        if limit.isascii() and limit.isdigit() and 0 < int(limit) < rendered.size:  # not "²", a latin-1 digit int() refuses
            raise SendError(_("The message is {size} bytes but {where} accepts at most {limit} bytes.").format(
                size=rendered.size, where=where(settings), limit=limit))
        mail_options.append(f"SIZE={rendered.size}")
    if message.needs_smtputf8:
        if not client.has_extn("smtputf8"):
            raise SendError(_("An address contains non-ASCII characters before the @, which needs SMTPUTF8, and {where} does not offer it.").format(
                where=where(settings)))
        mail_options.append("SMTPUTF8")
        if client.has_extn("8bitmime"):
            mail_options.append("BODY=8BITMIME")
    if message.reception_ack:
        if client.has_extn("dsn"):
            mail_options.append("RET=HDRS")
            rcpt_options.append("NOTIFY=SUCCESS,FAILURE")
        else:
            log.info(_("{where} does not offer DSN: no delivery receipt can be requested from it (Return-Receipt-To is still set).").format(
                where=where(settings)))
    return "".join(f" {o}" for o in mail_options), "".join(f" {o}" for o in rcpt_options)


def envelope(connection: Connection, message: Message, rendered: Rendered, *, reused: bool,
             settings: SMTPSettings) -> tuple[str, ...]:
    """MAIL FROM and RCPT TO (after RSET on a reused connection); all recipients or none."""
    client = connection.client
    mail_options, rcpt_options = _mail_options(client, message, rendered, settings)
    encoding = "utf-8" if message.needs_smtputf8 else "ascii"
    reset = connection.used  # an earlier transaction (sent, refused, abandoned) may be open
    connection.used = True
    lines = [("RSET", b"RSET")] if reset else []
    lines.append(("MAIL FROM", f"MAIL FROM:<{message.sender.address}>{mail_options}".encode(encoding)))
    recipients = message.recipients
    lines += [("RCPT TO", f"RCPT TO:<{box.address}>{rcpt_options}".encode(encoding)) for box in recipients]
    try:
        replies = commands(client, lines)
    except (smtplib.SMTPException, OSError) as exc:
        if reused:
            raise StaleConnection(network_error(exc, settings)) from exc
        raise
    if reset:
        replies = replies[1:]
    mail, rcpts = replies[0], replies[1:]
    if mail.code != OK:
        if reused and mail.temporary:  # e.g. a limit of messages per connection
            raise StaleConnection(reply_error(mail))
        raise reply_error(mail)
    refused = tuple((box.address, reply) for box, reply in zip(recipients, rcpts, strict=True)
                    if reply.code not in (OK, WILL_FORWARD))
    if refused:
        try:
            commands(client, [("RSET", b"RSET")])
        except (smtplib.SMTPException, OSError):
            connection.close()
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


def data(connection: Connection, rendered: Rendered, on_commit: Commit | None, *,
         settings: SMTPSettings) -> SMTPReply:
    """Stream the message; once the final dot is out, no answer means "may have been sent"."""
    client = connection.client
    [start] = commands(client, [("DATA", b"DATA")])
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
        connection.close()
        raise ConnectError(_("The connection to {where} was lost while sending the message: {reason}").format(
            where=where(settings), reason=network_error(exc, settings).message)) from exc
    if on_commit is not None:
        on_commit()
    try:
        sock.sendall(b".\r\n")
        transcript.debug("C: <%d bytes of message data>", rendered.size)
        end = SMTPReply(*read_reply(client), "DATA")
    except KeyboardInterrupt:
        connection.close()
        raise InterruptedAfterCommitError(_("Interrupted after the message was handed over to {where}: it may have been delivered. Check before sending it again.").format(
            where=where(settings))) from None
    except (smtplib.SMTPException, OSError) as exc:
        connection.close()
        why = _("no answer within {seconds:g} s").format(seconds=settings.timeout) \
            if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError) else reason(exc)
        raise MaybeSentError(_("The message was handed over to {where}, but no answer came ({reason}): it may have been delivered. Check before sending it again.").format(
            where=where(settings), reason=why)) from exc
    if end.code == OK:
        return end
    if 400 <= end.code < 600:  # a refusal: the server did not take the message
        raise reply_error(end)
    connection.close()  # not an SMTP reply: nobody knows whether it was accepted
    raise MaybeSentError(_("The message was handed over to {where}, but its answer could not be understood ({reply}): it may have been delivered. Check before sending it again.").format(
        where=where(settings), reply=redact.shown(end.text[:200])))
