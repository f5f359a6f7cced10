"""One /BATCH run: every row validated first, then sent over one session, each at most once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from smail.batch.check import check_rows
from smail.batch.columns import Column
from smail.batch.earlier import EarlierRuns
from smail.batch.feed import JobFeed
from smail.batch.keeping import settle_handoffs
from smail.batch.report import RowReport
from smail.batch.results import ResultsFile, read_results, refuse_restart
from smail.batch.rows import RowBuilder
from smail.batch.saved import SaveFolder
from smail.batch.sending import RowSender
from smail.batch.state import RunState
from smail.batch.table import CSVFile
from smail.batch.tally import ProgressBar, summary, terminal_of
from smail.errors import ExitCode, FileChangedError, SMailError
from smail.i18n import _
from smail.kinds import Mode
from smail.options import Opt
from smail.receipt import Outcome
from smail.settings import SMIMESettings
from smail.transports import Session, open_session

if TYPE_CHECKING:
    from smail.config import BatchRun
    from smail.output import Console
    from smail.settings import TransportSettings
    from smail.smime import Protection

# Graph keeps up to 4 requests in flight per mailbox (Microsoft's throttling guidance: at most
# 4 concurrent requests per app and mailbox); an SMTP session sends one message at a time.
GRAPH_WORKERS: Final = 4


class Batch:
    """One /BATCH run: the results file read, every row checked, then the rows sent."""

    def __init__(self, config: BatchRun, console: Console, *, workers: int | None = None,
                 open_session: Callable[[TransportSettings], Session] = open_session) -> None:
        self.config, self.console = config, console
        self.open_session = open_session
        self.settings = config.batch
        self.workers = workers or (GRAPH_WORKERS if config.mode is Mode.GRAPH else 1)
        self.dry_run = config.output.dry_run
        folder = config.output.save_eml
        self.saved = SaveFolder(folder) if folder is not None else None
        self.state = RunState()
        self.report = RowReport(self.state, keep_receipts=self.settings.receipts)
        self.earlier = EarlierRuns(self.settings)
        self.protection: Protection | None = None

    @property
    def stop_error(self) -> SMailError | None:
        """Why the batch stopped before its end (None while it goes on, or once it ended)."""
        return self.state.error

    def run(self) -> Outcome:
        rows = self.settings.rows
        try:
            if self.settings.results is not None and not self.dry_run:
                self.report.results = ResultsFile(self.settings.results)  # locked before it is read
            if self.settings.results is not None:
                recorded = read_results(self.settings.results)
                if self.settings.resume:
                    self.earlier = EarlierRuns(self.settings, recorded)
                else:  # never start over a file that records deliveries, /DRY_RUN included
                    refuse_restart(self.settings.results, recorded)
            checked = check_rows(self.settings, self._builder, earlier=self.earlier, saved=self.saved)
            with CSVFile(rows) as table:
                if table.identity != checked.identity:
                    raise FileChangedError(_("{path} changed while SMail was checking it: nothing was sent. Run SMail again.").format(
                        path=rows))
                if self.saved is not None:
                    self.saved.make()
                results = self.report.results
                if results is not None:
                    results.start(truncate=not self.settings.resume)
                    if self.config.outbox is not None:
                        settle_handoffs(self.config.outbox, results, self.earlier)
                terminal = terminal_of(self.console.stderr)
                self.report.progress = ProgressBar(terminal, checked.total) if terminal is not None else None
                self._send(table, checked.columns)
        finally:
            if self.report.results is not None:
                self.report.results.close()
        if self.report.progress is not None:
            self.report.progress.update(self.report.tally.done, final=True)
        if self.state.crash is not None:
            raise self.state.crash
        return self._outcome()

    def _builder(self, path: Path, columns: tuple[Column, ...]) -> RowBuilder:
        """The rows' builder, with the signing key and certificates loaded once for the run."""
        if self.protection is None and (self.config.smime is not None or any(
                c.option is Opt.ENCRYPT_TO for c in columns)):
            from smail import smime  # cryptography: only for signed or encrypted rows

            self.protection = smime.prepare(self.config.smime or SMIMESettings())
        return RowBuilder(self.settings.message, self.config.mode, path, columns,
                          default_sender=self.settings.default_sender, protection=self.protection)

    def _send(self, table: CSVFile, columns: tuple[Column, ...]) -> None:
        feed = JobFeed(self.state, self.report, self.earlier, self._builder(table.path, table.columns), columns,
                       saved=self.saved, outbox=self.config.outbox)
        sender = RowSender(feed, per_second=self.settings.per_second, workers=self.workers)
        if self.dry_run:
            sender.dry_run(table)
        else:
            sender.send(table, self.open_session, self.config.transport, self.config.retry)

    def _outcome(self) -> Outcome:
        stopped = self.state.error
        code = self.report.tally.exit_code()
        text = summary(self.report.tally, rows=self.settings.rows, results=self.settings.results, dry_run=self.dry_run,
                       save_folder=self.saved.folder if self.saved is not None else None, stopped=stopped,
                       resend_uncertain=self.settings.resend_uncertain)
        if stopped is not None and code is ExitCode.OK:  # only skipped rows were left
            code = stopped.exit_code
        return Outcome(code, text, self.report.receipts, None if code is ExitCode.OK else SMailError(text))


def run(config: BatchRun, console: Console, *, workers: int | None = None) -> Outcome:
    """Send one message per row of /BATCH; `workers` overrides the mode's messages in flight."""
    return Batch(config, console, workers=workers).run()
