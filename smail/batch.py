"""/BATCH: one message per row of a CSV file, over one session, each row sent at most once.

The CSV is streamed twice and never held: a first pass builds and renders every row's message
(addresses, files, templates) so that one bad row stops the run before anything leaves; the
second pass sends, producing each message only when the session asks for the next one.

Never twice, per row: /BATCH_RESULT gets a `sending` line just before the end of a message
goes out and the row's final line after its outcome, each with one write on a file opened
for appending, so that a run killed at any point leaves an exact record for /BATCH_RESUME.
"""

from __future__ import annotations

import codecs
import copy
import csv
import functools
import hashlib
import io
import itertools
import logging
import os
import re
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, TextIO

from smail import files, mime, redact
from smail.config import Values, message_settings
from smail.errors import (
    ExitCode,
    FileChangedError,
    FileMissingError,
    ParamError,
    SMailError,
)
from smail.i18n import _, ngettext
from smail.message import (
    Message,
    MessageSettings,
    html_to_text,
    load_message,
    parse_header,
    parse_mailbox,
    parse_mailboxes,
)
from smail.options import BY_NAME, OPTIONS, Option, RawOptions, convert, file_items, file_list
from smail.receipt import Outcome, Receipt, Status
from smail.transports import Job, Mode, ends_session, open_session, send_many

if TYPE_CHECKING:
    from jinja2 import Template

    from smail.config import Config
    from smail.output import Console

log = logging.getLogger("smail")

# Graph keeps up to 4 requests in flight per mailbox (Microsoft's throttling guidance: at most
# 4 concurrent requests per app and mailbox); an SMTP session sends one message at a time.
GRAPH_WORKERS: Final = 4
# A cell longer than this is refused: in practice an unclosed quote swallowing the file.
CELL_LIMIT: Final = 1024 * 1024
SEPARATORS: Final = (";", ",", "\t")
# Options a row may set, and those message_settings() reads besides them (default sender).
ROW_OPTIONS: Final = tuple(o for o in OPTIONS if o.per_row or o.name in ("SMTP_USERNAME", "GRAPH_SENDER"))
FILE_COLUMNS: Final = frozenset({"ATTACH", "INLINE"})
ADDRESS_COLUMNS: Final = frozenset({"TO", "CC", "BCC", "REPLY_TO"})
RESULT_COLUMNS: Final = ("row", "status", "exit_code", "message_id", "reply_or_error", "key", "time")
SENDING: Final = "sending"    # the end of the message is going out now
NOT_SENT: Final = "not-sent"  # never tried: the batch stopped before this row
ACCEPTED: Final = frozenset({Status.SENT, Status.SKIPPED, Status.DRY_RUN})
TEMPLATE_CACHE: Final = 32


def _at(err: SMailError, text: str) -> SMailError:
    """The same error (class, exit code, protocol facts) with a message naming where it arose."""
    located = copy.copy(err)
    located.message = text
    located.args = (text,)
    return located


def _in_row(err: SMailError, row: int, column: str | None = None) -> SMailError:
    if column is None:
        return _at(err, _("Row {row}: {error}").format(row=row, error=err.message))
    return _at(err, _("Row {row}, column {column}: {error}").format(row=row, column=column, error=err.message))


# -- the CSV file ------------------------------------------------------------------------------

def detect_encoding(stream: BinaryIO) -> tuple[str, str]:
    """(codec, error handler) like body files: a BOM (UTF-8, UTF-16 LE/BE), else valid UTF-8,
    else Windows-1252. Reads the stream through in blocks and rewinds it."""
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "replace"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "replace"
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        while block := stream.read(1 << 20):
            decoder.decode(block)
        decoder.decode(b"", final=True)
        encoding = "utf-8", "strict"
    except UnicodeDecodeError:
        encoding = "cp1252", files.WINDOWS_1252
    stream.seek(0)
    return encoding


