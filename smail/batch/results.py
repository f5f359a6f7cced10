"""/BATCH_RESULT: one line per event, written whole, and what it records for /BATCH_RESUME."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from smail import files, redact
from smail.batch.columns import Column
from smail.batch.table import CELL_LIMIT, Row
from smail.errors import FileMissingError, ParamError, SMailError
from smail.i18n import _

RESULT_COLUMNS: Final = ("row", "status", "exit_code", "message_id", "reply_or_error", "key", "time")
SENDING: Final = "sending"    # the end of the message is going out now
NOT_SENT: Final = "not-sent"  # never tried: the batch stopped before this row


def row_key(columns: tuple[Column, ...], row: Row) -> str:
    """A short digest of a row's values by column name, so that /BATCH_RESUME notices a CSV
    that changed between runs (columns may be reordered)."""
    digest = hashlib.sha256()
    for name, value in sorted((c.name.casefold(), row.cells[c.index]) for c in columns):
        digest.update(f"{len(name)}:{name}{len(value)}:{value}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]



@dataclass(frozen=True)
class Recorded:
    """The last line /BATCH_RESULT holds for a row."""

    status: str
    key: str
    message_id: str = ""


def read_results(path: Path) -> dict[int, Recorded]:
    """Each row's last recorded status; a missing file records nothing (a first run).

    The file may have been opened and saved by Excel, which writes `;` where the regional
    settings say so: the separator is read from its first line. A file that has lines but
    none of SMail's is refused rather than read as "nothing sent yet" (that would resend).
    """
    if not files.exists(path):
        return {}
    recorded: dict[int, Recorded] = {}
    lines = 0
    with files.open_input(path) as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
        try:
            first = text.readline()
            separator = ";" if first.count(";") > first.count(",") else ","
            csv.field_size_limit(CELL_LIMIT)
            for fields in csv.reader(itertools.chain([first], text), delimiter=separator):
                lines += any(field.strip() for field in fields)
                number = fields[0].strip() if fields else ""
                if len(fields) < 6 or not (number.isascii() and number.isdigit()):
                    continue  # the header, or a line that is not SMail's
                recorded[int(number)] = Recorded(fields[1].strip(), fields[5].strip(), fields[3].strip())
        except csv.Error as exc:
            raise ParamError(_("{path} cannot be read as a /BATCH_RESULT file: {reason}").format(
                path=path, reason=exc)) from None
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
    if lines > 1 and not recorded:
        raise ParamError(_("{path} cannot be read as a /BATCH_RESULT file: {reason}").format(
            path=path, reason=_("none of its lines is a row SMail recorded")))
    return recorded


class ResultsFile:
    """/BATCH_RESULT: one CSV line per event, each written whole with one write (O_APPEND)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._stream = files.open_output(path, append=True)
        except (OSError, ValueError) as exc:
            raise files.write_failure(path, exc) from None
        self.fd = self._stream.fileno()
        if not files.lock_file(self.fd):
            self._stream.close()
            raise SMailError(_("{path} is being written by another SMail run: two runs of one batch would send its rows twice.").format(
                path=path))
        self._lock = threading.Lock()

    def start(self, *, truncate: bool) -> None:
        """Truncate (a new run) and write the header when the file is empty."""
        try:
            info = os.fstat(self.fd)
            if truncate and stat.S_ISREG(info.st_mode):
                os.ftruncate(self.fd, 0)
                info = os.fstat(self.fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                self._write(codecs.BOM_UTF8 + _csv_line(RESULT_COLUMNS))  # Excel reads UTF-8 with it
        except OSError as exc:
            raise files.write_failure(self.path, exc) from None

    def record(self, row: int, status: str, *, exit_code: int | str = "", message_id: str | None = None,
               text: str | None = None, key: str = "") -> None:
        """One line; OSError when it could not be written whole."""
        shown = redact.redact(" ".join((text or "").split()))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write(_csv_line((str(row), status, str(exit_code), message_id or "", shown, key, stamp)))

    def _write(self, data: bytes) -> None:
        with self._lock:
            written = os.write(self.fd, data)
        if written != len(data):
            raise OSError(28, os.strerror(28))  # a short write: the disk is full

    def close(self) -> None:
        self._stream.close()


def _csv_line(values: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode("utf-8", errors="backslashreplace")
