"""The error tree: exit codes by class, "transient" by class and protocol code."""

from __future__ import annotations

import pytest

from smail.errors import (
    AuthError,
    ConnectError,
    ExitCode,
    HTTPAnswer,
    IdentityUnavailableError,
    MaybeSentError,
    NameResolutionError,
    RecipientsRefusedError,
    RetryExceededError,
    SendError,
    SMTPReply,
    TLSError,
)


def test_reply_facts():
    reply = SMTPReply(550, "5.1.1 <x@y.test>: Recipient address rejected", "RCPT TO")
    assert (reply.enhanced_status, reply.temporary, str(reply)) == (
        "5.1.1", False, "550 5.1.1 <x@y.test>: Recipient address rejected")
    assert SMTPReply(451, "Try later", "MAIL FROM").enhanced_status is None


@pytest.mark.parametrize("error, exit_code, transient", [
    (ConnectError("x"), ExitCode.CONNECT, True),
    (ConnectError("421", reply=SMTPReply(421, "busy", "CONNECT")), ExitCode.CONNECT, True),
    (ConnectError("554", reply=SMTPReply(554, "no", "CONNECT")), ExitCode.CONNECT, False),
    (TLSError("x"), ExitCode.CONNECT, False),
    (NameResolutionError("x", temporary=True), ExitCode.CONNECT, True),
    (NameResolutionError("x", temporary=False), ExitCode.CONNECT, False),
    (AuthError("x", reply=SMTPReply(535, "5.7.8 bad", "AUTH")), ExitCode.AUTH, False),
    (AuthError("x", reply=SMTPReply(454, "4.7.0 later", "AUTH")), ExitCode.AUTH, True),
    (IdentityUnavailableError("x"), ExitCode.AUTH, True),
    (SendError("x", reply=SMTPReply(451, "later", "MAIL FROM")), ExitCode.SEND, True),
    (SendError("x", reply=SMTPReply(554, "no", "DATA")), ExitCode.SEND, False),
    (SendError("x", answer=HTTPAnswer(429, "TooManyRequests")), ExitCode.SEND, True),
    (SendError("x", answer=HTTPAnswer(400, "ErrorInvalidRecipients")), ExitCode.SEND, False),
    (MaybeSentError("x"), ExitCode.SEND, False),
])
def test_exit_code_and_transience(error, exit_code, transient):
    assert (error.exit_code, error.transient) == (exit_code, transient)


def test_refused_recipients_keep_every_address():
    refused = ((("a@x.test", SMTPReply(550, "no", "RCPT TO"))), ("b@x.test", SMTPReply(451, "later", "RCPT TO")))
    error = RecipientsRefusedError("x", refused=refused)
    assert [a for a, _r in error.refused] == ["a@x.test", "b@x.test"]
    assert not error.transient  # one permanent refusal: retrying cannot deliver to all
    assert RecipientsRefusedError("x", refused=refused[1:]).transient


def test_retry_exceeded_keeps_the_last_error():
    last = SendError("x", reply=SMTPReply(451, "later", "DATA"))
    error = RetryExceededError("after 3", last=last, attempts=3)
    assert (error.exit_code, error.last, error.attempts, error.reply) == (ExitCode.RETRY_EXCEEDED, last, 3, last.reply)
