"""One /BATCH row -> its message: the row's options over the command line's, templates rendered."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from smail.addresses import parse_header, parse_mailbox, parse_mailboxes
from smail.batch.columns import ADDRESS_COLUMNS, FILE_COLUMNS, ROW_OPTIONS, Column, in_row_text
from smail.batch.table import Row
from smail.batch.templates import render_template
from smail.config import Values, inline_without_html, message_settings
from smail.converters import file_list
from smail.errors import ParamError, SMailError
from smail.i18n import _
from smail.kinds import Mode
from smail.message import (
    Message,
    draft_message,
    finish_message,
)
from smail.mime import Rendered, render
from smail.options import Opt, RawOptions, convert
from smail.settings import MessageSettings, is_html

if TYPE_CHECKING:
    from smail.smime import Plan, Protection


def _at(err: SMailError, text: str) -> SMailError:
    """The same error (class, exit code, protocol facts) with a message naming where it arose.

    Made without calling the error's constructor, which copy.copy() would call with the message
    alone: some errors need keyword arguments (the refused recipients, an exhausted retry's last
    error), and a TypeError here would turn a row's failure into exit 7.
    """
    located = type(err).__new__(type(err), text)
    located.__dict__.update(vars(err))
    located.message = text
    return located


def in_row(err: SMailError, row: int, column: str | None = None) -> SMailError:
    """The error, its message prefixed with the row (and the column) it comes from."""
    return _at(err, in_row_text(err.message, row, column))



class RowBuilder:
    """A row's options over the command line's, then its message with its templates rendered."""

    def __init__(self, raw: RawOptions, mode: Mode, csv_path: Path, columns: tuple[Column, ...], *,
                 protection: Protection | None = None) -> None:
        self.raw = raw
        self.mode = mode
        self.folder = Path(os.path.abspath(csv_path)).parent
        self.columns = columns
        self.used: set[str] = set()  # variables the templates read, in lower case
        self.protection = protection  # /SIGN_CERT, /ENCRYPT_TO: each row signed, encrypted
        self.body_file: Path | None = None  # the body file of the last row built
        self.encrypt_column = next((c for c in columns if c.option is not None and c.option is Opt.ENCRYPT_TO), None)

    def _plan(self, row: Row, message: Message) -> Plan | None:
        protection = self.protection
        column = self.encrypt_column
        if protection is None:
            return None
        from smail.smime import plan, with_recipients

        try:
            if column is not None and row.cells[column.index].strip():
                protection = with_recipients(protection, file_list(row.cells[column.index], base=self.folder))
            return plan(protection, message)
        except SMailError as err:
            raise in_row(err, row.number, column.name if column is not None and protection.encrypts else None) from None

    def check(self, row: Row, message: Message) -> None:
        """The row's message checked against the certificates (exit 2 naming the row)."""
        self._plan(row, message)

    def render(self, row: Row, message: Message) -> Rendered:
        """The row's message as it goes out: signed and encrypted when the run asks for it."""
        chosen = self._plan(row, message)
        if chosen is None:
            return render(message)
        from smail.smime import protect

        return protect(message, chosen)

    def settings(self, row: Row) -> MessageSettings:
        row_raw = RawOptions(values=dict(self.raw.values), sources=dict(self.raw.sources),
                             proxy_environment=dict(self.raw.proxy_environment))
        chosen_files: dict[str, tuple[Path, ...]] = {}
        bodies = [c.name for c in self.columns
                  if c.option is not None and c.option in (Opt.BODY, Opt.BODY_FILE) and row.cells[c.index].strip()]
        if len(bodies) > 1:
            raise ParamError(_("Row {row}: columns {first} and {second} both give the body; leave one of the two cells empty.").format(
                row=row.number, first=bodies[0], second=bodies[1]))
        for column in self.columns:
            option, cell = column.option, row.cells[column.index]
            if option is None or not cell.strip():
                continue  # an empty cell leaves the command line's value
            try:
                if option.name in FILE_COLUMNS:
                    chosen_files[option.name] = file_list(cell, base=self.folder)
                    row_raw.values[option.name] = []
                    continue
                if option is Opt.BODY_FILE:
                    path = Path(cell.strip().strip('"'))
                    cell = str(path if path.is_absolute() else self.folder / path)
                convert(option, cell)
                if option.name in ADDRESS_COLUMNS:
                    parse_mailboxes([cell])
                elif option is Opt.FROM_ADDR:
                    parse_mailbox(cell)
                elif option is Opt.HEADER:
                    parse_header(cell)
            except SMailError as err:
                raise in_row(err, row.number, column.name) from None
            row_raw.values[option.name] = [cell] if option.repeat else cell
            other = {Opt.BODY.name: Opt.BODY_FILE.name, Opt.BODY_FILE.name: Opt.BODY.name}.get(option.name)
            if other is not None:  # a row's body replaces the command line's, whatever its kind
                row_raw.values.pop(other, None)
        try:
            settings = message_settings(Values(row_raw, ROW_OPTIONS), self.mode)
        except SMailError as err:
            raise in_row(err, row.number) from None
        if chosen_files:
            settings = replace(settings, attachments=chosen_files.get(Opt.ATTACH.name, settings.attachments),
                               inline=chosen_files.get(Opt.INLINE.name, settings.inline))
            if settings.inline and not is_html(settings.body_file):
                raise in_row(inline_without_html(), row.number, Opt.INLINE.name)
        return settings

    def variables(self, row: Row) -> dict[str, str]:
        return {c.name.casefold(): row.cells[c.index] for c in self.columns}

    def message(self, row: Row) -> Message:
        """The row's message, templates rendered; ParamError/FileMissingError naming the row."""
        settings = self.settings(row)
        self.body_file = settings.body_file  # for the check of /SAVE_EML's files
        variables = self.variables(row)
        subject = render_template(settings.subject, html=False, variables=variables, row=row.number,
                                  template="/SUBJECT", used=self.used)
        try:
            convert(Opt.SUBJECT, subject)  # no line break may come in through a variable
            draft = draft_message(replace(settings, subject=subject))
        except SMailError as err:
            raise in_row(err, row.number) from None
        template = str(settings.body_file) if settings.body_file is not None else "/BODY"
        body = render_template(draft.body, html=draft.html, variables=variables, row=row.number,
                               template=template, used=self.used)
        return finish_message(draft, body=body)
