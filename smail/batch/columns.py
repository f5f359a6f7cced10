"""The header of a /BATCH CSV file: each column an option a row may set, or a template variable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from smail.errors import ParamError
from smail.i18n import _
from smail.options import BY_NAME, Opt, Option


def in_row_text(text: str, row: int, column: str | None = None) -> str:
    """`text` prefixed with the row (and the column) it is about."""
    if column is None:
        return _("Row {row}: {error}").format(row=row, error=text)
    return _("Row {row}, column {column}: {error}").format(row=row, column=column, error=text)


def nul_in(*, row: int, column: str) -> ParamError:
    """A cell (or a header name) holding a NUL: the file is most likely not text (exit 2)."""
    return ParamError(in_row_text(_("a NUL character is not allowed; is this a text file?"), row, column))


# The field of MessageSettings each option a row may set gives (/ENCRYPT_TO is the signing's).
FIELD_OF: Final[Mapping[Option, str]] = {
    Opt.SUBJECT: "subject", Opt.FROM_NAME: "from_name", Opt.FROM_ADDR: "from_addr", Opt.TO: "to", Opt.CC: "cc",
    Opt.BCC: "bcc", Opt.REPLY_TO: "reply_to", Opt.BODY_FILE: "body_file", Opt.BODY: "body_text",
    Opt.BODY_CHARSET: "body_charset", Opt.ATTACH: "attachments", Opt.INLINE: "inline", Opt.PRIORITY: "priority",
    Opt.READ_ACK: "read_ack", Opt.RECEPTION_ACK: "reception_ack", Opt.HEADER: "headers",
}
# Options whose value is trimmed (what the command line's validation does).
TRIMMED: Final = frozenset({Opt.FROM_NAME, Opt.FROM_ADDR, Opt.REPLY_TO, Opt.BODY_CHARSET})
FILE_COLUMNS: Final = frozenset(o.name for o in (Opt.ATTACH, Opt.INLINE, Opt.ENCRYPT_TO))
ADDRESS_COLUMNS: Final = frozenset(o.name for o in (Opt.TO, Opt.CC, Opt.BCC, Opt.REPLY_TO))


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
            raise nul_in(row=1, column=str(index + 1))
        key = name.upper().replace("-", "_")
        option = BY_NAME.get(key)
        if option is not None and key != option.name and len(key) <= 2 and not option.per_row:
            option = None  # a short alias of a command-line option (H, ? for HELP) names a variable
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