def detect_separator(header: str) -> str:
    """The separator the header line uses most, outside quotes: `;` (French Excel), `,` or TAB."""
    counts = dict.fromkeys(SEPARATORS, 0)
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(SEPARATORS, key=lambda s: counts[s])
    return best if counts[best] else ","


@dataclass(frozen=True)
class Column:
    index: int
    name: str                  # as written in the header
    option: Option | None      # the option it sets per row; None for a template variable


def classify(names: list[str]) -> tuple[Column, ...]:
    """Header cells -> columns: an option a row may set, or a template variable (any case)."""
    columns: list[Column] = []
    seen: dict[str, str] = {}
    for index, raw_name in enumerate(names):
        name = raw_name.strip()
        if not name:
            continue  # an unnamed column (a trailing separator) is ignored
        if "\0" in name:
            raise ParamError(_("Row {row}, column {column}: {error}").format(
                row=1, column=index + 1, error=_("a NUL character is not allowed; is this a text file?")))
        key = name.upper().replace("-", "_")
        option = BY_NAME.get(key)
        if option is not None and not option.per_row:
            raise ParamError(_("Column {column}: /{name} cannot change from one row to another; give it on the command line.").format(
                column=name, name=option.name))
        identity = option.name if option is not None else name.casefold()
        if identity in seen:
            raise ParamError(_("Columns {first} and {second} name the same thing: keep one.").format(
                first=seen[identity], second=name))
        seen[identity] = name
        columns.append(Column(index, name, option))
    return tuple(columns)


@dataclass(frozen=True)
class Row:
    number: int                # as a spreadsheet numbers it: the header is row 1
    cells: tuple[str, ...]


