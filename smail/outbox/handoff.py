"""A batch row handed to the outbox, safe against a kill at any instant.

The entry is written whole as .new-<name>, holding its origin (the results file, the row,
its key); the batch then records the row as kept (durably); only then does the entry appear
under its name. A kill before the record leaves a hidden entry the row's resume must not
duplicate; a kill after it, an entry the flush must send. What the results file recorded
decides: `settle` publishes a hidden entry whose row is recorded as kept with its Message-ID,
and erases one whose row is not.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smail import files
from smail.errors import reason
from smail.i18n import _
from smail.outbox import disk
from smail.outbox.entry import origin_of
from smail.outbox.layout import DONE, ENTRY_NAME, NEW

log = logging.getLogger("smail")

# kept(row, key, message_id): True when the results file records that row as kept with that
# Message-ID, False when it records it otherwise or not at all, None when it cannot be told.
Kept = Callable[[int, str, str], bool | None]


def origin(results: Path, row: int, key: str) -> dict[str, Any]:
    """What an entry kept for a batch row carries to name it."""
    return {"results": os.path.abspath(results), "row": row, "key": key}


def hidden(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The whole entries of batch rows that never appeared (.new-<name>), with their origin."""
    try:
        items = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for item in items:
        name = item.name.removeprefix(NEW)
        if item.name.startswith(NEW) and ENTRY_NAME.fullmatch(name) and files.real_folder(Path(item.path)):
            where = origin_of(Path(item.path))
            if where is not None:
                found.append((Path(item.path), where))
    return found


def settle(folder: Path, results: Path, kept: Kept) -> None:
    """Publish or erase the hidden entries of rows of `results`, as it recorded them."""
    mine = files.identity(results)
    for entry, where in hidden(folder):
        if files.identity(Path(where["results"])) != mine:
            continue
        decide(folder, entry, where, kept)


def decide(folder: Path, entry: Path, where: dict[str, Any], kept: Kept) -> None:
    """One hidden entry: publish it when its row is recorded as kept, erase it when it is not."""
    name = entry.name.removeprefix(NEW)
    verdict = kept(where["row"], str(where.get("key", "")), where["message_id"])
    try:
        if verdict is True:
            files.rename(entry, folder / name)
            disk.fsync_dir(folder)
            log.info(_("Outbox entry {entry} of row {row}, kept by a batch that stopped before it appeared, is now in the outbox.").format(
                entry=name, row=where["row"]))
        elif verdict is False:
            gone = folder / f"{DONE}{name}"
            files.rename(entry, gone)
            disk.fsync_dir(folder)
            shutil.rmtree(gone, ignore_errors=True)
            log.info(_("Outbox entry {entry} of row {row} was never recorded as kept: erased, the row is sent by its batch.").format(
                entry=name, row=where["row"]))
    except OSError as exc:
        log.warning(_("The outbox entry {entry} could not be settled ({reason}); it stays hidden and is never sent as it is.").format(
            entry=name, reason=reason(exc)))
