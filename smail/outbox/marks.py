"""An entry's marks around its send, which make a flush killed at any moment send it at most
once: `sending` just before the end of the message goes out, `sent` once the server accepted
it (then the entry is removed), neither again after a certain non-delivery."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from smail import files, redact
from smail.errors import SMailError, reason
from smail.i18n import _
from smail.outbox import disk
from smail.outbox.layout import DONE, FAILED, SENDING_MARK, SENT_MARK, UNCERTAIN, dump, iso
from smail.outbox.moves import move
from smail.outbox.status import waiting
from smail.receipt import Receipt, Status

log = logging.getLogger("smail")


class MarkError(SMailError):
    """The outbox itself failed (an entry could not be marked as being sent): stop sending."""


class InFlight:
    """The entries this flush marked as in flight, durably, before the end of each went out."""

    def __init__(self, folder: Path, *, now: Callable[[], float] = time.time) -> None:
        self.folder, self.now = folder, now
        self.marked: set[str] = set()

    def mark(self, name: str) -> None:
        """Mark the entry as in flight, so that a flush killed from now on leaves it to
        uncertain/ instead of sending it again; MarkError when it cannot be (then it is not sent)."""
        entry = self.folder / name
        if name in self.marked and os.path.lexists(entry / SENDING_MARK):
            return  # another attempt of this run (after a 429, a drop before the end): still marked
        try:
            disk.write_new(entry / SENDING_MARK, dump({"since": iso(self.now()), "pid": os.getpid()}))
            disk.fsync_dir(entry)
            self.marked.add(name)
        except OSError as exc:
            raise MarkError(_("The outbox entry {entry} could not be marked as being sent ({reason}), so it was not sent.").format(
                entry=name, reason=reason(exc))) from None


def unmark(entry: Path) -> None:
    """After a certain non-delivery, the entry is no longer in flight."""
    try:
        if os.path.lexists(entry / SENDING_MARK):
            os.unlink(entry / SENDING_MARK)
            disk.fsync_dir(entry)
    except OSError as exc:
        log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): the next /FLUSH will move it to uncertain.").format(
            entry=entry.name, reason=reason(exc)))


def record_sent(entry: Path, receipt: Receipt, *, now: float) -> bool:
    """Before anything else, mark an accepted entry as sent, durably: whatever fails after
    this (its removal), no flush sends it again, /RESEND_UNCERTAIN included."""
    record = dump({"at": iso(now), "message_id": receipt.message_id, "server": receipt.server,
                   "reply": redact.redact(receipt.reply) if receipt.reply else None})
    try:
        disk.write_new(entry / SENT_MARK, record)
        disk.fsync_dir(entry)
        return True
    except OSError as exc:
        why = reason(exc)
    try:  # a full disk can still rename: the in-flight mark becomes the sent mark
        files.rename(entry / SENDING_MARK, entry / SENT_MARK)
        disk.fsync_dir(entry)
        return True
    except OSError:
        log.warning(_("The outbox entry {entry} was sent but could not be marked as sent: {reason}").format(
            entry=entry.name, reason=why))
        return False


def remove_sent(folder: Path, name: str, *, recorded: bool) -> OSError | None:
    """Delete a sent entry: renamed aside at once (one atomic step), then erased; the error
    when it could not be."""
    done = folder / f"{DONE}{name}"
    try:
        files.rename(folder / name, done)
        disk.fsync_dir(folder)
    except OSError as exc:
        if recorded:
            log.warning(_("The outbox entry {entry} was sent but could not be removed ({reason}): it is marked as sent, so that no /FLUSH sends it again; the next one removes it.").format(
                entry=name, reason=reason(exc)))
        else:
            log.warning(_("The outbox entry {entry} was sent but could neither be removed nor marked as sent ({reason}): the next /FLUSH moves it to uncertain. It was delivered: do not send it again with /RESEND_UNCERTAIN.").format(
                entry=name, reason=reason(exc)))
        return exc
    shutil.rmtree(done, ignore_errors=True)
    return None


def record_answer(folder: Path, name: str, receipt: Receipt, failure: SMailError | None, *,
                  now: float) -> Receipt:
    """What the send's receipt does to the entry, and the entry's receipt: sent, marked as sent
    then removed; may have been sent, to uncertain/; not now, unmarked and waiting; refused for
    good, unmarked and to failed/."""
    entry = folder / name
    if receipt.status is Status.SENT:
        if receipt.resend:
            log.warning(_("Outbox entry {entry} sent again (/RESEND_UNCERTAIN): {summary}").format(
                entry=name, summary=receipt.summary))
        else:
            log.info(_("Outbox entry {entry} sent: {summary}").format(entry=name, summary=receipt.summary))
        remove_sent(folder, name, recorded=record_sent(entry, receipt, now=now))
        return receipt
    if receipt.status is Status.MAYBE_SENT:
        return move(folder, name, UNCERTAIN, receipt.error or "", receipt, now=now)
    unmark(entry)
    if _stays_waiting(receipt, failure):
        return waiting(entry, receipt, failure, now=now)
    return move(folder, name, FAILED, receipt.error or "", receipt, now=now)  # sending again cannot help


def _stays_waiting(receipt: Receipt, failure: SMailError | None) -> bool:
    """Whether a failed send leaves the entry for the next flush: not sent now, an outbox that
    failed, or a session that failed (the server down, the login refused)."""
    from smail.transports import ends_session

    return receipt.status is Status.FAILED or isinstance(failure, MarkError) or ends_session(receipt)
