"""/OUTBOX in a batch: a row that failed without being refused (Status.FAILED: it may work later) waits in the outbox for /FLUSH,
handed over so that a kill at any instant never leaves it sent twice or lost."""

from __future__ import annotations

import logging
import os

from smail.batch.earlier import EarlierRuns
from smail.batch.results import ResultsFile
from smail.batch.table import Row
from smail.errors import ExitCode
from smail.message import Message
from smail.mime import Rendered
from smail.receipt import Receipt, Status
from smail.settings import OutboxSettings

log = logging.getLogger("smail")


def keep_row(outbox_settings: OutboxSettings, results: ResultsFile | None, row: Row, key: str, *,
             message: Message, rendered: Rendered, receipt: Receipt) -> tuple[Receipt, bool]:
    """The row's receipt once kept in the outbox (its own when it cannot be), and whether the
    results file recorded it as kept.

    The row is recorded as kept, durably, after its entry is whole on disk and before it
    appears in the outbox: a kill at any instant leaves either a row the resume sends and a
    hidden entry it erases, or a recorded row and an entry that only the flush sends
    (outbox.handoff)."""
    from smail import outbox
    from smail.outbox import handoff

    recorded = False

    def record(_entry: str, text: str) -> None:
        nonlocal recorded
        assert results is not None
        results.record(row.number, Status.QUEUED.value, exit_code=int(ExitCode.QUEUED),
                       message_id=message.message_id, text=text, key=key)
        os.fsync(results.fd)
        recorded = True
    kept = outbox.keep(outbox_settings, message, rendered, receipt,
                       origin=handoff.origin(results.path, row.number, key) if results else None,
                       record=record if results else None)
    if kept.status is Status.QUEUED:
        return kept, recorded
    log.warning(kept.error)
    return receipt, False


def settle_handoffs(outbox_settings: OutboxSettings, results: ResultsFile, earlier: EarlierRuns) -> None:
    """Entries that a killed run of this batch wrote whole but never showed in the outbox:
    shown when their row is recorded as kept, erased otherwise (the row is sent now)."""
    from smail.outbox import handoff

    handoff.settle(outbox_settings.folder, results.path, earlier.kept)
