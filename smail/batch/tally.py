"""What happened to a batch's rows: the counts, the exit code, the progress line."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

from smail.batch.results import NOT_SENT, RESENT
from smail.errors import ExitCode, SMailError
from smail.i18n import _, ngettext
from smail.receipt import Status

ACCEPTED: Final = frozenset({Status.SENT, Status.SKIPPED, Status.DRY_RUN})


def batch_exit_code(accepted: int, failures: Counter[ExitCode]) -> ExitCode:
    """0 when every row was accepted; 11 when some were; else the failures' own code (the most
    frequent one, the first seen on a tie)."""
    if not sum(failures.values()):
        return ExitCode.OK
    if accepted:
        return ExitCode.PARTIAL
    return failures.most_common(1)[0][0]


@dataclass
class Tally:
    """What happened to the rows, counted as they finish."""

    counts: Counter[str] = field(default_factory=Counter)
    failures: Counter[ExitCode] = field(default_factory=Counter)
    accepted: int = 0

    def add(self, status: Status, exit_code: ExitCode, *, not_sent: bool = False, resent: bool = False) -> None:
        self.counts[NOT_SENT if not_sent else RESENT if resent else status.value] += 1
        if status in ACCEPTED:
            self.accepted += 1
        else:
            self.failures[exit_code] += 1

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def exit_code(self) -> ExitCode:
        return batch_exit_code(self.accepted, self.failures)

    def counts_text(self) -> str:
        phrases: dict[str, Callable[[int], str]] = {
            Status.SENT.value: lambda n: ngettext("{n} sent", "{n} sent", n),
            RESENT: lambda n: ngettext("{n} sent again (/RESEND_UNCERTAIN)", "{n} sent again (/RESEND_UNCERTAIN)", n),
            Status.SKIPPED.value: lambda n: ngettext("{n} skipped (already sent)", "{n} skipped (already sent)", n),
            Status.REFUSED.value: lambda n: ngettext("{n} refused", "{n} refused", n),
            Status.FAILED.value: lambda n: ngettext("{n} failed", "{n} failed", n),
            Status.MAYBE_SENT.value: lambda n: ngettext("{n} may have been sent", "{n} may have been sent", n),
            Status.QUEUED.value: lambda n: ngettext("{n} kept in the outbox", "{n} kept in the outbox", n),
            NOT_SENT: lambda n: ngettext("{n} not sent", "{n} not sent", n),
        }
        parts = [phrase(self.counts[status]).format(n=self.counts[status])
                 for status, phrase in phrases.items() if self.counts[status]]
        return ", ".join(parts)


class ProgressBar:
    """Rows done / total, rate and time left, on one line of a terminal."""

    def __init__(self, stream: TextIO, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream, self.total, self.clock = stream, total, clock
        self.started = clock()
        self.drawn_at = 0.0

    def update(self, done: int, *, final: bool = False) -> None:
        now = self.clock()
        if not final and now - self.drawn_at < 0.2 and done < self.total:
            return
        self.drawn_at = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        left = int((self.total - done) / rate) if rate > 0 else 0
        width = 20
        filled = width * done // self.total if self.total else width
        eta = f"{left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        text = _("{done}/{total} rows, {rate:.1f}/s, {eta} left").format(
            done=done, total=self.total, rate=rate, eta=eta)
        try:
            self.stream.write(f"\r[{'#' * filled:<{width}}] {text}  ")
            if final:
                self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


def terminal_of(stream: TextIO | None) -> TextIO | None:
    try:
        return stream if stream is not None and stream.isatty() else None
    except (OSError, ValueError):
        return None


def summary(tally: Tally, *, rows: Path, results: Path | None, dry_run: bool, save_folder: Path | None,
            stopped: SMailError | None, resend_uncertain: bool) -> str:
    """The line a batch ends with: what was checked or sent, why it stopped, where the results are."""
    counts = tally.counts_text()
    if dry_run:
        checked = tally.counts[Status.DRY_RUN.value]
        if save_folder is not None:
            text = ngettext("Dry run: {n} message is valid and saved in {folder}; nothing was sent.",
                            "Dry run: {n} messages are valid and saved in {folder}; nothing was sent.",
                            checked).format(n=checked, folder=save_folder)
        else:
            text = ngettext("Dry run: {n} message is valid; nothing was sent.",
                            "Dry run: {n} messages are valid; nothing was sent.", checked).format(n=checked)
    elif not tally.done:
        text = _("{path} has no rows: nothing was sent.").format(path=rows)
    elif stopped is not None:
        error = stopped.message
        text = (_("Batch stopped: {error} ({counts}; see {path}).").format(error=error, counts=counts, path=results)
                if results else _("Batch stopped: {error} ({counts}).").format(error=error, counts=counts))
    else:
        text = (_("Batch: {counts}; see {path}.").format(counts=counts, path=results) if results
                else _("Batch: {counts}.").format(counts=counts))
    if tally.counts[Status.MAYBE_SENT.value] and not resend_uncertain and not dry_run:
        text = " ".join((text, _("Once you have checked that the rows marked may-have-been-sent did not arrive, /BATCH_RESUME /RESEND_UNCERTAIN sends them again.")))
    return text