class CSVFile:
    """One pass over the rows of a CSV file: decoded, its separator detected, never held whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._binary = files.open_input(path)
        try:
            info = os.fstat(self._binary.fileno())
            self.identity = (info.st_size, info.st_mtime_ns, info.st_dev, info.st_ino)
            self.encoding, errors = detect_encoding(self._binary)
            self._text: TextIO = io.TextIOWrapper(self._binary, encoding=self.encoding, errors=errors, newline="")
            first = self._read(self._text.readline)
            # Excel's "sep=;" line names the separator; Excel does not show it, so the header
            # is still row 1.
            named = re.fullmatch(r"sep=(.)\r?\n?", first, re.IGNORECASE)
            if named:
                first = self._read(self._text.readline)
            if not first.strip():
                raise ParamError(_("{path} is empty: its first line must name the columns.").format(path=path))
            self.separator = named.group(1) if named else detect_separator(first.splitlines()[0])
            csv.field_size_limit(CELL_LIMIT)
            self._reader = csv.reader(_chain(first, self._text), delimiter=self.separator, strict=True)
            self._number = 1
            header = self._next() or []
            self.header_width = len(header)
            self.columns = classify(header)
        except BaseException:
            self._binary.close()
            raise

    def _read(self, read: Callable[[], str]) -> str:
        try:
            return read()
        except OSError as exc:
            raise FileMissingError.unreadable(self.path, exc) from None

    def _next(self) -> list[str] | None:
        try:
            cells = next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise ParamError(_("Row {row} of {path} cannot be read as CSV: {reason}").format(
                row=self._number, path=self.path, reason=exc)) from None
        except OSError as exc:
            raise FileMissingError.unreadable(self.path, exc) from None
        return cells

    def rows(self) -> Iterator[Row]:
        """Data rows, numbered from 2; blank lines are skipped (but keep their numbers)."""
        while True:
            self._number += 1
            cells = self._next()
            if cells is None:
                return
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != self.header_width:
                raise ParamError(_("Row {row} of {path} has {count} cells, but its header names {columns} columns.").format(
                    row=self._number, path=self.path, count=len(cells), columns=self.header_width))
            for column in self.columns:
                if "\0" in cells[column.index]:
                    raise ParamError(_("Row {row}, column {column}: {error}").format(
                        row=self._number, column=column.name,
                        error=_("a NUL character is not allowed; is this a text file?")))
            yield Row(self._number, tuple(cells))

    def close(self) -> None:
        self._binary.close()

    def __enter__(self) -> CSVFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def files_named(path: Path) -> Iterator[str]:
    """The files the rows name (ATTACH, INLINE, BODY_FILE cells, as absolute paths or patterns),
    read tolerantly, for the check that no output of the run overwrites one of them; what
    cannot be read here is reported by the validation that follows."""
    folder = Path(os.path.abspath(path)).parent
    try:
        with CSVFile(path) as table:
            columns = [c for c in table.columns if c.option is not None and c.option.input_file]
            if not columns:
                return
            for row in table.rows():
                for column in columns:
                    for item in file_items(row.cells[column.index], base=folder):
                        yield str(Path(item) if Path(item).is_absolute() else folder / item)
    except (SMailError, ValueError, OSError):
        return


def row_key(columns: tuple[Column, ...], row: Row) -> str:
    """A short digest of a row's values by column name, so that /BATCH_RESUME notices a CSV
    that changed between runs (columns may be reordered)."""
    digest = hashlib.sha256()
    for name, value in sorted((c.name.casefold(), row.cells[c.index]) for c in columns):
        digest.update(f"{len(name)}:{name}{len(value)}:{value}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


# -- templates ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Compiled:
    template: Template
    variables: frozenset[str]   # the names it reads that it does not define itself


@functools.lru_cache(maxsize=2)
def _environment(html: bool) -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=html,
                                         keep_trailing_newline=True)


@functools.lru_cache(maxsize=TEMPLATE_CACHE)
def compile_template(text: str, html: bool) -> Compiled:
    """A sandboxed Jinja2 template; HTML is autoescaped. Raises jinja2.TemplateError."""
    from jinja2 import meta

    environment = _environment(html)
    tree = environment.parse(text)
    names = meta.find_undeclared_variables(tree) - set(environment.globals)
    return Compiled(environment.from_string(tree), frozenset(names))


def render_template(text: str, *, html: bool, variables: Mapping[str, str], row: int, template: str,
                    used: set[str] | None = None) -> str:
    """Render `text` with the row's variables (looked up in any case); every variable the
    template names must be a column, even in a branch this row does not take. The names it
    reads are added to `used`."""
    if not any(marker in text for marker in ("{{", "{%", "{#")):
        return text  # plain text: Jinja2 is not even loaded
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    try:
        compiled = compile_template(text, html)
        if used is not None:
            used.update(name.casefold() for name in compiled.variables)
        context: dict[str, str] = {}
        for name in sorted(compiled.variables):
            value = variables.get(name.casefold())
            if value is None:
                raise ParamError(_("Row {row}: {template} uses the variable {name}, which is not a column of the CSV file.").format(
                    row=row, template=template, name=name))
            context[name] = value
        return str(compiled.template.render(context))
    except SecurityError as exc:
        raise ParamError(_("Row {row}: {template} tries something the template sandbox forbids: {reason}").format(
            row=row, template=template, reason=exc)) from None
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        why = f"{exc.message or exc} (line {line})" if line else str(exc.message or exc)
        raise ParamError(_("Row {row}: {template} cannot be rendered: {reason}").format(
            row=row, template=template, reason=why)) from None
    except (RecursionError, MemoryError, OverflowError, ArithmeticError, TypeError, ValueError) as exc:
        raise ParamError(_("Row {row}: {template} cannot be rendered: {reason}").format(
            row=row, template=template, reason=exc)) from None


# -- one row -> one message --------------------------------------------------------------------

class RowBuilder:
    """A row's options over the command line's, then its message with its templates rendered."""

    def __init__(self, raw: RawOptions, mode: Mode, csv_path: Path, columns: tuple[Column, ...]) -> None:
        self.raw = raw
        self.mode = mode
        self.folder = Path(os.path.abspath(csv_path)).parent
        self.columns = columns
        self.used: set[str] = set()  # variables the templates read, in lower case

    def settings(self, row: Row) -> MessageSettings:
        row_raw = RawOptions(values=dict(self.raw.values), sources=dict(self.raw.sources))
        chosen_files: dict[str, tuple[Path, ...]] = {}
        for column in self.columns:
            option, cell = column.option, row.cells[column.index]
            if option is None or not cell.strip():
                continue  # an empty cell leaves the command line's value
            try:
                if option.name in FILE_COLUMNS:
                    chosen_files[option.name] = file_list(cell, base=self.folder)
                    row_raw.values[option.name] = []
                    continue
                if option.name == "BODY_FILE":
                    path = Path(cell.strip().strip('"'))
                    cell = str(path if path.is_absolute() else self.folder / path)
                convert(option, cell)
                if option.name in ADDRESS_COLUMNS:
                    parse_mailboxes([cell])
                elif option.name == "FROM_ADDR":
                    parse_mailbox(cell)
                elif option.name == "HEADER":
                    parse_header(cell)
            except SMailError as err:
                raise _in_row(err, row.number, column.name) from None
            row_raw.values[option.name] = [cell] if option.repeat else cell
            other = {"BODY": "BODY_FILE", "BODY_FILE": "BODY"}.get(option.name)
            if other is not None:  # a row's body replaces the command line's, whatever its kind
                row_raw.values.pop(other, None)
        try:
            settings = message_settings(Values(row_raw, ROW_OPTIONS), self.mode)
        except SMailError as err:
            raise _in_row(err, row.number) from None
        if chosen_files:
            settings = replace(settings, attachments=chosen_files.get("ATTACH", settings.attachments),
                               inline=chosen_files.get("INLINE", settings.inline))
            html = settings.body_file is not None and settings.body_file.suffix.lower() in (".htm", ".html")
            if settings.inline and not html:
                raise _in_row(ParamError(_("/INLINE needs an HTML body (/BODY_FILE ending in .htm or .html).")),
                              row.number, "INLINE")
        return settings

    def variables(self, row: Row) -> dict[str, str]:
        return {c.name.casefold(): row.cells[c.index] for c in self.columns}

    def message(self, row: Row) -> Message:
        """The row's message, templates rendered; ParamError/FileMissingError naming the row."""
        settings = self.settings(row)
        variables = self.variables(row)
        subject = render_template(settings.subject, html=False, variables=variables, row=row.number,
                                  template="/SUBJECT", used=self.used)
        try:
            convert(BY_NAME["SUBJECT"], subject)  # no line break may come in through a variable
            message = load_message(replace(settings, subject=subject))
        except SMailError as err:
            raise _in_row(err, row.number) from None
        template = str(settings.body_file) if settings.body_file is not None else "/BODY"
        body = render_template(message.body, html=message.html, variables=variables, row=row.number,
                               template=template, used=self.used)
        body = body.replace("\r\n", "\n").replace("\r", "\n")
        return replace(message, body=body, text_alternative=html_to_text(body) if message.html else None)


