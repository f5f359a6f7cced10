"""What earlier runs of a batch did with its rows (/BATCH_RESUME): the one place that decides
whether a row was handled before, and so is never sent again."""

from __future__ import annotations

from pathlib import Path

from smail.batch.report import RowReport
from smail.batch.results import RESENT, STATUS_SENDING, Recorded
from smail.batch.table import Row
from smail.errors import ExitCode, ParamError, SMailError
from smail.i18n import _
from smail.receipt import Receipt, Status
from smail.settings import BatchSettings

# What a line of the results file means for its row now.
_NOW: dict[str, Status] = {
    Status.SENT.value: Status.SKIPPED, RESENT: Status.SKIPPED, STATUS_SENDING: Status.MAYBE_SENT,
    Status.MAYBE_SENT.value: Status.MAYBE_SENT, Status.QUEUED.value: Status.QUEUED,
}
# The lines that say a message may have left: their row must still be in the file.
_DELIVERED = frozenset({Status.SENT.value, STATUS_SENDING, Status.MAYBE_SENT.value, RESENT})


class EarlierRuns:
    """The results file's lines, by row, as a resumed run read them (none otherwise)."""

    def __init__(self, settings: BatchSettings, recorded: dict[int, Recorded] | None = None) -> None:
        self.settings = settings
        self.recorded = recorded or {}
        self.resending: set[int] = set()  # rows /RESEND_UNCERTAIN sends again

    def status(self, row: Row, key: str) -> Status | None:
        """What an earlier run did with this row, when it must not be sent again; ParamError
        when the row is not the one it handled. With /RESEND_UNCERTAIN a row it left
        may-have-been-sent is sent again (None), as a resend."""
        recorded = self.recorded.get(row.number)
        if recorded is None:
            return None
        status = _NOW.get(recorded.status)
        if status is not None and recorded.key and recorded.key != key:
            raise ParamError(_("Row {row} of {path} is not the row {results} records as {status}: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                row=row.number, path=self.settings.rows, results=self.settings.results, status=recorded.status))
        if status is Status.MAYBE_SENT and self.settings.resend_uncertain:
            self.resending.add(row.number)  # the administrator checked: it did not arrive
            return None
        return status

    def check_last(self, last: int, path: Path) -> None:
        """No row the file records as (maybe) sent may be past the CSV's last row."""
        for number, recorded in self.recorded.items():
            if number > last and recorded.status in _DELIVERED:
                raise ParamError(_("{results} records row {row} as sent, but {path} has no such row: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                    results=self.settings.results, row=number, path=path))

    def receipt(self, row: Row, status: Status) -> tuple[Receipt, bool]:
        """The receipt of a row an earlier run handled, and whether the results file needs
        its line again (a `sending` line becomes may-have-been-sent)."""
        if status is Status.SKIPPED:
            receipt = Receipt(status=status, summary=_("already sent by an earlier run"))
        elif status is Status.QUEUED:
            receipt = Receipt(status=status, exit_code=ExitCode.QUEUED,
                              error=_("kept in the outbox by an earlier run"))
        else:
            receipt = Receipt(status=status, exit_code=ExitCode.SEND, error=_(
                "An earlier run was sending this row when it stopped: it may have been delivered. Check before sending it again."))
        return receipt, status is Status.MAYBE_SENT and self.recorded[row.number].status == STATUS_SENDING

    def kept(self, row: int, key: str, message_id: str) -> bool:
        """Whether the row is recorded as kept in the outbox with this message (outbox.handoff)."""
        line = self.recorded.get(row)
        return line is not None and line.status == Status.QUEUED.value and line.message_id == message_id

    def handled(self, row: Row, key: str, report: RowReport, *, strict: bool = True) -> bool:
        """Whether an earlier run handled the row; if so it is reported as such and never sent
        again. Not `strict`: a row that changed since is left to be reported as not sent (the
        run is already stopping)."""
        try:
            status = self.status(row, key)
        except SMailError:
            if strict:
                raise
            status = None
        if status is None:
            return False
        receipt, write = self.receipt(row, status)
        report.finish(row, key, receipt, write=write)
        return True
