"""/SAVE_EML=folder in a batch: row-0002.eml for row 2, never over a file the batch reads or writes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from smail import files, mime
from smail.errors import ParamError
from smail.i18n import _
from smail.message import Message


class SaveFolder:
    """The folder /SAVE_EML names, and every file the rows read, by identity, to keep it from."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.inputs: dict[tuple[str, object], Path] = {}

    def path(self, number: int) -> Path:
        return self.folder / f"row-{number:04d}.eml"

    def note(self, message: Message, body_file: Path | None) -> None:
        """The files a row's message reads: its parts and its body file."""
        for path in (*(part.path for part in (*message.attachments, *message.inline)), body_file):
            if path is not None:
                self.inputs.setdefault(files.identity(path), path)

    def check(self, last: int, others: Iterable[Path | None]) -> None:
        """None of row-0002.eml to the last row's may be a file the batch reads (what a row
        attaches, its body, the CSV) or writes (results, receipt, log): exit 2."""
        for other in others:
            if other is not None and files.exists(other):
                self.inputs.setdefault(files.identity(other), other)
        for number in range(2, last + 1):
            path = self.path(number)
            clash = self.inputs.get(files.identity(path)) if files.exists(path) else None
            if clash is not None:
                raise ParamError(_("/SAVE_EML={folder} would write {path}, a file the batch reads or writes ({input}): refused, so that it cannot be overwritten.").format(
                    folder=self.folder, path=path, input=clash))

    def make(self) -> None:
        """The folder, created when missing (exit 1 when it cannot be)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise files.write_failure(self.folder, exc) from None

    def write(self, number: int, rendered: mime.Rendered) -> None:
        """The row's message as it goes out (exit 1 when it cannot be written)."""
        path = self.path(number)
        try:
            with files.open_output(path) as stream:
                rendered.write_to(stream)
        except (OSError, ValueError) as exc:
            raise files.write_failure(path, exc) from None
