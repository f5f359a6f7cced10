"""What a run reports outside the log: the console lines and /ERROR_FILE.

A report that cannot be printed or written never changes the outcome's exit code: a closed
or absent stdout (a scheduled task without console handles), a full disk, a device.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TextIO

from smail import files, redact
from smail.errors import reason
from smail.i18n import _


class ErrorFileOnSuccess(Enum):
    DELETE = "DELETE"
    EMPTY = "EMPTY"


def encodable(text: str) -> str:
    """`text` as any stream can encode it: the undecodable bytes of a file name or argument
    (PEP 383 surrogates) become U+FFFD, a lone surrogate of invalid UTF-16 (Windows) "?"."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate from invalid UTF-16 (Windows)
        return text.encode("utf-8", "replace").decode("utf-8")


class Console:
    """stdout and stderr, with every line redacted; a stream that fails is given up silently."""

    def __init__(self, stdout: TextIO | None, stderr: TextIO | None) -> None:
        self.stdout, self.stderr = stdout, stderr

    @staticmethod
    def _write(stream: TextIO | None, text: str) -> bool:
        if stream is None:
            return False
        text = encodable(redact.redact(text))
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            text = text.encode(encoding, errors="replace").decode(encoding, errors="replace")
            stream.write(text + ("" if text.endswith("\n") else "\n"))
            stream.flush()
        except (OSError, ValueError, LookupError):  # closed, broken pipe, full disk
            return False
        return True

    def out(self, text: str) -> None:
        self._write(self.stdout, text)

    def err(self, text: str) -> None:
        self._write(self.stderr, text)


class ErrorFile:
    """/ERROR_FILE: written on failure; deleted (or emptied) on success."""

    def __init__(self, path: Path | None, on_success: ErrorFileOnSuccess = ErrorFileOnSuccess.DELETE,
                 encoding: str = "utf-8") -> None:
        self.path = path
        self.on_success = on_success
        self.encoding = encoding

    def failure(self, text: str, console: Console) -> None:
        if self.path is None:
            return
        data = (encodable(redact.redact(text)) + "\n").encode(self.encoding, errors="replace")
        try:
            with files.open_output(self.path) as stream:
                stream.write(data)
        except (OSError, ValueError) as exc:  # ValueError: a path with a NUL character
            console.err(_("The error file {path} could not be written: {reason}").format(
                path=self.path, reason=reason(exc)))

    def success(self, console: Console) -> None:
        if self.path is None:
            return
        try:
            if self.on_success is ErrorFileOnSuccess.EMPTY:
                with files.open_output(self.path):
                    pass
            else:  # only a regular file SMail could have written: never a device or a folder
                files.remove_output(self.path)
        except (OSError, ValueError) as exc:
            console.err(_("The error file {path} could not be cleared: {reason}").format(
                path=self.path, reason=reason(exc)))
