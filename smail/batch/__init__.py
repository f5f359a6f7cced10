"""/BATCH: one message per row of a CSV file, over one session, each row sent at most once.

The CSV is streamed, never held, and its rows are read three times: the output check of the
configuration collects the files the rows name (`table.files_named`); a first pass builds and
renders every row's message (addresses, files, templates) so that one bad row stops the run
before anything leaves; the second pass sends, producing each message only when the session
asks for the next one. Each of the three openings first reads the file through once more, to
tell UTF-8 from ANSI (`files.text_encoding`).

Never twice, per row: /BATCH_RESULT gets a `sending` line just before the end of a message
goes out and the row's final line after its outcome, each with one write on a file opened
for appending, so that a run killed at any point leaves an exact record for /BATCH_RESUME.

    table      the CSV file: encoding, separator, rows
    columns    the header: options a row may set, template variables
    templates  the Jinja2 sandbox
    rows       one row -> its values (each cell converted once) -> its message
    results    /BATCH_RESULT and what it records for /BATCH_RESUME
    earlier    what earlier runs did with each row: the one "handled before" check
    state      why the run stopped, and a bug found on the way, under one lock
    report     each row's outcome: tally, log line, results line, receipt, progress
    saved      /SAVE_EML: row-NNNN.eml, never over a file the batch reads or writes
    check      the first pass: every row built and rendered before anything is sent
    feed       the send pass's jobs, each row recorded as being sent before it goes out
    keeping    /OUTBOX: a row that failed, not refused, handed over to the outbox
    sending    the send pass over one session (or /DRY_RUN)
    tally      the counts, the exit code, the progress line
    runner     the run itself: the passes in order, the outcome
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smail.config import BatchRun
    from smail.output import Console
    from smail.receipt import Outcome

__all__ = ["run"]


def run(config: BatchRun, console: Console, *, workers: int | None = None) -> Outcome:
    """Send one message per row of /BATCH; `workers` overrides the mode's messages in flight."""
    # The run is imported here, so that reading the CSV (table) does not load the transports.
    from smail.batch.runner import run as run_batch

    return run_batch(config, console, workers=workers)
