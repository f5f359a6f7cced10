"""/FLUSH /DRY_RUN: one line per entry that a flush would send, move or leave; nothing
connects, nothing moves."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from smail import files
from smail.errors import ExitCode, reason
from smail.i18n import _, ngettext
from smail.outbox.entry import Loaded, read_entry
from smail.outbox.layout import ENTRY_NAME, FAILED, UNCERTAIN, Mark, Unreadable, entries, left_in_flight, mark
from smail.receipt import Outcome, Receipt, Status

if TYPE_CHECKING:
    from smail.output import Console
    from smail.settings import OutboxSettings


def empty(folder: Path) -> Outcome:
    """The outcome of a flush that found nothing to send (exit 0)."""
    return Outcome(ExitCode.OK, _("The outbox {folder} is empty: nothing to send.").format(folder=folder))


def _local_time(timestamp: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # outside what the local clock can show
        return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _load_entry(entry: Path, folder: Path, console: Console) -> Loaded | None:
    """The entry as a flush would read it, or None once a line said why it cannot be."""
    try:
        return read_entry(entry)
    except Unreadable as bad:
        console.out(_("{entry}: {reason} It would be moved to {folder}.").format(
            entry=entry.name, reason=bad.text, folder=folder / FAILED))
    except OSError as exc:
        console.out(_("{entry}: cannot be read now: {reason}").format(entry=entry.name, reason=reason(exc)))
    return None


def dry_run(settings: OutboxSettings, console: Console) -> Outcome:
    """One line per entry (created, recipients, subject); nothing connects, nothing moves."""
    folder = settings.folder
    names = entries(folder)
    if not names and not (settings.resend_uncertain and files.real_folder(folder / UNCERTAIN)):
        return empty(folder)
    receipts: list[Receipt] = []
    for name in names:
        entry = folder / name
        try:
            state = mark(entry)
        except OSError as exc:
            console.out(_("{entry}: cannot be read ({reason}): it would be moved to {folder}, never sent as it is.").format(
                entry=name, reason=reason(exc), folder=folder / UNCERTAIN))
            continue
        if state == Mark.SENT:
            console.out(_("{entry}: already sent by an earlier /FLUSH that could not remove it: it would be removed, not sent again.").format(
                entry=name))
            continue
        loaded = _load_entry(entry, folder, console)
        if loaded is None:
            continue
        message = loaded.message
        created = _local_time(loaded.created)
        facts = {"entry": name, "created": created, "recipients": ", ".join(b.address for b in message.recipients),
                 "subject": message.subject}
        if state == Mark.SENDING and settings.resend_uncertain and left_in_flight(entry):
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\". A /FLUSH stopped while sending it: it would be sent again (/RESEND_UNCERTAIN).").format(
                **facts))
            receipts.append(Receipt(status=Status.DRY_RUN, message_id=message.message_id, resend=True,
                                    accepted=tuple(b.address for b in message.recipients), source={"entry": name}))
        elif state == Mark.SENDING:
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\". A /FLUSH stopped while sending it: it would be moved to {folder}.").format(
                folder=folder / UNCERTAIN, **facts))
        elif time.time() - loaded.created > settings.max_age:
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\". It is older than /OUTBOX_MAX_AGE: it would be moved to {folder}.").format(
                folder=folder / FAILED, **facts))
        else:
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\".").format(**facts))
            receipts.append(Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                    accepted=tuple(b.address for b in message.recipients), source={"entry": name}))
    if settings.resend_uncertain:
        receipts += _dry_resends(folder, console)
    count = len(receipts)
    text = ngettext("Dry run: {n} message of the outbox {folder} would be sent; nothing was sent.",
                    "Dry run: {n} messages of the outbox {folder} would be sent; nothing was sent.",
                    count).format(n=count, folder=folder)
    return Outcome(ExitCode.OK, text, receipts)


def _dry_resends(folder: Path, console: Console) -> list[Receipt]:
    """/DRY_RUN /RESEND_UNCERTAIN: one line per entry of uncertain/ that would be sent again."""
    where = folder / UNCERTAIN
    if not files.real_folder(where):
        return []
    try:
        names = sorted(item.name for item in os.scandir(where)
                       if ENTRY_NAME.match(item.name) and item.is_dir(follow_symlinks=False))
    except OSError as exc:
        console.out(_("{folder} cannot be read: {reason}").format(folder=where, reason=reason(exc)))
        return []
    receipts = []
    for name in names:
        try:
            state = mark(where / name)
        except OSError:
            state = Mark.NONE  # said by _readable below
        if state == Mark.SENT:
            console.out(_("{entry}: in {folder}, already sent: it would not be sent again.").format(
                entry=name, folder=where))
            continue
        loaded = _load_entry(where / name, folder, console)
        if loaded is None:
            continue
        message = loaded.message
        console.out(_("{entry}: in {folder}, to {recipients}, subject \"{subject}\": it would be sent again (/RESEND_UNCERTAIN).").format(
            entry=name, folder=where, recipients=", ".join(b.address for b in message.recipients),
            subject=message.subject))
        receipts.append(Receipt(status=Status.DRY_RUN, message_id=message.message_id, resend=True,
                                accepted=tuple(b.address for b in message.recipients), source={"entry": name}))
    return receipts