# -- /BATCH_RESULT ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    """The last line /BATCH_RESULT holds for a row."""

    status: str
    key: str


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
                recorded[int(number)] = Recorded(fields[1].strip(), fields[5].strip())
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


# -- the run's accounts ------------------------------------------------------------------------

def batch_exit_code(accepted: int, failures: Counter[ExitCode]) -> ExitCode:
    """0 when every row was accepted; 11 when some were; else the failures' own code (the most
    frequent one, the first seen on a tie)."""
    if not sum(failures.values()):
        return ExitCode.OK
    if accepted:
        return ExitCode.PARTIAL
    return failures.most_common(1)[0][0]


@dataclass
class Tally:
    """What happened to the rows, counted as they finish."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: Counter[ExitCode] = field(default_factory=Counter)
    accepted: int = 0

    def add(self, status: Status, exit_code: ExitCode, *, not_sent: bool = False) -> None:
        self.counts[NOT_SENT if not_sent else status.value] += 1
        if status in ACCEPTED:
            self.accepted += 1
        else:
            self.failures[exit_code] += 1

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def exit_code(self) -> ExitCode:
        return batch_exit_code(self.accepted, self.failures)

    def counts_text(self) -> str:
        phrases: dict[str, Callable[[int], str]] = {
            Status.SENT.value: lambda n: ngettext("{n} sent", "{n} sent", n),
            Status.SKIPPED.value: lambda n: ngettext("{n} skipped (already sent)", "{n} skipped (already sent)", n),
            Status.REFUSED.value: lambda n: ngettext("{n} refused", "{n} refused", n),
            Status.FAILED.value: lambda n: ngettext("{n} failed", "{n} failed", n),
            Status.MAYBE_SENT.value: lambda n: ngettext("{n} may have been sent", "{n} may have been sent", n),
            Status.QUEUED.value: lambda n: ngettext("{n} kept in the outbox", "{n} kept in the outbox", n),
            NOT_SENT: lambda n: ngettext("{n} not sent", "{n} not sent", n),
        }
        parts = [phrase(self.counts[status]).format(n=self.counts[status])
                 for status, phrase in phrases.items() if self.counts[status]]
        return ", ".join(parts)


class ProgressBar:
    """Rows done / total, rate and time left, on one line of a terminal."""

    def __init__(self, stream: TextIO, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.total, self.clock = stream, total, clock
        self.started = clock()
        self.shown = 0.0

    def update(self, done: int, *, final: bool = False) -> None:
        now = self.clock()
        if not final and now - self.shown < 0.2 and done < self.total:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        left = int((self.total - done) / rate) if rate > 0 else 0
        width = 20
        filled = width * done // self.total if self.total else width
        eta = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        text = _("{done}/{total} rows, {rate:.1f}/s, {eta} left").format(
            done=done, total=self.total, rate=rate, eta=eta)
        try:
            self.stream.write(f"\r[{'#' * filled:<{width}}] {text}  ")
            if final:
                self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _terminal(stream: TextIO | None) -> TextIO | None:
    try:
        return stream if stream is not None and stream.isatty() else None
    except (OSError, ValueError):
        return None


# -- the run -----------------------------------------------------------------------------------

@dataclass
class _Pending:
    row: Row
    key: str
    committed: bool = False


class Batch:
    """One /BATCH run: validate every row, then send them over one session."""

    def __init__(self, config: Config, raw: RawOptions, console: Console, *, workers: int | None = None) -> None:
        assert config.batch is not None
        self.config, self.raw, self.console = config, raw, console
        self.settings = config.batch
        self.workers = workers or (GRAPH_WORKERS if config.mode is Mode.GRAPH else 1)
        self.dry_run = config.output.dry_run
        self.save_folder = config.output.save_eml
        self.keep_receipts = raw.given("RESULT_FILE")
        self.receipts: list[Receipt] = []
        self.tally = Tally()
        self.recorded: dict[int, Recorded] = {}
        self.results: ResultsFile | None = None
        self.progress: ProgressBar | None = None
        self.pending: dict[int, _Pending] = {}
        self.stop_error: SMailError | None = None   # why the batch stopped before its end
        self.crash: Exception | None = None   # a bug in a worker, raised again once the session is closed
        self.columns: tuple[Column, ...] = ()
        self.total = 0

    # -- the passes ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        rows = self.settings.rows
        try:
            if self.settings.results is not None and not self.dry_run:
                self.results = ResultsFile(self.settings.results)  # locked before it is read
            if self.settings.resume and self.settings.results is not None:
                self.recorded = read_results(self.settings.results)
            identity = self._validate(rows)
            with CSVFile(rows) as table:
                if table.identity != identity:
                    raise FileChangedError(_("{path} changed while SMail was checking it: nothing was sent. Run SMail again.").format(
                        path=rows))
                if self.save_folder is not None:
                    try:
                        self.save_folder.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise files.write_failure(self.save_folder, exc) from None
                if self.results is not None:
                    self.results.start(truncate=not self.settings.resume)
                terminal = _terminal(self.console.stderr)
                self.progress = ProgressBar(terminal, self.total) if terminal is not None else None
                self._send(table)
        finally:
            if self.results is not None:
                self.results.close()
        if self.progress is not None:
            self.progress.update(self.tally.done, final=True)
        if self.crash is not None:
            raise self.crash
        return self._outcome()

    def _validate(self, path: Path) -> tuple[int, int, int, int]:
        """Build and render every row's message; the first bad row stops the run (exit 2 or 8)."""
        with CSVFile(path) as table:
            self.columns = table.columns
            builder = RowBuilder(self.raw, self.config.mode, path, table.columns)
            last = 1
            for row in table.rows():
                self.total += 1
                last = row.number
                if self._earlier(row, row_key(self.columns, row)) is not None:
                    continue  # handled by an earlier run: its files may be gone since
                mime.render(builder.message(row))
            for number, recorded in self.recorded.items():
                if number > last and recorded.status in (Status.SENT.value, SENDING, Status.MAYBE_SENT.value):
                    raise ParamError(_("{results} records row {row} as sent, but {path} has no such row: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                        results=self.settings.results, row=number, path=path))
            self._warn_unused(builder)
            return table.identity

    def _earlier(self, row: Row, key: str) -> Status | None:
        """What an earlier run (/BATCH_RESUME) did with this row, when it must not be sent again."""
        recorded = self.recorded.get(row.number)
        if recorded is None:
            return None
        status = {Status.SENT.value: Status.SKIPPED, SENDING: Status.MAYBE_SENT,
                  Status.MAYBE_SENT.value: Status.MAYBE_SENT, Status.QUEUED.value: Status.QUEUED}.get(recorded.status)
        if status is not None and recorded.key and recorded.key != key:
            raise ParamError(_("Row {row} of {path} is not the row {results} records as {status}: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                row=row.number, path=self.settings.rows, results=self.settings.results, status=recorded.status))
        return status

    def _warn_unused(self, builder: RowBuilder) -> None:
        """A column that is no option and that no template reads is probably a typo."""
        import difflib

        for column in self.columns:
            if column.option is None and column.name.casefold() not in builder.used:
                close = difflib.get_close_matches(column.name.upper(), [o.name for o in OPTIONS if o.per_row], n=1)
                if close:
                    log.warning(_("Column {column} is neither an option nor used by the templates. Did you mean {suggestion}?").format(
                        column=column.name, suggestion=close[0]))

    def _send(self, table: CSVFile) -> None:
        builder = RowBuilder(self.raw, self.config.mode, table.path, table.columns)
        rows = table.rows()
        if self.dry_run:
            for row in rows:
                self._dry_row(builder, row)
            return
        session = open_session(self.config)
        try:
            completed = send_many(session, self._jobs(builder, rows), self.config.retry, on_done=self._done,
                                  per_second=self.settings.per_second, workers=self.workers)
        finally:
            session.close()
        self._settle_pending()
        if not completed and self.stop_error is None:
            self.stop_error = SMailError(_("the connection failed"))
        if self.stop_error is not None and self.crash is None:
            try:
                for row in rows:
                    self._not_sent(row, builder)
            except SMailError as err:  # the rest of the file cannot be read any more
                log.error(err.message)

    # -- rows ----------------------------------------------------------------------------------

    def _dry_row(self, builder: RowBuilder, row: Row) -> None:
        key = row_key(self.columns, row)
        earlier = self._earlier(row, key)
        if earlier is not None:
            self._finish_earlier(row, key, earlier)
            return
        message = builder.message(row)
        rendered = mime.render(message)
        self._save(row, rendered)
        self._finish(row, key, Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                       accepted=tuple(b.address for b in message.recipients)))

    def _jobs(self, builder: RowBuilder, rows: Iterator[Row]) -> Iterator[Job]:
        """The rows to send, each built when the session asks for it (under send_many's lock).
        After a stop, the rows not yet taken stay in `rows` for _send() to report."""
        while self.stop_error is None and self.crash is None:
            try:
                row = next(rows, None)
                if row is None:
                    return
                key = row_key(self.columns, row)
                earlier = self._earlier(row, key)
                if earlier is not None:
                    self._finish_earlier(row, key, earlier)
                    continue
                try:
                    message = builder.message(row)
                    rendered = mime.render(message)
                    self._save(row, rendered)
                except SMailError as err:  # a file that changed or vanished since the check
                    self._finish(row, key, Receipt.from_error(err))
                    if err.exit_code is ExitCode.ERROR:  # /SAVE_EML cannot be written: stop
                        self.stop_error = err
                    continue
                self.pending[row.number] = pending = _Pending(row, key)
                yield Job(key=pending, message=message, rendered=rendered,
                          on_commit=functools.partial(self._commit, pending, message.message_id))
            except SMailError as err:
                self.stop_error = err
                return
            except Exception as exc:  # a bug: stop there, reported once the session is closed
                self.crash = exc
                return

    def _commit(self, pending: _Pending, message_id: str) -> None:
        """Just before the end of the message goes out: the row is recorded as being sent."""
        pending.committed = True
        if self.results is None:
            return
        try:
            self.results.record(pending.row.number, SENDING, message_id=message_id, key=pending.key)
        except OSError as exc:  # unrecorded, the message must not go out: abort it
            error = files.write_failure(self.results.path, exc)
            self.stop_error = error
            raise error from None

    def _done(self, job: Job, receipt: Receipt) -> None:
        """A row's outcome (send_many calls this under its lock)."""
        pending = job.key
        assert isinstance(pending, _Pending)
        self.pending.pop(pending.row.number, None)
        try:
            if receipt.status is Status.FAILED and self.config.outbox is not None:
                receipt = self._keep(job, receipt)
            self._finish(pending.row, pending.key, receipt)
            if ends_session(receipt) and self.stop_error is None:
                self.stop_error = receipt.failure or SMailError(receipt.error or "")
        except Exception as exc:
            self.crash = exc

    def _keep(self, job: Job, receipt: Receipt) -> Receipt:
        """/OUTBOX: a row that failed for a transient reason waits there for /FLUSH."""
        from smail import outbox

        assert self.config.outbox is not None
        kept = outbox.keep(self.config.outbox, job.message, job.rendered, receipt)
        if kept.receipts and kept.receipts[-1].status is Status.QUEUED:
            return replace(kept.receipts[-1], error=kept.text, exit_code=ExitCode.QUEUED)
        log.warning(kept.text)
        return receipt

    def _settle_pending(self) -> None:
        """Rows handed to the session that never came back (a worker died on a bug)."""
        for pending in list(self.pending.values()):
            status = Status.MAYBE_SENT if pending.committed else Status.FAILED
            self._finish(pending.row, pending.key, Receipt(
                status=status, exit_code=ExitCode.SEND if pending.committed else ExitCode.INTERNAL,
                error=_("The row's outcome is unknown (an internal error); check before sending it again.")))
        self.pending.clear()

    def _not_sent(self, row: Row, builder: RowBuilder) -> None:
        key = row_key(self.columns, row)
        try:
            earlier = self._earlier(row, key)
        except SMailError:
            earlier = None
        if earlier is not None:
            self._finish_earlier(row, key, earlier)
            return
        assert self.stop_error is not None
        text = _("Not sent: the batch stopped on an earlier failure ({error}).").format(error=self.stop_error.message)
        failed = Receipt(status=Status.FAILED, exit_code=self.stop_error.exit_code, error=text)
        if self.config.outbox is not None and Receipt.from_error(self.stop_error).status is Status.FAILED:
            # The server is down for every row, not only the one that found out: with /OUTBOX,
            # the rest of the batch waits there for /FLUSH instead of being lost.
            message = builder.message(row)
            rendered = mime.render(message)
            failed = failed.with_facts(message_id=message.message_id, failure=self.stop_error)
            self._finish(row, key, self._keep(Job(key=None, message=message, rendered=rendered), failed))
            return
        self._finish(row, key, failed, not_sent=True)

    def _finish_earlier(self, row: Row, key: str, status: Status) -> None:
        """A row an earlier run handled: never sent again."""
        if status is Status.SKIPPED:
            receipt = Receipt(status=status, summary=_("already sent by an earlier run"))
        elif status is Status.QUEUED:
            receipt = Receipt(status=status, exit_code=ExitCode.QUEUED,
                              error=_("kept in the outbox by an earlier run"))
        else:
            receipt = Receipt(status=status, exit_code=ExitCode.SEND, error=_(
                "An earlier run was sending this row when it stopped: it may have been delivered. Check before sending it again."))
        write = status is Status.MAYBE_SENT and self.recorded[row.number].status == SENDING
        self._finish(row, key, receipt, write=write)

    def _finish(self, row: Row, key: str, receipt: Receipt, *, not_sent: bool = False, write: bool = True) -> None:
        receipt = receipt.with_facts(source={**receipt.source, "row": row.number})
        self.tally.add(receipt.status, receipt.exit_code, not_sent=not_sent)
        if receipt.status in ACCEPTED:
            log.info(_("Row {row}: {summary}").format(row=row.number, summary=receipt.summary))
        else:
            log.warning(_("Row {row}: {error}").format(row=row.number, error=receipt.error))
        if write and self.results is not None:
            status = NOT_SENT if not_sent else receipt.status.value
            text = receipt.reply if receipt.status is Status.SENT else receipt.error
            try:
                self.results.record(row.number, status, exit_code=int(receipt.exit_code),
                                    message_id=receipt.message_id, text=text, key=key)
            except OSError as exc:
                if self.stop_error is None:
                    self.stop_error = files.write_failure(self.results.path, exc)
        if self.keep_receipts:
            self.receipts.append(receipt.with_facts(failure=None))
        if self.progress is not None:
            self.progress.update(self.tally.done)

    def _save(self, row: Row, rendered: mime.Rendered) -> None:
        """/SAVE_EML=folder: row-0002.eml for row 2 (exit 1 when it cannot be written)."""
        if self.save_folder is None:
            return
        path = self.save_folder / f"row-{row.number:04d}.eml"
        try:
            with files.open_output(path) as stream:
                rendered.write_to(stream)
        except (OSError, ValueError) as exc:
            raise files.write_failure(path, exc) from None

    # -- the outcome ---------------------------------------------------------------------------

    def _outcome(self) -> Outcome:
        tally = self.tally
        code = tally.exit_code()
        counts = tally.counts_text()
        results = self.settings.results
        if self.dry_run:
            checked = tally.counts[Status.DRY_RUN.value]
            if self.save_folder is not None:
                text = ngettext("Dry run: {n} message is valid and saved in {folder}; nothing was sent.",
                                "Dry run: {n} messages are valid and saved in {folder}; nothing was sent.",
                                checked).format(n=checked, folder=self.save_folder)
            else:
                text = ngettext("Dry run: {n} message is valid; nothing was sent.",
                                "Dry run: {n} messages are valid; nothing was sent.", checked).format(n=checked)
        elif not tally.done:
            text = _("{path} has no rows: nothing was sent.").format(path=self.settings.rows)
        elif self.stop_error is not None:
            error = self.stop_error.message
            text = (_("Batch stopped: {error} ({counts}; see {path}).").format(error=error, counts=counts, path=results)
                    if results else _("Batch stopped: {error} ({counts}).").format(error=error, counts=counts))
        else:
            text = (_("Batch: {counts}; see {path}.").format(counts=counts, path=results) if results
                    else _("Batch: {counts}.").format(counts=counts))
        if self.stop_error is not None and code is ExitCode.OK:  # only skipped rows were left
            code = self.stop_error.exit_code
        return Outcome(code, text, self.receipts, None if code is ExitCode.OK else SMailError(text))


def run(config: Config, raw: RawOptions, console: Console, *, workers: int | None = None) -> Outcome:
    """Send one message per row of /BATCH; `workers` overrides the mode's messages in flight."""
    return Batch(config, raw, console, workers=workers).run()
