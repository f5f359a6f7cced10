"""What SMTP replies and connection failures mean to SMail: pure functions from a reply or an
exception to the SMailError (and so the exit code) that reports it."""

from __future__ import annotations

import smtplib
import socket
import ssl
from typing import Final

from smail import tls
from smail.errors import (
    AuthError,
    ConnectError,
    DroppedError,
    NameResolutionError,
    SendError,
    SMailError,
    SMTPReply,
    TLSError,
    reason,
)
from smail.i18n import _
from smail.transports.exchange import explain

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


def reply_error(reply: SMTPReply) -> SMailError:
    """A reply refusing a command: 530-538 -> exit 4; otherwise exit 5 (4xx temporary)."""
    if reply.code in AUTH_REFUSED:
        return AuthError(explain(_("The server requires authentication before {what}: {reply}").format(
            what=reply.command, reply=reply), reply), reply=reply)
    if reply.temporary:
        return SendError(_("The server temporarily refused {what}: {reply}").format(
            what=reply.command, reply=reply), reply=reply)
    return SendError(explain(_("The server refused {what}: {reply}").format(what=reply.command, reply=reply),
                             reply), reply=reply)


def network_error(exc: BaseException, *, where: str, server: str, timeout: float) -> SMailError | None:
    """socket, ssl and smtplib connection failures -> exit 3, transient where retrying helps;
    None for an exception that is none of those (a bug, to be raised as it is)."""
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
            server=server, reason=exc.strerror), temporary=exc.errno == socket.EAI_AGAIN)
    if isinstance(exc, UnicodeError):  # a host name the IDNA codec refuses
        return NameResolutionError(_("The server name {server} could not be resolved: {reason}").format(
            server=server, reason=exc), temporary=False)
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
    return None


def dropped(err: SMailError, cause: BaseException | None) -> SMailError:
    """A connection lost during one message's transaction, on a connection opened for it: the
    server closed or reset it (not a reply, not a silence), so that message is the likely cause
    and the next one may go through (DroppedError); anything else is the session's failure."""
    silent = isinstance(cause, TimeoutError) or isinstance(getattr(cause, "__context__", None), TimeoutError)
    if type(err) is not ConnectError or err.reply is not None or silent:
        return err
    return DroppedError(err.message)
