"""One /BATCH run: every row validated first, then sent over one session, each at most once."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from smail import files, mime
from smail.batch.columns import Column, in_row_text
from smail.batch.results import (
    NOT_SENT,
    RESENT,
    STATUS_SENDING,
    Recorded,
    ResultsFile,
    read_results,
    refuse_restart,
    row_key,
)
from smail.batch.rows import RowBuilder
from smail.batch.table import CSVFile, Row
from smail.batch.tally import ACCEPTED, ProgressBar, Tally, summary, terminal_of
from smail.errors import ExitCode, FileChangedError, ParamError, SMailError
from smail.i18n import _
from smail.kinds import Mode
from smail.message import Message
from smail.options import OPTIONS, Opt
from smail.receipt import Outcome, Receipt, Status
from smail.settings import SMIMESettings
from smail.transports import Job, Session, ends_session, open_session, send_many

if TYPE_CHECKING:
    from smail.config import BatchRun
    from smail.output import Console
    from smail.settings import TransportSettings
    from smail.smime import Protection

log = logging.getLogger("smail")

# Graph keeps up to 4 requests in flight per mailbox (Microsoft's throttling guidance: at most
# 4 concurrent requests per app and mailbox); an SMTP session sends one message at a time.
GRAPH_WORKERS: Final = 4


@dataclass
class _Pending:
    row: Row
    key: str
    committed: bool = False
    resend: bool = False  # /RESEND_UNCERTAIN: an earlier run left it may-have-been-sent
    failure: SMailError | None = None  # why it was not sent: the batch's reason if it stops there

    def failed(self, err: SMailError) -> None:
        self.failure = err


class Batch:
    """One /BATCH run: validate every row, then send them over one session."""

    def __init__(self, config: BatchRun, console: Console, *, workers: int | None = None,
                 open_session: Callable[[TransportSettings], Session] = open_session) -> None:
        self.config, self.console = config, console
        self.open_session = open_session
        self.settings = config.batch
        self.workers = workers or (GRAPH_WORKERS if config.mode is Mode.GRAPH else 1)
        self.dry_run = config.output.dry_run
        self.save_folder = config.output.save_eml
        self.keep_receipts = self.settings.receipts
        self.receipts: list[Receipt] = []
        self.tally = Tally()
        self.recorded: dict[int, Recorded] = {}
        self.results: ResultsFile | None = None
        self.progress: ProgressBar | None = None
        self.pending: dict[int, _Pending] = {}
        # Why the batch stopped before its end, and a bug in a worker (raised again once the
        # session is closed): written by _stop() and _crash() only, from any worker thread.
        self.stop_error: SMailError | None = None
        self.crash: Exception | None = None
        self._state_lock = threading.Lock()
        self.columns: tuple[Column, ...] = ()
        self.total = 0
        self.protection: Protection | None = None
        self.resending: set[int] = set()  # rows /RESEND_UNCERTAIN sends again
        self.inputs: dict[tuple[str, object], Path] = {}  # every file a row reads, by identity

    # -- the run's state -----------------------------------------------------------------------

    def _stop(self, err: SMailError) -> None:
        """The batch stops on `err`, unless it already stopped: the first reason stands."""
        with self._state_lock:
            if self.stop_error is None:
                self.stop_error = err

    def _crash(self, exc: Exception) -> None:
        """A bug: the run stops and raises it once the session is closed (the first one)."""
        with self._state_lock:
            if self.crash is None:
                self.crash = exc

    # -- the passes ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        rows = self.settings.rows
        try:
            if self.settings.results is not None and not self.dry_run:
                self.results = ResultsFile(self.settings.results)  # locked before it is read
            if self.settings.results is not None:
                recorded = read_results(self.settings.results)
                if self.settings.resume:
                    self.recorded = recorded
                else:  # never start over a file that records deliveries, /DRY_RUN included
                    refuse_restart(self.settings.results, recorded)
            identity = self._validate(rows)
            with CSVFile(rows) as table:
                if table.identity != identity:
                    raise FileChangedError(_("{path} changed while SMail was checking it: nothing was sent. Run SMail again.").format(
                        path=rows))
                if self.save_folder is not None:
                    try:
                        self.save_folder.mkdir(parents=True, exist_ok=True)
                    except OSError as exc:
                        raise files.write_failure(self.save_folder, exc) from None
                if self.results is not None:
                    self.results.start(truncate=not self.settings.resume)
                    self._settle_handoffs()
                terminal = terminal_of(self.console.stderr)
                self.progress = ProgressBar(terminal, self.total) if terminal is not None else None
                self._send(table)
        finally:
            if self.results is not None:
                self.results.close()
        if self.progress is not None:
            self.progress.update(self.tally.done, final=True)
        if self.crash is not None:
            raise self.crash
        return self._outcome()

    def _builder(self, path: Path, columns: tuple[Column, ...]) -> RowBuilder:
        """The rows' builder, with the signing key and certificates loaded once for the run."""
        if self.protection is None and (self.config.smime is not None or any(
                c.option is not None and c.option is Opt.ENCRYPT_TO for c in columns)):
            from smail import smime  # cryptography: only for signed or encrypted rows

            self.protection = smime.prepare(self.config.smime or SMIMESettings())
        return RowBuilder(self.settings.message, self.config.mode, path, columns,
                          default_sender=self.settings.default_sender, protection=self.protection)

    def _validate(self, path: Path) -> tuple[int, int, int, int]:
        """Build and render every row's message; the first bad row stops the run (exit 2 or 8)."""
        with CSVFile(path) as table:
            self.columns = table.columns
            builder = self._builder(path, table.columns)
            last = 1
            for row in table.rows():
                self.total += 1
                last = row.number
                if self._earlier(row, row_key(self.columns, row)) is not None:
                    continue  # handled by an earlier run: its files may be gone since
                values = builder.values(row)
                message = builder.message(values)
                builder.check(values, message)
                mime.render(message)
                self._note_inputs(message, builder.body_file)
            self._check_saved(last, path)
            for number, recorded in self.recorded.items():
                if number > last and recorded.status in (Status.SENT.value, STATUS_SENDING, Status.MAYBE_SENT.value, RESENT):
                    raise ParamError(_("{results} records row {row} as sent, but {path} has no such row: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                        results=self.settings.results, row=number, path=path))
            self._warn_unused(builder)
            return table.identity

    def _earlier(self, row: Row, key: str) -> Status | None:
        """What an earlier run (/BATCH_RESUME) did with this row, when it must not be sent again.
        With /RESEND_UNCERTAIN a row it left may-have-been-sent is sent again (None), as a resend."""
        recorded = self.recorded.get(row.number)
        if recorded is None:
            return None
        status = {Status.SENT.value: Status.SKIPPED, RESENT: Status.SKIPPED, STATUS_SENDING: Status.MAYBE_SENT,
                  Status.MAYBE_SENT.value: Status.MAYBE_SENT, Status.QUEUED.value: Status.QUEUED}.get(recorded.status)
        if status is not None and recorded.key and recorded.key != key:
            raise ParamError(_("Row {row} of {path} is not the row {results} records as {status}: the CSV file changed since. Give /BATCH_RESULT a new file to send the rows again.").format(
                row=row.number, path=self.settings.rows, results=self.settings.results, status=recorded.status))
        if status is Status.MAYBE_SENT and self.settings.resend_uncertain:
            self.resending.add(row.number)  # the administrator checked: it did not arrive
            return None
        return status

    def _note_inputs(self, message: Message, body_file: Path | None) -> None:
        if self.save_folder is None:
            return
        for path in (*(part.path for part in (*message.attachments, *message.inline)), body_file):
            if path is not None:
                self.inputs.setdefault(files.identity(path), path)

    def _check_saved(self, last: int, rows: Path) -> None:
        """/SAVE_EML=folder writes row-NNNN.eml: none of them may be a file the batch reads
        (what a row attaches, its body, the CSV) or writes (results, receipt, log)."""
        if self.save_folder is None:
            return
        others = [rows, self.settings.results, *self.settings.outputs]
        for other in others:
            if other is not None and files.exists(other):
                self.inputs.setdefault(files.identity(other), other)
        for number in range(2, last + 1):
            path = self._saved_path(number)
            clash = self.inputs.get(files.identity(path)) if files.exists(path) else None
            if clash is not None:
                raise ParamError(_("/SAVE_EML={folder} would write {path}, a file the batch reads or writes ({input}): refused, so that it cannot be overwritten.").format(
                    folder=self.save_folder, path=path, input=clash))

    def _warn_unused(self, builder: RowBuilder) -> None:
        """A column that is no option and that no template reads is probably a typo."""
        import difflib

        for column in self.columns:
            if column.option is None and column.name.casefold() not in builder.used:
                close = difflib.get_close_matches(column.name.upper(), [o.name for o in OPTIONS if o.per_row], n=1)
                if close:
                    log.warning(_("Column {column} is neither an option nor used by the templates. Did you mean {suggestion}?").format(
                        column=column.name, suggestion=close[0]))

    def _send(self, table: CSVFile) -> None:
        builder = self._builder(table.path, table.columns)
        rows = table.rows()
        if self.dry_run:
            for row in rows:
                self._dry_row(builder, row)
            return
        session = self.open_session(self.config.transport)
        try:
            completed = send_many(session, self._jobs(builder, rows, table), self.config.retry, on_done=self._done,
                                  per_second=self.settings.per_second, workers=self.workers)
        finally:
            session.close()
        self._settle_pending()
        if not completed:
            self._stop(SMailError(_("the connection failed")))
        if self.stop_error is not None and self.crash is None and not table.changed():
            try:  # (what a changed file holds beyond was never checked: it is not reported)
                for row in rows:
                    self._not_sent(row, builder)
            except SMailError as err:  # the rest of the file cannot be read any more
                log.error(err.message)

    # -- rows ----------------------------------------------------------------------------------

    def _handled_earlier(self, row: Row, key: str, *, strict: bool = True) -> bool:
        """Whether an earlier run (/BATCH_RESUME) handled the row; if so it is reported as such
        and never sent again. Not `strict`: a row that changed since is left to be reported
        as not sent (the run is already stopping)."""
        try:
            earlier = self._earlier(row, key)
        except SMailError:
            if strict:
                raise
            earlier = None
        if earlier is None:
            return False
        self._finish_earlier(row, key, earlier)
        return True

    def _dry_row(self, builder: RowBuilder, row: Row) -> None:
        key = row_key(self.columns, row)
        if self._handled_earlier(row, key):
            return
        values = builder.values(row)
        message = builder.message(values)
        rendered = builder.render(values, message)
        self._save(row, rendered)
        self._finish(row, key, Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                       accepted=tuple(b.address for b in message.recipients)))

    def _jobs(self, builder: RowBuilder, rows: Iterator[Row], table: CSVFile) -> Iterator[Job]:
        """The rows to send, each built when the session asks for it (under send_many's lock).
        After a stop, the rows not yet taken stay in `rows` for _send() to report."""
        while self.stop_error is None and self.crash is None:
            try:
                row = next(rows, None)
                if row is None:
                    return
                if table.changed():  # rows added or rewritten since the check: never sent unchecked
                    self._stop(FileChangedError(_("{path} changed while SMail was sending its rows: the rows from row {row} on were not sent. Run SMail again with /BATCH_RESUME once the file is complete.").format(
                        path=table.path, row=row.number)))
                    self._not_sent(row, builder)
                    return
                key = row_key(self.columns, row)
                if self._handled_earlier(row, key):
                    continue
                try:
                    values = builder.values(row)
                    message = builder.message(values)
                    rendered = builder.render(values, message)
                    self._save(row, rendered)
                except SMailError as err:  # a file that changed or vanished since the check
                    self._finish(row, key, _local(Receipt.from_error(err)), resend=row.number in self.resending)
                    if err.exit_code is ExitCode.ERROR:  # /SAVE_EML cannot be written: stop
                        self._stop(err)
                    continue
                self.pending[row.number] = pending = _Pending(row, key, resend=row.number in self.resending)
                yield Job(key=pending, message=message, rendered=rendered,
                          on_commit=functools.partial(self._commit, pending, message.message_id),
                          on_failure=pending.failed)
            except SMailError as err:
                self._stop(err)
                return
            except Exception as exc:  # a bug: stop there, reported once the session is closed
                self._crash(exc)
                return

    def _commit(self, pending: _Pending, message_id: str) -> None:
        """Just before the end of the message goes out: the row is recorded as being sent."""
        pending.committed = True
        if self.results is None:
            return
        try:
            self.results.record(pending.row.number, STATUS_SENDING, message_id=message_id, key=pending.key, sync=True)
        except OSError as exc:  # unrecorded, the message must not go out: abort it
            error = files.write_failure(self.results.path, exc)
            self._stop(error)
            raise error from None

    def _done(self, job: Job, receipt: Receipt) -> None:
        """A row's outcome (send_many calls this under its lock)."""
        pending = job.key
        assert isinstance(pending, _Pending)
        self.pending.pop(pending.row.number, None)
        try:
            local = receipt.exit_code is ExitCode.ERROR
            receipt = _local(receipt)
            recorded = False
            if receipt.status is Status.FAILED and self.config.outbox is not None and not local:
                receipt, recorded = self._keep(job, receipt, pending.row, pending.key)
            self._finish(pending.row, pending.key, receipt, write=not recorded, resend=pending.resend)
            if ends_session(receipt):
                self._stop(pending.failure or SMailError(receipt.error or ""))
        except Exception as exc:
            self._crash(exc)

    def _keep(self, job: Job, receipt: Receipt, row: Row, key: str) -> tuple[Receipt, bool]:
        """/OUTBOX: a row that failed for a transient reason waits there for /FLUSH; whether
        the results file recorded it as kept.

        The row is recorded as kept, durably, after its entry is whole on disk and before it
        appears in the outbox: a kill at any instant leaves either a row the resume sends
        and a hidden entry it erases, or a recorded row and an entry that only the flush
        sends (outbox.handoff)."""
        from smail import outbox
        from smail.outbox import handoff

        assert self.config.outbox is not None
        results = self.results
        recorded = False

        def record(_entry: str, text: str) -> None:
            nonlocal recorded
            assert results is not None
            results.record(row.number, Status.QUEUED.value, exit_code=int(ExitCode.QUEUED),
                           message_id=job.message.message_id, text=text, key=key)
            os.fsync(results.fd)
            recorded = True
        kept = outbox.keep(self.config.outbox, job.message, job.rendered, receipt,
                           origin=handoff.origin(results.path, row.number, key) if results else None,
                           record=record if results else None)
        if kept.status is Status.QUEUED:
            return kept, recorded
        log.warning(kept.error)
        return receipt, False

    def _settle_handoffs(self) -> None:
        """Entries that a killed run of this batch wrote whole but never showed in the outbox:
        shown when their row is recorded as kept, erased otherwise (the row is sent now)."""
        from smail.outbox import handoff

        if self.config.outbox is None or self.settings.results is None or self.dry_run:
            return
        recorded = self.recorded

        def kept(row: int, key: str, message_id: str) -> bool:
            line = recorded.get(row)
            return line is not None and line.status == Status.QUEUED.value and line.message_id == message_id
        handoff.settle(self.config.outbox.folder, self.settings.results, kept)

    def _settle_pending(self) -> None:
        """Rows handed to the session that never came back (a worker died on a bug)."""
        for pending in list(self.pending.values()):
            status = Status.MAYBE_SENT if pending.committed else Status.FAILED
            self._finish(pending.row, pending.key, Receipt(
                status=status, exit_code=ExitCode.SEND if pending.committed else ExitCode.INTERNAL,
                error=_("The row's outcome is unknown (an internal error); check before sending it again.")))
        self.pending.clear()

    def _not_sent(self, row: Row, builder: RowBuilder) -> None:
        key = row_key(self.columns, row)
        if self._handled_earlier(row, key, strict=False):
            return
        assert self.stop_error is not None
        text = _("Not sent: the batch stopped on an earlier failure ({error}).").format(error=self.stop_error.message)
        failed = Receipt(status=Status.FAILED, exit_code=self.stop_error.exit_code, error=text)
        if self.config.outbox is not None and Receipt.from_error(self.stop_error).status is Status.FAILED:
            # The server is down for every row, not only the one that found out: with /OUTBOX,
            # the rest of the batch waits there for /FLUSH instead of being lost.
            values = builder.values(row)
            message = builder.message(values)
            rendered = builder.render(values, message)
            failed = failed.with_facts(message_id=message.message_id)
            receipt, recorded = self._keep(Job(key=None, message=message, rendered=rendered), failed, row, key)
            self._finish(row, key, receipt, write=not recorded)
            return
        self._finish(row, key, failed, not_sent=True)

    def _finish_earlier(self, row: Row, key: str, status: Status) -> None:
        """A row an earlier run handled: never sent again."""
        if status is Status.SKIPPED:
            receipt = Receipt(status=status, summary=_("already sent by an earlier run"))
        elif status is Status.QUEUED:
            receipt = Receipt(status=status, exit_code=ExitCode.QUEUED,
                              error=_("kept in the outbox by an earlier run"))
        else:
            receipt = Receipt(status=status, exit_code=ExitCode.SEND, error=_(
                "An earlier run was sending this row when it stopped: it may have been delivered. Check before sending it again."))
        write = status is Status.MAYBE_SENT and self.recorded[row.number].status == STATUS_SENDING
        self._finish(row, key, receipt, write=write)

    def _finish(self, row: Row, key: str, receipt: Receipt, *, not_sent: bool = False, write: bool = True,
                resend: bool = False) -> None:
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
                self._stop(files.write_failure(self.results.path, exc))
        if self.keep_receipts:
            self.receipts.append(receipt)
        if self.progress is not None:
            self.progress.update(self.tally.done)

    def _saved_path(self, number: int) -> Path:
        assert self.save_folder is not None
        return self.save_folder / f"row-{number:04d}.eml"

    def _save(self, row: Row, rendered: mime.Rendered) -> None:
        """/SAVE_EML=folder: row-0002.eml for row 2 (exit 1 when it cannot be written)."""
        if self.save_folder is None:
            return
        path = self._saved_path(row.number)
        try:
            with files.open_output(path) as stream:
                rendered.write_to(stream)
        except (OSError, ValueError) as exc:
            raise files.write_failure(path, exc) from None

    # -- the outcome ---------------------------------------------------------------------------

    def _outcome(self) -> Outcome:
        code = self.tally.exit_code()
        text = summary(self.tally, rows=self.settings.rows, results=self.settings.results, dry_run=self.dry_run,
                       save_folder=self.save_folder, stopped=self.stop_error,
                       resend_uncertain=self.settings.resend_uncertain)
        if self.stop_error is not None and code is ExitCode.OK:  # only skipped rows were left
            code = self.stop_error.exit_code
        return Outcome(code, text, self.receipts, None if code is ExitCode.OK else SMailError(text))


def _local(receipt: Receipt) -> Receipt:
    """A row stopped by SMail's own side (a full disk, an output it cannot write) was not
    refused by the server: it failed, and says why."""
    if receipt.status is Status.REFUSED and receipt.exit_code is ExitCode.ERROR:
        return replace(receipt, status=Status.FAILED)
    return receipt


def run(config: BatchRun, console: Console, *, workers: int | None = None) -> Outcome:
    """Send one message per row of /BATCH; `workers` overrides the mode's messages in flight."""
    return Batch(config, console, workers=workers).run()
