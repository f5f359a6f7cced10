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
from typing import BinaryIO, Final

from smail import files, redact
from smail.batch.columns import Column
from smail.batch.table import CELL_LIMIT, Row
from smail.errors import FileMissingError, ParamError, SMailError
from smail.i18n import _, ngettext

RESULT_COLUMNS: Final = ("row", "status", "exit_code", "message_id", "reply_or_error", "key", "time")
STATUS_SENDING: Final = "sending"    # the end of the message is going out now
NOT_SENT: Final = "not-sent"  # never tried: the batch stopped before this row
RESENT: Final = "resent"      # sent again by /RESEND_UNCERTAIN after a may-have-been-sent
# What a status means for a later run: a row recorded so was, or may have been, delivered (or
# waits in the outbox to be); a run without /BATCH_RESUME must not start the file over.
DELIVERIES: Final = frozenset({"sent", STATUS_SENDING, "may-have-been-sent", RESENT, "queued"})
KNOWN: Final = DELIVERIES | {"refused", "failed", NOT_SENT, "skipped", "dry-run"}
KEY_LENGTH: Final = 16


def row_key(columns: tuple[Column, ...], row: Row) -> str:
    """A short digest of a row's values by column name, so that /BATCH_RESUME notices a CSV
    that changed between runs (columns may be reordered)."""
    digest = hashlib.sha256()
    for name, value in sorted((c.name.casefold(), row.cells[c.index]) for c in columns):
        digest.update(f"{len(name)}:{name}{len(value)}:{value}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class Recorded:
    """The last line /BATCH_RESULT holds for a row."""

    status: str
    key: str
    message_id: str = ""


def _unreadable(path: Path, reason: object) -> ParamError:
    return ParamError(_("{path} cannot be read as a /BATCH_RESULT file: {reason}").format(path=path, reason=reason))


def _ends_cut(binary: BinaryIO) -> bool:
    """Whether a non-empty file's last line lacks its line end (a short write, a power cut)."""
    end = binary.seek(0, os.SEEK_END)
    if end == 0:
        return False
    binary.seek(end - 1)
    cut = binary.read(1) not in (b"\n", b"\r")
    binary.seek(0)
    return cut


def read_results(path: Path) -> dict[int, Recorded]:
    """Each row's last recorded status; a missing file records nothing (a first run).

    The file may have been opened and saved by Excel, which writes `;` where the regional
    settings say so: the separator is read from its first line. A file that has lines but
    none of SMail's is refused rather than read as "nothing sent yet" (that would resend).
    A last line cut short (a full disk, a power cut) counts only for what it surely says: an
    unknown status leaves the row's earlier line in force, and a cut key is not compared.
    """
    if not files.exists(path) or (not files.is_file(path) and not files.is_dir(path)):
        return {}  # a first run, or a device (NUL, /dev/null): nothing recorded
    recorded: dict[int, Recorded] = {}
    lines = 0
    last: tuple[int, Recorded | None] | None = None  # the last record read, and what it replaced
    with files.open_input(path) as binary:
        try:
            cut = _ends_cut(binary)
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
        try:
            first = text.readline(CELL_LIMIT)
            separator = ";" if first.count(";") > first.count(",") else ","
            csv.field_size_limit(CELL_LIMIT)
            for fields in csv.reader(itertools.chain([first], text), delimiter=separator):
                lines += any(field.strip() for field in fields)
                number = fields[0].strip() if fields else ""
                last = None
                if len(fields) < 6 or not (number.isascii() and number.isdigit()):
                    continue  # the header, or a line that is not SMail's
                row = int(number)
                last = (row, recorded.get(row))
                # A status retyped by hand or by a spreadsheet ("Sent", "SENT") still says sent.
                recorded[row] = Recorded(fields[1].strip().lower(), fields[5].strip(), fields[3].strip())
        except csv.Error as exc:
            raise _unreadable(path, exc) from None
        except OSError as exc:
            raise FileMissingError.unreadable(path, exc) from None
    if cut and last is not None:
        row, before = last
        status, key = recorded[row].status, recorded[row].key
        if status not in KNOWN:
            if before is None:
                del recorded[row]
            else:
                recorded[row] = before
        elif len(key) != KEY_LENGTH:
            recorded[row] = Recorded(status, "", recorded[row].message_id)
    for row, line in recorded.items():  # a whole line SMail did not write: whether it went out is unknown
        if line.status not in KNOWN:
            raise ParamError(_("{path} records row {row} as \"{status}\", which SMail never writes: correct the line (sent, refused, failed…) or remove it, so that the row is neither sent twice nor lost.").format(
                path=path, row=row, status=redact.shown(line.status[:40])))
    if lines > 1 and not recorded:
        raise _unreadable(path, _("none of its lines is a row SMail recorded"))
    return recorded


def refuse_restart(path: Path, recorded: dict[int, Recorded]) -> None:
    """A run without /BATCH_RESUME starts the results file over: refused (exit 2, before
    anything is sent) when the file records a row as sent, being sent, maybe sent or kept in
    the outbox, since the same rows would go out a second time."""
    delivered = sorted(row for row, line in recorded.items() if line.status in DELIVERIES)
    if delivered:
        raise ParamError(ngettext(
            "{path} records {count} row as sent or possibly sent (row {row}): running the batch again would send it twice. Add /BATCH_RESUME to send only what is left, or give /BATCH_RESULT another file to start a new batch.",
            "{path} records {count} rows as sent or possibly sent (row {row} first): running the batch again would send them twice. Add /BATCH_RESUME to send only what is left, or give /BATCH_RESULT another file to start a new batch.",
            len(delivered)).format(path=path, count=len(delivered), row=delivered[0]))


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
            elif stat.S_ISREG(info.st_mode) and self._ends_cut():
                self._write(b"\r\n")  # a cut last line: the next one must not be glued to it
        except OSError as exc:
            raise files.write_failure(self.path, exc) from None

    def _ends_cut(self) -> bool:
        with files.open_input(self.path) as binary:
            return _ends_cut(binary)

    def record(self, row: int, status: str, *, exit_code: int | str = "", message_id: str | None = None,
               text: str | None = None, key: str = "", sync: bool = False) -> None:
        """One line; OSError when it could not be written whole. `sync`: on disk when this
        returns (the `sending` line, which guards the row against a second send)."""
        # Masked before CSV quoting, and before blanks are folded (a secret may hold two spaces).
        shown = " ".join(redact.redact(text or "").split())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._write(_csv_line((str(row), status, str(exit_code), message_id or "", shown, key, stamp)))
        if sync:
            os.fsync(self.fd)

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
