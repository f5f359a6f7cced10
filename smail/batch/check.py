"""The first pass of a /BATCH run: every row's message built and rendered before anything is
sent, so that one bad row stops the run (exit 2 or 8) with nothing gone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smail import mime
from smail.batch.columns import Column
from smail.batch.earlier import EarlierRuns
from smail.batch.results import row_key
from smail.batch.rows import RowBuilder
from smail.batch.saved import SaveFolder
from smail.batch.table import CSVFile
from smail.i18n import _
from smail.options import OPTIONS
from smail.settings import BatchSettings

log = logging.getLogger("smail")


@dataclass(frozen=True)
class Checked:
    """What the check found: the file as it was read, its columns and its number of rows."""

    identity: tuple[int, int, int, int]
    columns: tuple[Column, ...]
    total: int


def check_rows(settings: BatchSettings, builder_for: Callable[[Path, tuple[Column, ...]], RowBuilder], *,
               earlier: EarlierRuns, saved: SaveFolder | None) -> Checked:
    """Build and render every row's message; the first bad row stops the run (exit 2 or 8)."""
    path = settings.rows
    with CSVFile(path) as table:
        builder = builder_for(path, table.columns)
        total, last = 0, 1
        for row in table.rows():
            total += 1
            last = row.number
            if earlier.status(row, row_key(table.columns, row)) is not None:
                continue  # handled by an earlier run: its files may be gone since
            values = builder.values(row)
            message = builder.message(values)
            builder.check(values, message)
            mime.render(message)
            if saved is not None:
                saved.note(message, builder.body_file)
        if saved is not None:
            saved.check(last, (path, settings.results, *settings.outputs))
        earlier.check_last(last, path)
        _warn_unused(table.columns, builder)
        return Checked(table.identity, table.columns, total)


def _warn_unused(columns: tuple[Column, ...], builder: RowBuilder) -> None:
    """A column that is no option and that no template reads is probably a typo."""
    import difflib

    for column in columns:
        if column.option is None and column.name.casefold() not in builder.used:
            close = difflib.get_close_matches(column.name.upper(), [o.name for o in OPTIONS if o.per_row], n=1)
            if close:
                log.warning(_("Column {column} is neither an option nor used by the templates. Did you mean {suggestion}?").format(
                    column=column.name, suggestion=close[0]))
