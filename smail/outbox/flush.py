"""/FLUSH: the waiting entries sent oldest first over one session, each at most once.

    choose   which entries may be sent, each read back and rendered, or where it went instead
    marks    an entry marked in flight before its end goes out, then sent, or unmarked
    moves    entries to failed/ and uncertain/, and back from uncertain/ (/RESEND_UNCERTAIN)
    status   the counters an entry keeps while it waits
    tally    the flush's exit code and line
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from smail import files
from smail.errors import ParamError, SMailError, reason
from smail.i18n import _
from smail.outbox import choose, disk, handoff, moves, tally
from smail.outbox.choose import Ready, Signing
from smail.outbox.entry import origin_of
from smail.outbox.handoff import Kept
from smail.outbox.layout import DONE, LOCK, NEW, STALE_NEW, entries, outbox_of_uncertain
from smail.outbox.marks import InFlight, MarkError, record_answer
from smail.outbox.preview import dry_run, empty
from smail.outbox.status import read_status, waiting
from smail.receipt import Outcome, Receipt, Status

if TYPE_CHECKING:
    from smail.config import FlushRun
    from smail.output import Console
    from smail.transports import Job, Session


def flush(config: FlushRun, console: Console) -> Outcome:
    """/FLUSH: send the waiting entries oldest first over one session, each at most once."""
    settings = config.outbox
    folder = settings.folder
    if config.output.dry_run:
        return dry_run(settings, console)
    outbox = outbox_of_uncertain(folder)
    if outbox is not None:  # flushing it would send each of them again, without being asked to
        raise ParamError(_("/OUTBOX={folder} is the uncertain folder of the outbox {outbox}: its messages may have been delivered. Once you have checked that they did not arrive, /FLUSH /RESEND_UNCERTAIN /OUTBOX={outbox} sends them again.").format(
            folder=folder, outbox=outbox))
    if not files.is_dir(folder):
        return empty(folder)
    wait = config.transport.timeout
    try:
        fd = disk.lock(folder, wait)
    except OSError as exc:
        raise SMailError(_("The outbox {folder} cannot be locked: {reason}").format(
            folder=folder, reason=reason(exc))) from None
    if fd is None:
        # Exit 1: this run did nothing (no server was contacted: not 3, 4 or 5), and nothing
        # was kept or partly sent by it (not 10 or 11); the other flush is sending the entries.
        raise SMailError(_("Another SMail /FLUSH is sending the outbox {folder} and still held it after {seconds} s: this run sent nothing; the messages stay for the next /FLUSH.").format(
            folder=folder, seconds=round(wait)))
    try:
        _clean(folder, now=time.time())
        return _Flush(config, lock=fd).run()
    finally:
        os.close(fd)


def _clean(folder: Path, *, now: float) -> None:
    """Erase what dead processes left: entries half-deleted, and half-written long ago; a batch
    row's entry that never appeared is published or erased as its results file recorded it."""
    try:
        items = list(os.scandir(folder))
    except OSError:
        return
    for item in items:
        try:
            stale = item.name.startswith(DONE) or (
                item.name.startswith(NEW) and now - item.stat(follow_symlinks=False).st_mtime > STALE_NEW)
        except OSError:
            continue
        if stale and item.is_dir(follow_symlinks=False):
            where = origin_of(Path(item.path)) if item.name.startswith(NEW) else None
            if where is not None:  # kept for a batch row killed before it appeared
                handoff.decide(folder, Path(item.path), where, _recorded_in(Path(where["results"])))
            else:
                shutil.rmtree(item.path, ignore_errors=True)


def _recorded_in(results: Path) -> Kept:
    """What a batch's results file recorded, for a hidden entry a killed batch left."""
    from smail.batch.results import read_results

    try:
        recorded = read_results(results)
    except SMailError:
        return lambda row, key, message_id: None

    def kept(row: int, key: str, message_id: str) -> bool:
        line = recorded.get(row)
        return line is not None and line.status == Status.QUEUED.value and line.message_id == message_id
    return kept


def _session_failed(receipt: Receipt) -> bool:
    """A failure that ends the flush's session: not a drop on one entry, which the next entry,
    over a new connection, may not meet."""
    from smail.transports import dropped_on, ends_session

    return ends_session(receipt) and not dropped_on(receipt)


