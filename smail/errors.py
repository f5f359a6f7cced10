"""Exit codes (mirroring SPEC.md) and the exception tree that carries them.

Every failure is an SMailError whose class decides the exit code and, with the protocol facts
it carries (an SMTP reply, an HTTP answer), whether retrying may help.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, unique
from typing import ClassVar


@unique
class ExitCode(IntEnum):
    """Process exit codes; names and numbers follow SPEC.md's table."""

    OK = 0
    ERROR = 1
    PARAM = 2
    CONNECT = 3
    AUTH = 4
    SEND = 5
    RETRY_EXCEEDED = 6
    INTERNAL = 7
    FILE_NOT_FOUND = 8
    INVALID_MODE = 9
    QUEUED = 10
    PARTIAL = 11


_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class SMTPReply:
    """What an SMTP server answered to one command (RFC 5321 section 4.2)."""

    code: int
    text: str
    command: str

    @property
    def enhanced_status(self) -> str | None:
        """The RFC 3463 enhanced status code at the start of the text (`5.7.1`), if any."""
        match = _ENHANCED.match(self.text)
        return match.group(1) if match else None

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(frozen=True)
class HTTPAnswer:
    """What Microsoft Graph or the identity platform answered: status, error code, request id."""

    status: int
    error_code: str = ""
    request_id: str = ""


class SMailError(Exception):
    """A failure the user must hear about; the message is already translated."""

    exit_code: ClassVar[ExitCode] = ExitCode.ERROR

    def __init__(self, message: str, *, retry_after: float | None = None,
                 reply: SMTPReply | None = None, answer: HTTPAnswer | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.reply = reply
        self.answer = answer

    @property
    def transient(self) -> bool:
        """Whether another attempt may succeed; decided by the class and the protocol code."""
        return False


def reason(exc: BaseException) -> object:
    """What the OS said ("Permission denied"), else the exception itself."""
    return getattr(exc, "strerror", None) or exc


class ParamError(SMailError):
    exit_code = ExitCode.PARAM

    @classmethod
    def invalid_value(cls, name: str, value: str, reason: object) -> ParamError:
        """`value` (as it may be shown: masked, one line) refused for the option /`name`."""
        from smail.i18n import _

        return cls(_("Invalid value \"{value}\" for /{name}: {reason}.").format(
            value=value, name=name, reason=reason))


def one_of(values: str) -> str:
    """Why a value is refused when only the listed ones are accepted."""
    from smail.i18n import _

    return _("expected one of {values}").format(values=values)


class InvalidModeError(SMailError):
    exit_code = ExitCode.INVALID_MODE


class FileMissingError(SMailError):
    """An input file that is missing, unreadable, not a regular file or too large (exit 8)."""

    exit_code = ExitCode.FILE_NOT_FOUND

    @classmethod
    def not_found(cls, path: object) -> FileMissingError:
        """A named input file that does not exist (exit 8)."""
        from smail.i18n import _

        return cls(_("File not found: {path}").format(path=path))

    @classmethod
    def unreadable(cls, path: object, exc: OSError) -> FileMissingError:
        """A named input file that is missing or cannot be read (exit 8)."""
        from smail.i18n import _

        if isinstance(exc, FileNotFoundError):
            return cls.not_found(path)
        return cls(_("Cannot read {path}: {reason}").format(path=path, reason=reason(exc)))


class FileChangedError(FileMissingError):
    """A file changed while it was being sent: the message was abandoned before its end."""


class ConnectError(SMailError):
    """Network failure: refused, reset, silent or dropped connection (retrying may help)."""

    exit_code = ExitCode.CONNECT

    @property
    def transient(self) -> bool:
        return self.reply is None or self.reply.temporary


class DroppedError(ConnectError):
    """The server closed a connection it had opened while one message's envelope or content
    was going out, before its end: that message was not delivered, and the next one may go
    through a new connection (exit 3)."""


class _ConnectErrorSaidTemporary(ConnectError):
    """A connection failure retried only when what failed said it was temporary."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary

    @property
    def transient(self) -> bool:
        return self.temporary


class NameResolutionError(_ConnectErrorSaidTemporary):
    """The server's name could not be resolved; only a temporary DNS failure is retried."""


class SetupConnectError(ConnectError):
    """A connection that cannot succeed as configured (proxy refused, invalid address): exit 3,
    not retried."""

    @property
    def transient(self) -> bool:
        return False


class ProxyError(_ConnectErrorSaidTemporary):
    """The proxy refused, could not be reached or stalled (exit 3); retried only when its answer
    says the failure is temporary (a 502, SOCKS "host unreachable", no answer in time)."""


class TLSError(SetupConnectError):
    """TLS handshake, certificate or STARTTLS failure: exit 3, retrying cannot help."""


class AuthError(SMailError):
    """Authentication refused; an SMTP 4xx (454) is temporary."""

    exit_code = ExitCode.AUTH

    @property
    def transient(self) -> bool:
        return self.reply is not None and self.reply.temporary


class IdentityUnavailableError(AuthError):
    """The identity platform answered 429/5xx or a temporary AADSTS code: retried."""

    @property
    def transient(self) -> bool:
        return True


def retryable_status(status: int) -> bool:
    """Whether another attempt may succeed after this HTTP status (SPEC.md: 429 and 5xx).

    Retryable does not mean "not carried out": a send to Graph answered with a 5xx other than
    503 may still have been delivered, and the Graph session reports it as may-have-been-sent
    instead of retrying it (graph.NOT_SENT_STATUS)."""
    return status == 429 or status >= 500


class SendError(SMailError):
    """The server or Graph refused the message; a 4xx reply or a 429/5xx answer is temporary."""

    exit_code = ExitCode.SEND

    @property
    def transient(self) -> bool:
        if self.reply is not None:
            return self.reply.temporary
        return self.answer is not None and retryable_status(self.answer.status)


class RecipientsRefusedError(SendError):
    """RCPT TO refused for some recipients; the transaction was reset, nothing was sent."""

    def __init__(self, message: str, *, refused: tuple[tuple[str, SMTPReply], ...]) -> None:
        super().__init__(message, reply=refused[0][1] if refused else None)
        self.refused = refused

    @property
    def transient(self) -> bool:
        return all(reply.temporary for _address, reply in self.refused)


class MaybeSentError(SendError):
    """The end of the message went out but no answer came: it may have been delivered.

    Never retried, never queued (SPEC.md, "Never twice").
    """

    @property
    def transient(self) -> bool:
        return False


class InterruptedAfterCommitError(MaybeSentError):
    """Interrupted (Ctrl+C) while waiting for the answer to the end of a message: it may have
    been sent, and nothing more is sent."""


class RetryExceededError(SMailError):
    exit_code = ExitCode.RETRY_EXCEEDED

    def __init__(self, message: str, *, last: SMailError, attempts: int) -> None:
        super().__init__(message, reply=last.reply, answer=last.answer)
        self.last = last
        self.attempts = attempts


class InternalError(SMailError):
    """A bug: carries the traceback text for the log, never for the console."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details

    @classmethod
    def from_current(cls, message: str) -> InternalError:
        """Wrap the exception being handled."""
        import traceback

        return cls(message, traceback.format_exc())
