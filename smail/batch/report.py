"""Each /BATCH row's outcome, said once: the tally, the log line, the results file's line, the
receipt kept for /RESULT_FILE and the progress line."""

from __future__ import annotations

import logging
from dataclasses import replace

from smail import files
from smail.batch.columns import in_row_text
from smail.batch.results import NOT_SENT, RESENT, ResultsFile
from smail.batch.state import RunState
from smail.batch.table import Row
from smail.batch.tally import ACCEPTED, ProgressBar, Tally
from smail.errors import ExitCode
from smail.i18n import _
from smail.receipt import Receipt, Status

log = logging.getLogger("smail")


def local_failure(receipt: Receipt) -> Receipt:
    """A row stopped by SMail's own side (a full disk, an output it cannot write) was not
    refused by the server: it failed, and says why."""
    if receipt.status is Status.REFUSED and receipt.exit_code is ExitCode.ERROR:
        return replace(receipt, status=Status.FAILED)
    return receipt


class RowReport:
    """Where every row's outcome goes; a results file that cannot be written stops the run."""

    def __init__(self, state: RunState, *, keep_receipts: bool) -> None:
        self.state = state
        self.keep_receipts = keep_receipts
        self.tally = Tally()
        self.receipts: list[Receipt] = []
        self.results: ResultsFile | None = None  # /BATCH_RESULT, once opened (not with /DRY_RUN)
        self.progress: ProgressBar | None = None  # on a terminal, once the rows are counted

    def finish(self, row: Row, key: str, receipt: Receipt, *, not_sent: bool = False, write: bool = True,
               resend: bool = False) -> None:
        """The row's outcome: counted, logged, written to the results file unless `write` is
        False (already recorded), kept for /RESULT_FILE."""
        source = {**receipt.source, "row": row.number, **({"resend": True} if resend else {})}
        receipt = receipt.with_facts(source=source)
        resent = resend and receipt.status is Status.SENT
        self.tally.add(receipt.status, receipt.exit_code, not_sent=not_sent, resent=resent)
        if resent:
            log.info(_("Row {row}: sent again (/RESEND_UNCERTAIN) after an earlier run left it may-have-been-sent: {summary}").format(
                row=row.number, summary=receipt.summary))
        elif resend:
            log.warning(_("Row {row}: the resend (/RESEND_UNCERTAIN) did not go through: {error}").format(
                row=row.number, error=receipt.error))
        elif receipt.status in ACCEPTED:
            log.info(_("Row {row}: {summary}").format(row=row.number, summary=receipt.summary))
        else:
            log.warning(in_row_text(str(receipt.error), row.number))
        if write and self.results is not None:
            status = NOT_SENT if not_sent else RESENT if resent else receipt.status.value
            text = receipt.reply if receipt.status is Status.SENT else receipt.error
            try:
                self.results.record(row.number, status, exit_code=int(receipt.exit_code),
                                    message_id=receipt.message_id, text=text, key=key)
            except OSError as exc:
                self.state.stop(files.write_failure(self.results.path, exc))
        if self.keep_receipts:
            self.receipts.append(receipt)
        if self.progress is not None:
            self.progress.update(self.tally.done)