class _Flush:
    """One /FLUSH under the outbox lock: each entry's receipt, and the failure that stopped it."""

    def __init__(self, config: FlushRun, *, lock: int | None = None, now: Callable[[], float] = time.time) -> None:
        self.config, self.settings, self.lock, self.now = config, config.outbox, lock, now
        self.folder = self.settings.folder
        self.receipts: dict[str, Receipt] = {}
        self.stop: SMailError | None = None
        self.resends: set[str] = set()  # /RESEND_UNCERTAIN: entries brought back from uncertain/
        self.failure: SMailError | None = None  # the error of the entry being sent (one at a time)
        self.in_flight = InFlight(self.folder, now=now)
        self.signing = Signing(config.smime)

    def run(self) -> Outcome:
        from smail import transports

        left = moves.left_for_resend(self.folder) if self.settings.resend_uncertain else set()
        for name in entries(self.folder):
            self._settle(name)
        if self.settings.resend_uncertain:
            self._bring_back(left)
        # An entry in flight that could not be moved to uncertain/ stays, and is never sent
        # (unless an earlier flush reported it so and /RESEND_UNCERTAIN sends it again).
        names = self._unsettled()
        if not names and not self.receipts:
            return empty(self.folder)
        session = transports.open_session(self.config.transport)
        try:
            while names:
                if not self._send(session, names):
                    break
                names = self._unsettled()  # kept meanwhile
        finally:
            session.close()
        for name in names:  # not tried: the session failed or the outbox did
            if name not in self.receipts and self._prepare(name, send=False) is not None:
                self.receipts[name] = waiting(self.folder / name, None, self.stop, now=self.now())
        return tally.outcome(self.folder, self.receipts.values(), self.stop)

    def _unsettled(self) -> list[str]:
        return [n for n in entries(self.folder) if n not in self.receipts]

    def _settle(self, name: str) -> bool:
        """Whether the entry may be sent; if not, its receipt says what its marks made of it."""
        receipt = choose.settle(self.folder, name, now=self.now())
        if receipt is not None:
            self.receipts[name] = receipt
        return receipt is None

    def _bring_back(self, left: set[str]) -> None:
        """/RESEND_UNCERTAIN: the entries of uncertain/, and those `left` in the outbox in flight
        by an earlier flush that could not move them there, are sent again by this flush."""
        found_now = {name for name in self.receipts if name not in left}  # found in flight by this run
        self._again(moves.bring_back(self.folder, skip=found_now))
        stayed = [name for name in sorted(left) if name in self.receipts
                  and self.receipts[name].status is Status.MAYBE_SENT]  # not moved to uncertain/ this time
        self._again(moves.resend_in_place(self.folder, stayed))

    def _again(self, names: set[str]) -> None:
        """These entries are sent again by this flush, whatever it found them to be."""
        for name in names:
            self.receipts.pop(name, None)
        self.resends |= names

    def _send(self, session: Session, names: list[str]) -> bool:
        from smail import transports

        # One at a time, in both modes: strictly oldest first, and a backlog is rarely large.
        complete = transports.send_many(session, self._jobs(names), self.config.retry, on_done=self._done,
                                        per_second=self.settings.per_second, ends=_session_failed)
        return complete and self.stop is None

    def _jobs(self, names: Iterable[str]) -> Iterator[Job]:
        for name in names:
            if self.stop is None and self.lock is not None and not disk.holds_lock(self.folder, self.lock):
                self.stop = SMailError(_("The outbox lock {path} was removed during the flush: stopping, so that another /FLUSH cannot send the same messages.").format(
                    path=self.folder / LOCK))
            if self.stop is not None:
                return
            job = self._prepare(name, send=True)
            if job is not None:
                yield job

    def _prepare(self, name: str, *, send: bool) -> Job | None:
        """The entry's job, or None once its receipt says where it went instead."""
        from smail.transports import Job

        if not files.is_dir(self.folder / name) or name in self.receipts or not self._settle(name):
            return None
        ready = choose.prepare(self.folder / name, self.signing, mode=self.config.mode,
                               max_age=self.settings.max_age, now=self.now(), resend=name in self.resends)
        if not isinstance(ready, Ready):
            self.receipts[name] = ready
            return None
        return Job(key=name, message=ready.message, rendered=ready.rendered,
                   on_commit=(lambda: self.in_flight.mark(name)) if send else None, on_failure=self._failed)

    def _failed(self, err: SMailError) -> None:
        self.failure = err

    def _done(self, job: Job, receipt: Receipt) -> None:
        name = str(job.key)
        resend = name in self.resends or read_status(self.folder / name).get("resend") is True
        receipt = receipt.with_facts(source={"entry": name}, resend=resend)
        failure, self.failure = self.failure, None
        if receipt.status not in (Status.SENT, Status.MAYBE_SENT) and (
                isinstance(failure, MarkError) or _session_failed(receipt)):
            self.stop = self.stop or failure
        self.receipts[name] = record_answer(self.folder, name, receipt, failure, now=self.now())
