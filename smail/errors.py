"""Exit codes (mirroring SPEC.md) and the exception tree that carries them."""

from __future__ import annotations

import traceback
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


class SMailError(Exception):
    """A failure the user must hear about; the message is already translated."""

    exit_code: ClassVar[ExitCode] = ExitCode.ERROR
    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if transient is not None:
            self.transient = transient
        self.retry_after = retry_after


def reason(exc: BaseException) -> object:
    """What the OS said ("Permission denied"), else the exception itself."""
    return getattr(exc, "strerror", None) or exc


class ParamError(SMailError):
    exit_code = ExitCode.PARAM


class InvalidModeError(SMailError):
    exit_code = ExitCode.INVALID_MODE


class FileMissingError(SMailError):
    exit_code = ExitCode.FILE_NOT_FOUND

    @classmethod
    def unreadable(cls, path: object, exc: OSError) -> FileMissingError:
        """A named input file that is missing or cannot be read (exit 8)."""
        from smail.i18n import _

        if isinstance(exc, FileNotFoundError):
            return cls(_("File not found: {path}").format(path=path))
        return cls(_("Cannot read {path}: {reason}").format(path=path, reason=reason(exc)))


class ConnectError(SMailError):
    """Network failure: refused, reset, silent or dropped connection (retrying may help)."""

    exit_code = ExitCode.CONNECT
    transient = True


class TLSError(ConnectError):
    """TLS handshake, certificate or STARTTLS failure: exit 3, retrying cannot help."""

    transient = False


class AuthError(SMailError):
    exit_code = ExitCode.AUTH


class SendError(SMailError):
    """The server or Graph refused the message."""

    exit_code = ExitCode.SEND


class RetryExceededError(SMailError):
    exit_code = ExitCode.RETRY_EXCEEDED


class InternalError(SMailError):
    """A bug: carries the traceback text for the log, never for the console."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details

    @classmethod
    def from_current(cls, message: str) -> InternalError:
        """Wrap the exception being handled."""
        return cls(message, traceback.format_exc())
