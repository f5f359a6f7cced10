"""Entries moved between the outbox and its failed/ and uncertain/ folders. An entry is never
sent from failed/ or uncertain/; /RESEND_UNCERTAIN brings those of uncertain/ back."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from smail import files, redact
from smail.errors import reason
from smail.i18n import _
from smail.outbox import disk
from smail.outbox.layout import (
    ENTRY_NAME,
    REASON,
    SENDING_MARK,
    UNCERTAIN,
    Mark,
    entries,
    iso,
    left_in_flight,
    mark,
)
from smail.outbox.status import update_status
from smail.receipt import Receipt

log = logging.getLogger("smail")


def move(folder: Path, name: str, where: str, text: str, receipt: Receipt, *, now: float) -> Receipt:
    """To failed/ or uncertain/ with its reason: the entry's receipt. When it cannot be moved,
    it stays in place, and one in flight keeps its mark (never sent); the receipt says so."""
    text = redact.redact(text)
    entry = folder / name
    receipt = receipt.with_facts(source={"entry": name})
    try:
        files.replace_name(entry / REASON, f"{iso(now)} {text}\n".encode("utf-8", "backslashreplace"))
    except OSError as exc:  # the reason is still in the log and the result file
        log.warning(_("The reason could not be written into the outbox entry {entry}: {reason}").format(
            entry=name, reason=reason(exc)))
    update_status(entry, outcome=where, reason=text)
    target_folder = folder / where
    try:
        if not files.real_folder(target_folder):
            if os.path.lexists(target_folder):  # a link (or a file): never moved into, nor through
                raise NotADirectoryError(errno.ENOTDIR, _("it is not a folder (a link or a file)"))
            target_folder.mkdir()
        target = target_folder / name
        number = 1
        while os.path.lexists(target):
            number += 1
            target = target_folder / f"{name}-{number}"
        files.rename(entry, target)
        disk.fsync_dir(folder)
        disk.fsync_dir(target_folder)
    except OSError as exc:
        # Left in place: an entry in flight keeps its mark, so that no flush sends it again.
        stays = _("The outbox entry {entry} could not be moved to {folder} ({reason}): it stays in the outbox, and is never sent as it is.").format(
            entry=name, folder=target_folder, reason=reason(exc))
        log.warning(stays)
        return receipt.with_facts(error=f"{text} {stays}")
    try:  # its job is done; without it, the entry can be moved back to be sent again
        os.unlink(target / SENDING_MARK)
    except OSError:
        pass
    log.warning(_("Outbox entry {entry} moved to {folder}: {reason}").format(entry=name, folder=target, reason=text))
    return receipt


def left_for_resend(folder: Path) -> set[str]:
    """The entries an earlier flush found in flight and could not move to uncertain/ (it
    recorded the move it tried): what /RESEND_UNCERTAIN covers besides uncertain/."""
    left = set()
    for name in entries(folder):
        entry = folder / name
        try:
            if mark(entry) != Mark.SENDING:
                continue
        except OSError:
            continue
        if left_in_flight(entry):
            left.add(name)
    return left


def resend_in_place(folder: Path, names: Iterable[str]) -> set[str]:
    """/RESEND_UNCERTAIN: entries left in the outbox marked as in flight, because a flush could
    not move them to uncertain/, are unmarked to be sent again like those of uncertain/: the
    names unmarked."""
    unmarked = set()
    for name in names:
        entry = folder / name
        if not files.real_folder(entry):
            continue  # gone
        try:
            if mark(entry) != Mark.SENDING:
                continue
        except OSError:
            continue
        update_status(entry, resend=True)
        try:
            os.unlink(entry / SENDING_MARK)
            disk.fsync_dir(entry)
        except OSError as exc:
            log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): it is not sent again.").format(
                entry=name, reason=reason(exc)))
            continue
        unmarked.add(name)
        log.warning(_("Outbox entry {entry}, left in the outbox as in flight because {folder} could not be used, is sent again (/RESEND_UNCERTAIN).").format(
            entry=name, folder=folder / UNCERTAIN))
    return unmarked


def bring_back(folder: Path, *, skip: Collection[str]) -> set[str]:
    """/RESEND_UNCERTAIN: the entries of uncertain/ (but those named in `skip`) go back to the
    outbox, each marked as a resend before it moves: the names brought back."""
    where = folder / UNCERTAIN
    if not files.real_folder(where):
        if os.path.lexists(where):
            log.warning(_("{folder} is not a folder (a link or a file): nothing is sent again from it.").format(
                folder=where))
        return set()
    try:
        items = sorted(os.scandir(where), key=lambda item: item.name)
    except OSError as exc:
        log.warning(_("{folder} cannot be read: {reason}").format(folder=where, reason=reason(exc)))
        return set()
    back = set()
    for item in items:
        found = ENTRY_NAME.match(item.name)
        rest = item.name[found.end():] if found else ""
        if not found or not (rest == "" or (rest[:1] == "-" and rest[1:].isdigit())) \
                or not item.is_dir(follow_symlinks=False):
            continue
        name, source = found.group(0), Path(item.path)
        if name in skip:
            continue
        if _bring_back_one(folder, where, item.name, name, source):
            back.add(name)
    return back


def _bring_back_one(folder: Path, where: Path, shown: str, name: str, source: Path) -> bool:
    """One entry of uncertain/ back in the outbox, unmarked; False once a line said why not."""
    try:
        state = mark(source)
    except OSError as exc:
        log.warning(_("The outbox entry {entry} in {folder} cannot be read ({reason}): it is not sent again.").format(
            entry=shown, folder=where, reason=reason(exc)))
        return False
    if state == Mark.SENT:
        log.warning(_("The outbox entry {entry} in {folder} had already been sent: it is not sent again.").format(
            entry=shown, folder=where))
        return False
    if os.path.lexists(folder / name):
        log.warning(_("{entry} is both in {folder} and in the outbox: it is not sent again.").format(
            entry=shown, folder=where))
        return False
    update_status(source, resend=True)
    try:
        files.rename(source, folder / name)
        disk.fsync_dir(folder)
        disk.fsync_dir(where)
    except OSError as exc:
        log.warning(_("The outbox entry {entry} could not be moved back from {folder} ({reason}): it is not sent again.").format(
            entry=shown, folder=where, reason=reason(exc)))
        return False
    try:
        os.unlink(folder / name / SENDING_MARK)
    except FileNotFoundError:
        pass
    except OSError as exc:  # still marked: the next flush puts it back in uncertain/
        log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): the next /FLUSH will move it to uncertain.").format(
            entry=name, reason=reason(exc)))
        return False
    log.warning(_("Outbox entry {entry} moved back from {folder}, to be sent again (/RESEND_UNCERTAIN).").format(
        entry=name, folder=where))
    return True
