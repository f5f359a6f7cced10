"""The second pass of a /BATCH run: the rows sent over one session (or only rendered with
/DRY_RUN), each outcome reported as soon as it is known."""

from __future__ import annotations

import logging
from collections.abc import Callable

from smail.batch.feed import JobFeed, Pending
from smail.batch.keeping import keep_row
from smail.batch.report import local_failure
from smail.batch.results import row_key
from smail.batch.table import CSVFile
from smail.errors import ExitCode, SMailError
from smail.i18n import _
from smail.receipt import Receipt, Status
from smail.retry import RetryPolicy
from smail.settings import TransportSettings
from smail.transports import Job, Session, ends_session, send_many

log = logging.getLogger("smail")


class RowSender:
    """The send pass over the rows of `feed`: one session, `workers` messages in flight."""

    def __init__(self, feed: JobFeed, *, per_second: float | None, workers: int) -> None:
        self.feed, self.per_second, self.workers = feed, per_second, workers
        self.state, self.report = feed.state, feed.report

    def dry_run(self, table: CSVFile) -> None:
        """/DRY_RUN: every row rendered (and saved with /SAVE_EML), none sent."""
        for row in table.rows():
            key = row_key(self.feed.columns, row)
            if self.feed.earlier.handled(row, key, self.report):
                continue
            message, _rendered = self.feed.build(row)
            self.report.finish(row, key, Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                                 accepted=tuple(b.address for b in message.recipients)))

    def send(self, table: CSVFile, open_session: Callable[[TransportSettings], Session],
             transport: TransportSettings, retry: RetryPolicy) -> None:
        """Every row through one session; after a stop, the rows left are reported as not sent."""
        rows = table.rows()
        session = open_session(transport)
        try:
            completed = send_many(session, self.feed.jobs(rows, table), retry, on_done=self._done,
                                  per_second=self.per_second, workers=self.workers)
        finally:
            session.close()
        self.feed.settle_pending()
        if not completed:
            self.state.stop(SMailError(_("the connection failed")))
        if self.state.error is not None and self.state.crash is None and not table.changed():
            try:  # (what a changed file holds beyond was never checked: it is not reported)
                for row in rows:
                    self.feed.not_sent(row)
            except SMailError as err:  # the rest of the file cannot be read any more
                log.error(err.message)

    def _done(self, job: Job, receipt: Receipt) -> None:
        """A row's outcome (send_many calls this under its lock)."""
        pending = job.key
        assert isinstance(pending, Pending)
        self.feed.pending.pop(pending.row.number, None)
        try:
            local = receipt.exit_code is ExitCode.ERROR
            receipt = local_failure(receipt)
            recorded = False
            if receipt.status is Status.FAILED and self.feed.outbox is not None and not local:
                receipt, recorded = keep_row(self.feed.outbox, self.report.results, pending.row, pending.key,
                                             message=job.message, rendered=job.rendered, receipt=receipt)
            self.report.finish(pending.row, pending.key, receipt, write=not recorded, resend=pending.resend)
            if ends_session(receipt):
                self.state.stop(pending.failure or SMailError(receipt.error or ""))
        except Exception as exc:
            self.state.crashed(exc)

