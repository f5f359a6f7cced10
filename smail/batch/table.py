"""The rows of a /BATCH CSV file: its encoding and separator detected, read in one pass, never held."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from smail import files
from smail.batch.columns import classify, nul_in
from smail.converters import file_items
from smail.errors import FileMissingError, ParamError, SMailError
from smail.i18n import _

# A cell longer than this is refused: in practice an unclosed quote swallowing the file.
CELL_LIMIT: Final = 1024 * 1024
SEPARATORS: Final = (";", ",", "\t")
# The header line, and Excel's sep= line before it, are read no further than this.
HEADER_LIMIT: Final = 1024 * 1024


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
            self.encoding, errors = files.text_encoding(self._binary)
            self._text: TextIO = io.TextIOWrapper(self._binary, encoding=self.encoding, errors=errors, newline="")
            first = self._first_line()
            # Excel's "sep=;" line names the separator; Excel does not show it, so the header
            # is still row 1.
            named = re.fullmatch(r"sep=(.)\r?\n?", first, re.IGNORECASE)
            if named:
                first = self._first_line()
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

    def _first_line(self) -> str:
        """A line before the rows, read no further than HEADER_LIMIT: a file that is one huge
        line (not a CSV file, or an unclosed quote) is refused at once."""
        line = self._read(lambda: self._text.readline(HEADER_LIMIT + 1))
        if len(line) > HEADER_LIMIT:
            raise ParamError(_("The first line of {path} is longer than {limit} MB: it cannot be the header of a CSV file.").format(
                path=self.path, limit=HEADER_LIMIT // (1024 * 1024)))
        return line

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
                    raise nul_in(row=self._number, column=column.name)
            yield Row(self._number, tuple(cells))

    def changed(self) -> bool:
        """Whether the file was written to since it was opened (an export still going on):
        what is read from it now may not be what was checked."""
        try:
            info = os.fstat(self._binary.fileno())
        except OSError:
            return True
        return (info.st_size, info.st_mtime_ns) != self.identity[:2]

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
