"""The jobs of a /BATCH run's send pass: each row built when the session asks for the next one,
recorded as being sent just before the end of its message goes out."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

from smail import files
from smail.batch.columns import Column
from smail.batch.earlier import EarlierRuns
from smail.batch.keeping import keep_row
from smail.batch.report import RowReport, local_failure
from smail.batch.results import STATUS_SENDING, row_key
from smail.batch.rows import RowBuilder
from smail.batch.saved import SaveFolder
from smail.batch.state import RunState
from smail.batch.table import CSVFile, Row
from smail.errors import ExitCode, FileChangedError, SMailError
from smail.i18n import _
from smail.message import Message
from smail.mime import Rendered
from smail.receipt import Receipt, Status
from smail.settings import OutboxSettings
from smail.transports import Job


@dataclass
class Pending:
    """A row handed to the session, until its outcome comes back."""

    row: Row
    key: str
    committed: bool = False
    resend: bool = False  # /RESEND_UNCERTAIN: an earlier run left it may-have-been-sent
    failure: SMailError | None = None  # why it was not sent: the batch's reason if it stops there

    def failed(self, err: SMailError) -> None:
        self.failure = err


class JobFeed:
    """The rows of the send pass as jobs, and what becomes of those that never get sent."""

    def __init__(self, state: RunState, report: RowReport, earlier: EarlierRuns, builder: RowBuilder,
                 columns: tuple[Column, ...], *, saved: SaveFolder | None, outbox: OutboxSettings | None) -> None:
        self.state, self.report, self.earlier, self.builder = state, report, earlier, builder
        self.columns, self.saved, self.outbox = columns, saved, outbox
        self.pending: dict[int, Pending] = {}

    def build(self, row: Row) -> tuple[Message, Rendered]:
        """The row's message as it goes out, saved with /SAVE_EML."""
        values = self.builder.values(row)
        message = self.builder.message(values)
        rendered = self.builder.render(values, message)
        if self.saved is not None:
            self.saved.write(row.number, rendered)
        return message, rendered

    def jobs(self, rows: Iterator[Row], table: CSVFile) -> Iterator[Job]:
        """The rows to send, each built when the session asks for it (under send_many's lock).
        After a stop, the rows not yet taken stay in `rows` for the sender to report."""
        while self.state.going:
            try:
                row = next(rows, None)
                if row is None:
                    return
                if table.changed():  # rows added or rewritten since the check: never sent unchecked
                    self.state.stop(FileChangedError(_("{path} changed while SMail was sending its rows: the rows from row {row} on were not sent. Run SMail again with /BATCH_RESUME once the file is complete.").format(
                        path=table.path, row=row.number)))
                    self.not_sent(row)
                    return
                key = row_key(self.columns, row)
                if self.earlier.handled(row, key, self.report):
                    continue
                resend = row.number in self.earlier.resending
                try:
                    message, rendered = self.build(row)
                except SMailError as err:  # a file that changed or vanished since the check
                    self.report.finish(row, key, local_failure(Receipt.from_error(err)), resend=resend)
                    if err.exit_code is ExitCode.ERROR:  # /SAVE_EML cannot be written: stop
                        self.state.stop(err)
                    continue
                self.pending[row.number] = pending = Pending(row, key, resend=resend)
                yield Job(key=pending, message=message, rendered=rendered,
                          on_commit=functools.partial(self._commit, pending, message.message_id),
                          on_failure=pending.failed)
            except SMailError as err:
                self.state.stop(err)
                return
            except Exception as exc:  # a bug: stop there, reported once the session is closed
                self.state.crashed(exc)
                return

    def _commit(self, pending: Pending, message_id: str) -> None:
        """Just before the end of the message goes out: the row is recorded as being sent."""
        pending.committed = True
        results = self.report.results
        if results is None:
            return
        try:
            results.record(pending.row.number, STATUS_SENDING, message_id=message_id, key=pending.key, sync=True)
        except OSError as exc:  # unrecorded, the message must not go out: abort it
            error = files.write_failure(results.path, exc)
            self.state.stop(error)
            raise error from None

    def settle_pending(self) -> None:
        """Rows handed to the session that never came back (a worker died on a bug)."""
        for pending in list(self.pending.values()):
            status = Status.MAYBE_SENT if pending.committed else Status.FAILED
            self.report.finish(pending.row, pending.key, Receipt(
                status=status, exit_code=ExitCode.SEND if pending.committed else ExitCode.INTERNAL,
                error=_("The row's outcome is unknown (an internal error); check before sending it again.")))
        self.pending.clear()

    def not_sent(self, row: Row) -> None:
        """A row the batch did not send because it stopped; with /OUTBOX and a server that is
        down, it waits there for /FLUSH instead."""
        key = row_key(self.columns, row)
        if self.earlier.handled(row, key, self.report, strict=False):
            return
        stop = self.state.error
        assert stop is not None
        text = _("Not sent: the batch stopped on an earlier failure ({error}).").format(error=stop.message)
        failed = Receipt(status=Status.FAILED, exit_code=stop.exit_code, error=text)
        if self.outbox is not None and Receipt.from_error(stop).status is Status.FAILED:
            # The server is down for every row, not only the one that found out: with /OUTBOX,
            # the rest of the batch waits there for /FLUSH instead of being lost.
            values = self.builder.values(row)
            message = self.builder.message(values)
            rendered = self.builder.render(values, message)
            receipt, recorded = keep_row(self.outbox, self.report.results, row, key, message=message,
                                         rendered=rendered, receipt=failed.with_facts(message_id=message.message_id))
            self.report.finish(row, key, receipt, write=not recorded)
            return
        self.report.finish(row, key, failed, not_sent=True)
