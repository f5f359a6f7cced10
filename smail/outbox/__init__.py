"""/OUTBOX and /FLUSH: a message that cannot be delivered now waits on disk, and /FLUSH sends
it later at most once, even when killed at any moment, and never loses one.

The folder:
    <entry>/entry.json    the message, mode-neutral (SMTP or Graph); never rewritten
    <entry>/status.json   created, attempts, last error; replaced atomically
    <entry>/files/<n>     copies of the inline files and attachments
    <entry>/sending       written and fsynced just before the end of the message goes out
    <entry>/sent          written (or `sending` renamed) once the server accepted it, before the
                          entry is deleted: never sent again, only deleted
    failed/<entry>/       refused, expired or unreadable, with reason.txt
    uncertain/<entry>/    may have been sent: never resent automatically
    .lock                 locked by the running /FLUSH (an OS lock: released when it dies)
    .new-<entry>/         an entry being written; .done-<entry>/ one being deleted

Entry names start with their UTC creation time, so that sorting them gives the oldest first.
Nothing secret is stored: /FLUSH brings its own credentials.

    layout    the names and JSON files of the folder, the entries waiting in it
    disk      durable writes and the lock
    entry     an entry's message, written whole or not at all, and read back
    handoff   entries a batch hands over to the outbox
    flush     /FLUSH: the run under the lock, one session for every entry
    choose    which entries a flush may send, each read back and rendered
    marks     an entry marked in flight before its end goes out, then sent, or unmarked
    moves     entries to failed/ and uncertain/, and back (/RESEND_UNCERTAIN)
    status    the counters an entry keeps while it waits
    tally     a flush's exit code and line
    preview   /FLUSH /DRY_RUN
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smail.errors import ExitCode, SMailError, reason
from smail.i18n import _
from smail.message import Message
from smail.outbox.entry import encode_message, read_entry, write_entry
from smail.outbox.flush import flush
from smail.receipt import Receipt, Status

if TYPE_CHECKING:
    from smail.mime import Rendered
    from smail.settings import OutboxSettings

__all__ = ["encode_message", "flush", "keep", "read_entry", "write_entry"]

log = logging.getLogger("smail")


def keep(settings: OutboxSettings, message: Message, rendered: Rendered, receipt: Receipt, *,
         origin: dict[str, Any] | None = None, record: Callable[[str, str], None] | None = None) -> Receipt:
    """Keep a message that failed without being refused (Status.FAILED), for a later /FLUSH: the receipt
    says QUEUED (exit 10) with the line to show, or, when the outbox cannot be written,
    keeps its status and exit code with a line that says so. A refusal or a "may have been
    sent" is never kept: its receipt comes back as it was.

    A batch row gives its `origin` and `record(entry, text)`, which records it as kept before
    the entry appears (outbox.handoff).
    """
    error = receipt.error or ""
    if receipt.status is not Status.FAILED:
        return receipt

    def kept_text(name: str) -> str:
        return _("{error} The message is kept in the outbox {folder} as {entry}; the next /FLUSH will send it.").format(
            error=error, folder=settings.folder, entry=name)
    try:
        name = write_entry(settings.folder, message, rendered, receipt, origin=origin,
                           before_publish=(lambda name: record(name, kept_text(name))) if record else None)
    except (OSError, ValueError, SMailError) as exc:
        why = exc.message if isinstance(exc, SMailError) else reason(exc)
        text = _("{error} The message could not be kept in the outbox {folder} either: {reason}").format(
            error=error, folder=settings.folder, reason=why)
        return receipt.with_facts(error=text)
    log.info(_("Message {message_id} kept in the outbox as {entry}.").format(
        message_id=message.message_id, entry=name))
    return receipt.with_facts(status=Status.QUEUED, source={"entry": name}, error=kept_text(name),
                              exit_code=ExitCode.QUEUED)
