"""An entry's status.json: what its attempts met and where a flush moved it. Replaced whole;
a failure to write it loses the counters, never the entry."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from smail import files, redact
from smail.errors import ExitCode, SMailError, reason
from smail.i18n import _
from smail.outbox.layout import FORMAT, STATUS, Unreadable, dump, iso, load
from smail.receipt import Receipt, Status

log = logging.getLogger("smail")


def read_status(entry: Path) -> dict[str, Any]:
    """The entry's status document; empty when it is missing or damaged (it only counts)."""
    try:
        document = load(entry / STATUS)
    except (OSError, ValueError, Unreadable):
        return {}
    return document if isinstance(document, dict) else {}


def update_status(entry: Path, **changes: Any) -> None:
    """Replace status.json with these changes; a failure is logged, the entry stays as it is."""
    document = read_status(entry)
    document.setdefault("format", FORMAT)
    document.update(changes)
    try:  # never through a link: replace_name replaces a link by that name itself
        files.replace_name(entry / STATUS, dump(document))
    except OSError as exc:
        log.warning(_("The status of the outbox entry {entry} could not be written: {reason}").format(
            entry=entry.name, reason=reason(exc)))


def waiting(entry: Path, receipt: Receipt | None, failure: SMailError | None, *, now: float) -> Receipt:
    """The QUEUED receipt of an entry that stays for the next flush; its status counts the attempt."""
    name = entry.name
    error = redact.redact(receipt.error or "") if receipt else (failure.message if failure else "")
    if receipt is not None and receipt.attempts:
        attempts = read_status(entry).get("attempts")
        update_status(entry, last_attempt=iso(now), last_error=error or None,
                      last_exit_code=int(receipt.exit_code),
                      attempts=(attempts if isinstance(attempts, int) else 0) + receipt.attempts)
    if receipt is None:
        receipt = Receipt(status=Status.QUEUED, error=error or None, source={"entry": name},
                          exit_code=failure.exit_code if failure else ExitCode.ERROR)
    if error:
        log.warning(_("Outbox entry {entry} stays for the next /FLUSH: {error}").format(entry=name, error=error))
    return receipt.with_facts(status=Status.QUEUED, source={"entry": name})
