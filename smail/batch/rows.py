"""One /BATCH row -> its message: the row's cells over the command line's options, templates rendered."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smail.addresses import parse_header, parse_mailbox, parse_mailboxes
from smail.batch.columns import ADDRESS_COLUMNS, FIELD_OF, FILE_COLUMNS, TRIMMED, Column, in_row_text
from smail.batch.table import Row
from smail.batch.templates import render_template
from smail.cloud import StoreThumbprint
from smail.config.message import inline_without_html, no_certificate_to_encrypt_to, settle_message
from smail.converters import certificate_list, file_list
from smail.errors import ParamError, SMailError
from smail.i18n import _
from smail.kinds import Mode
from smail.message import (
    Message,
    draft_message,
    finish_message,
)
from smail.mime import Rendered, render
from smail.options import Opt, Option, convert
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


@dataclass(frozen=True, kw_only=True)
class RowValues:
    """What one row sets, each cell converted once: the command line's message options with
    the row's non-empty cells over them, and the template variables."""

    number: int
    message: MessageSettings              # as given: the rules are not applied yet
    inline: tuple[Path, ...] | None       # the row's /INLINE, checked against its body
    encrypt_to: tuple[Path | StoreThumbprint, ...] | None  # the row's /ENCRYPT_TO certificates
    variables: Mapping[str, str]          # every cell, by its column's name in lower case


def _cell_value(option: Option, cell: str, folder: Path) -> object:
    """A non-empty cell as the field of `option` holds it; ParamError or FileMissingError."""
    if option is Opt.ENCRYPT_TO:
        return certificate_list(cell, base=folder)
    if option.name in FILE_COLUMNS:
        return file_list(cell, base=folder)
    if option is Opt.BODY_FILE:
        path = Path(cell.strip().strip('"'))
        cell = str(path if path.is_absolute() else folder / path)
    value = convert(option, cell)
    if option.name in ADDRESS_COLUMNS:
        parse_mailboxes([cell])
    elif option is Opt.FROM_ADDR:
        parse_mailbox(cell)
    elif option is Opt.HEADER:
        parse_header(cell)
    if option in TRIMMED and isinstance(value, str):
        return value.strip()
    return (value,) if option.repeat else value


def read_row(row: Row, columns: tuple[Column, ...], defaults: MessageSettings, folder: Path) -> RowValues:
    """The row's values over `defaults`; an empty cell leaves the command line's value."""
    bodies = [c.name for c in columns
              if c.option in (Opt.BODY, Opt.BODY_FILE) and row.cells[c.index].strip()]
    if len(bodies) > 1:
        raise ParamError(_("Row {row}: columns {first} and {second} both give the body; leave one of the two cells empty.").format(
            row=row.number, first=bodies[0], second=bodies[1]))
    changes: dict[Option, object] = {}
    for column in columns:
        option, cell = column.option, row.cells[column.index]
        if option is None or not cell.strip():
            continue
        try:
            changes[option] = _cell_value(option, cell, folder)
        except SMailError as err:
            raise in_row(err, row.number, column.name) from None
    # Any: each option's converter gives the type its field holds (the option table's contract).
    fields: dict[str, Any] = {FIELD_OF[option]: value for option, value in changes.items() if option in FIELD_OF}
    if Opt.BODY in changes or Opt.BODY_FILE in changes:  # a row's body replaces the command line's, whatever its kind
        fields.setdefault("body_text", None)
        fields.setdefault("body_file", None)
    inline, encrypt_to = changes.get(Opt.INLINE), changes.get(Opt.ENCRYPT_TO)
    return RowValues(number=row.number, message=replace(defaults, **fields),
                     inline=inline if isinstance(inline, tuple) else None,
                     encrypt_to=encrypt_to if isinstance(encrypt_to, tuple) else None,
                     variables={c.name.casefold(): row.cells[c.index] for c in columns})


class RowBuilder:
    """A row's values over the command line's, then its message with its templates rendered."""

    def __init__(self, defaults: MessageSettings, mode: Mode, csv_path: Path, columns: tuple[Column, ...], *,
                 default_sender: str | None = None, protection: Protection | None = None) -> None:
        self.defaults, self.default_sender = defaults, default_sender
        self.mode = mode
        self.folder = Path(os.path.abspath(csv_path)).parent
        self.columns = columns
        self.used: set[str] = set()  # variables the templates read, in lower case
        self.protection = protection  # /SIGN_CERT, /ENCRYPT_TO: each row signed, encrypted
        self.body_file: Path | None = None  # the body file of the last row built
        self.encrypt_column = next((c for c in columns if c.option is not None and c.option is Opt.ENCRYPT_TO), None)

    def values(self, row: Row) -> RowValues:
        """The row's cells, converted and checked (exit 2 or 8 naming the row and the column)."""
        return read_row(row, self.columns, self.defaults, self.folder)

    def _plan(self, values: RowValues, message: Message) -> Plan | None:
        protection = self.protection
        column = self.encrypt_column
        if protection is None:
            return None
        from smail.smime import plan, with_recipients

        try:
            if values.encrypt_to is not None:
                if not values.encrypt_to:  # `;` alone: not a reason to send this row unencrypted
                    raise no_certificate_to_encrypt_to()
                protection = with_recipients(protection, values.encrypt_to)
            return plan(protection, message)
        except SMailError as err:
            raise in_row(err, values.number, column.name if column is not None and (
                protection.encrypts or values.encrypt_to is not None) else None) from None

    def check(self, values: RowValues, message: Message) -> None:
        """The row's message checked against the certificates (exit 2 naming the row)."""
        self._plan(values, message)

    def render(self, values: RowValues, message: Message) -> Rendered:
        """The row's message as it goes out: signed and encrypted when the run asks for it."""
        chosen = self._plan(values, message)
        if chosen is None:
            return render(message)
        from smail.smime import protect

        return protect(message, chosen)

    def settings(self, values: RowValues) -> MessageSettings:
        """The row's message settings, with the rules of the command line (exit 2 naming the row)."""
        fields = values.message if values.inline is None else replace(values.message, inline=())
        try:
            settings = settle_message(fields, self.mode, default_sender=self.default_sender)
        except SMailError as err:
            raise in_row(err, values.number) from None
        if values.inline is not None:
            settings = replace(settings, inline=values.inline)
            if settings.inline and not is_html(settings.body_file):
                raise in_row(inline_without_html(), values.number, Opt.INLINE.name)
        return settings

    def message(self, values: RowValues) -> Message:
        """The row's message, templates rendered; ParamError/FileMissingError naming the row."""
        settings = self.settings(values)
        self.body_file = settings.body_file  # for the check of /SAVE_EML's files
        subject = render_template(settings.subject, html=False, variables=values.variables, row=values.number,
                                  template="/SUBJECT", used=self.used)
        try:
            convert(Opt.SUBJECT, subject)  # no line break may come in through a variable
            draft = draft_message(replace(settings, subject=subject))
        except SMailError as err:
            raise in_row(err, values.number) from None
        template = str(settings.body_file) if settings.body_file is not None else "/BODY"
        body = render_template(draft.body, html=draft.html, variables=values.variables, row=values.number,
                               template=template, used=self.used)
        return finish_message(draft, body=body)
