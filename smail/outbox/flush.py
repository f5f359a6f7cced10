"""/FLUSH: the waiting entries sent oldest first over one session, each at most once."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smail import files, redact
from smail.errors import ExitCode, ParamError, SMailError, reason
from smail.i18n import _, ngettext
from smail.kinds import Mode
from smail.message import Message
from smail.outbox import disk, handoff
from smail.outbox.entry import origin_of, read_entry
from smail.outbox.handoff import Kept
from smail.outbox.layout import (
    DONE,
    ENTRY,
    ENTRY_NAME,
    FAILED,
    FORMAT,
    LOCK,
    NEW,
    REASON,
    SENDING_MARK,
    SENT_MARK,
    STALE_NEW,
    STATUS,
    UNCERTAIN,
    Mark,
    Unreadable,
    dump,
    entries,
    iso,
    left_in_flight,
    load,
    mark,
    name_time,
    outbox_of_uncertain,
)
from smail.outbox.preview import dry_run, empty
from smail.receipt import Outcome, Receipt, Status

if TYPE_CHECKING:
    from smail.config import FlushRun
    from smail.mime import Rendered, SMIMERecord
    from smail.output import Console
    from smail.settings import OutboxSettings
    from smail.smime import Protection
    from smail.transports import Job, Session

log = logging.getLogger("smail")


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"



class _OutboxError(SMailError):
    """The outbox itself failed (an entry could not be marked as being sent): stop sending."""


def _session_failed(receipt: Receipt) -> bool:
    """A failure that ends the flush's session: not a drop on one entry, which the next entry,
    over a new connection, may not meet."""
    from smail.transports import dropped_on, ends_session

    return ends_session(receipt) and not dropped_on(receipt)


def _check_for_graph(message: Message) -> None:
    """An entry kept in SMTP mode may carry headers Microsoft Graph refuses: Unreadable then."""
    from smail.config import check_graph_headers

    try:
        check_graph_headers(tuple(f"{name}: {value}" for name, value in message.headers))
    except ParamError as err:
        raise Unreadable(_("The outbox entry cannot be sent through Microsoft Graph: {reason}").format(
            reason=err.message)) from None


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
        return _Flush(config, settings, lock=fd).run()
    finally:
        os.close(fd)


class _Unsignable(Exception):
    def __init__(self, error: ParamError) -> None:
        super().__init__(error.message)
        self.error = error


class _Flush:
    """One /FLUSH under the outbox lock: what it sent, kept and moved."""

    def __init__(self, config: FlushRun, settings: OutboxSettings, *, lock: int | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.config, self.settings, self.now, self.lock = config, settings, now, lock
        self.folder = settings.folder
        self.receipts: dict[str, Receipt] = {}
        self.stop: SMailError | None = None
        self.resends: set[str] = set()  # /RESEND_UNCERTAIN: entries brought back from uncertain/
        self.committed: set[str] = set()  # entries this run marked as in flight
        self.failure: SMailError | None = None  # the error of the entry being sent (one at a time)
        self.signing: Protection | None = None  # /SIGN_CERT, loaded for the first signed entry

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> Outcome:
        from smail import transports

        self._clean()
        left = self._left_in_flight() if self.settings.resend_uncertain else set()
        for name in entries(self.folder):
            self._settle(name)
        if self.settings.resend_uncertain:
            self._bring_back(left)
            self._resend_in_place(left)
        # An entry in flight that could not be moved to uncertain/ stays, and is never sent
        # (unless an earlier flush reported it so and /RESEND_UNCERTAIN sends it again).
        names = [n for n in entries(self.folder) if n not in self.receipts]
        if not names and not self.receipts:
            return empty(self.folder)
        session = transports.open_session(self.config.transport)
        try:
            while names:
                if not self._send(session, names):
                    break
                names = [n for n in entries(self.folder) if n not in self.receipts]  # kept meanwhile
        finally:
            session.close()
        for name in names:  # not tried: the session failed or the outbox did
            if name not in self.receipts and self._prepare(name, send=False) is not None:
                self._waiting(name, None, self.stop)
        return self._outcome()

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
        """The entry's job, or None once a damaged or expired entry has gone to failed/."""
        from smail import mime
        from smail.transports import Job

        entry = self.folder / name
        if not files.is_dir(entry):
            return None
        if name not in self.receipts and not self._settle(name):  # sent, in flight or unreadable
            return None
        if name in self.receipts:
            return None
        resend = name in self.resends  # brought back by this run: its age is the administrator's call
        try:
            loaded = read_entry(entry, now=self.now())
            if self.config.mode is Mode.GRAPH:  # the rule the command line applies in Graph mode
                _check_for_graph(loaded.message)
            if loaded.smime is None:
                rendered = mime.render(loaded.message)
            else:
                rendered = self._protect(loaded.message, loaded.smime)
        except _Unsignable as unsignable:  # waits for a /FLUSH with the signing options
            self._waiting(name, None, unsignable.error)
            return None
        except Unreadable as bad:
            self._move(name, FAILED, bad.text, Receipt(status=Status.REFUSED, exit_code=bad.exit_code,
                                                       error=bad.text, source={"entry": name}))
            return None
        except OSError as exc:  # e.g. held by an antivirus: left for the next flush, until it expires
            text = _("The outbox entry {entry} cannot be read now: {reason}").format(entry=name, reason=reason(exc))
            kept = name_time(name)
            if kept is not None and self.now() - kept > self.settings.max_age and not resend:
                self._expire(name, None, text)
            else:
                self._waiting(name, None, SMailError(text))
            return None
        except (ValueError, SMailError) as exc:  # text no message can carry, a part that cannot be built
            why = exc.message if isinstance(exc, SMailError) else str(exc).encode("utf-8", "backslashreplace").decode()
            text = _("The outbox entry is damaged: {reason}").format(reason=why)
            self._move(name, FAILED, text, Receipt(status=Status.REFUSED, exit_code=ExitCode.ERROR, error=text,
                                                   source={"entry": name}))
            return None
        age = self.now() - loaded.created
        if age > self.settings.max_age and not resend:  # a resend is the administrator's decision
            self._expire(name, loaded.message.message_id, None)
            return None
        return Job(key=name, message=loaded.message, rendered=rendered,
                   on_commit=(lambda: self._commit(name)) if send else None, on_failure=self._failed)

    def _failed(self, err: SMailError) -> None:
        self.failure = err

    def _protect(self, message: Message, kept: SMIMERecord) -> Rendered:
        """The entry's message signed with this flush's certificate, encrypted to the entry's;
        _Unsignable when this flush cannot sign it (no /SIGN_CERT, or one for another address)."""
        from smail import smime

        settings = self.config.smime
        try:
            if self.signing is None and settings is not None:
                self.signing = smime.prepare(settings)
            signer = self.signing.signer if self.signing is not None else None
            chosen = smime.replan(kept, signer, message, any_address=settings.sign_any_address if settings else False)
        except ParamError as err:
            raise _Unsignable(err) from None
        return smime.protect(message, chosen)

    def _expire(self, name: str, message_id: str | None, error: str | None) -> None:
        """Older than /OUTBOX_MAX_AGE: to failed/ with the last error, never sent."""
        limit = _age_text(self.settings.max_age)
        last = error or self._status(name).get("last_error")
        if isinstance(last, str) and last:
            text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up. Last error: {error}").format(
                age=limit, error=last)
        else:
            text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up.").format(age=limit)
        self._move(name, FAILED, text, Receipt(status=Status.REFUSED, message_id=message_id,
                                               exit_code=ExitCode.RETRY_EXCEEDED, error=text, source={"entry": name}))

    def _resend(self, name: str) -> bool:
        """Whether this entry is sent again by the administrator's decision (/RESEND_UNCERTAIN)."""
        return name in self.resends or self._status(name).get("resend") is True

    def _commit(self, name: str) -> None:
        """Just before the end of the message goes out: mark the entry as in flight, durably,
        so that a flush killed from now on leaves it to uncertain/ instead of sending it again."""
        entry = self.folder / name
        if name in self.committed and os.path.lexists(entry / SENDING_MARK):
            return  # another attempt of this run (after a 429, a drop before the end): still marked
        try:
            disk.write_new(entry / SENDING_MARK, dump({"since": iso(self.now()), "pid": os.getpid()}))
            disk.fsync_dir(entry)
            self.committed.add(name)
        except OSError as exc:
            raise _OutboxError(_("The outbox entry {entry} could not be marked as being sent ({reason}), so it was not sent.").format(
                entry=name, reason=reason(exc))) from None

    def _done(self, job: Job, receipt: Receipt) -> None:
        from smail.transports import ends_session

        name = str(job.key)
        receipt = receipt.with_facts(source={"entry": name}, resend=self._resend(name))
        failure, self.failure = self.failure, None
        if receipt.status is Status.SENT:
            self.receipts[name] = receipt
            if receipt.resend:
                log.warning(_("Outbox entry {entry} sent again (/RESEND_UNCERTAIN): {summary}").format(
                    entry=name, summary=receipt.summary))
            else:
                log.info(_("Outbox entry {entry} sent: {summary}").format(entry=name, summary=receipt.summary))
            self._remove(name, recorded=self._record_sent(name, receipt))
        elif receipt.status is Status.MAYBE_SENT:
            self._move(name, UNCERTAIN, receipt.error or "", receipt)
        elif receipt.status is Status.FAILED or isinstance(failure, _OutboxError) or ends_session(receipt):
            if isinstance(failure, _OutboxError) or _session_failed(receipt):
                self.stop = self.stop or failure
            self._unmark(name)
            self._waiting(name, receipt, failure)
        else:  # refused for good: sending it again cannot help
            self._unmark(name)
            self._move(name, FAILED, receipt.error or "", receipt)

    # -- entries -------------------------------------------------------------------------------

    def _status(self, name: str, where: Path | None = None) -> dict[str, Any]:
        try:
            document = load((where or self.folder / name) / STATUS)
        except (OSError, ValueError, Unreadable):
            return {}
        return document if isinstance(document, dict) else {}

    def _update_status(self, entry: Path, **changes: Any) -> None:
        """Replace status.json; a failure only loses the counters, never the entry."""
        document = self._status(entry.name, entry)
        document.setdefault("format", FORMAT)
        document.update(changes)
        try:  # never through a link: replace_name replaces a link by that name itself
            files.replace_name(entry / STATUS, dump(document))
        except OSError as exc:
            log.warning(_("The status of the outbox entry {entry} could not be written: {reason}").format(
                entry=entry.name, reason=reason(exc)))

    def _waiting(self, name: str, receipt: Receipt | None, failure: SMailError | None) -> None:
        """The entry stays for the next flush; its status counts the attempt."""
        error = redact.redact(receipt.error or "") if receipt else (failure.message if failure else "")
        if receipt is not None and receipt.attempts:
            attempts = self._status(name).get("attempts")
            self._update_status(self.folder / name, last_attempt=iso(self.now()), last_error=error or None,
                                last_exit_code=int(receipt.exit_code),
                                attempts=(attempts if isinstance(attempts, int) else 0) + receipt.attempts)
        if receipt is None:
            receipt = Receipt(status=Status.QUEUED, error=error or None, source={"entry": name},
                              exit_code=failure.exit_code if failure else ExitCode.ERROR)
        self.receipts[name] = receipt.with_facts(status=Status.QUEUED, source={"entry": name})
        if error:
            log.warning(_("Outbox entry {entry} stays for the next /FLUSH: {error}").format(entry=name, error=error))

    def _unmark(self, name: str) -> None:
        """After a certain non-delivery, the entry is no longer in flight."""
        entry = self.folder / name
        try:
            if os.path.lexists(entry / SENDING_MARK):
                os.unlink(entry / SENDING_MARK)
                disk.fsync_dir(entry)
        except OSError as exc:
            log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): the next /FLUSH will move it to uncertain.").format(
                entry=name, reason=reason(exc)))

    def _record_sent(self, name: str, receipt: Receipt) -> bool:
        """Before anything else, mark an accepted entry as sent, durably: whatever fails after
        this (its removal), no flush sends it again, /RESEND_UNCERTAIN included."""
        entry = self.folder / name
        record = dump({"at": iso(self.now()), "message_id": receipt.message_id, "server": receipt.server,
                       "reply": redact.redact(receipt.reply) if receipt.reply else None})
        try:
            disk.write_new(entry / SENT_MARK, record)
            disk.fsync_dir(entry)
            return True
        except OSError as exc:
            why = reason(exc)
        try:  # a full disk can still rename: the in-flight mark becomes the sent mark
            files.rename(entry / SENDING_MARK, entry / SENT_MARK)
            disk.fsync_dir(entry)
            return True
        except OSError:
            log.warning(_("The outbox entry {entry} was sent but could not be marked as sent: {reason}").format(
                entry=name, reason=why))
            return False

    def _remove(self, name: str, *, recorded: bool) -> OSError | None:
        """Delete a sent entry: renamed aside at once (one atomic step), then erased; the error
        when it could not be."""
        done = self.folder / f"{DONE}{name}"
        try:
            files.rename(self.folder / name, done)
            disk.fsync_dir(self.folder)
        except OSError as exc:
            if recorded:
                log.warning(_("The outbox entry {entry} was sent but could not be removed ({reason}): it is marked as sent, so that no /FLUSH sends it again; the next one removes it.").format(
                    entry=name, reason=reason(exc)))
            else:
                log.warning(_("The outbox entry {entry} was sent but could neither be removed nor marked as sent ({reason}): the next /FLUSH moves it to uncertain. It was delivered: do not send it again with /RESEND_UNCERTAIN.").format(
                    entry=name, reason=reason(exc)))
            return exc
        shutil.rmtree(done, ignore_errors=True)
        return None

    def _settle(self, name: str) -> bool:
        """Whether the entry may be sent; one already sent is removed (or left), one in flight
        goes to uncertain/, one whose marks the OS will not show too, with that reason."""
        try:
            state = mark(self.folder / name)
        except OSError as exc:
            self._unreadable(name, exc)
            return False
        if state == Mark.SENT:
            self._already_sent(name)
            return False
        if state == Mark.SENDING:
            self._recover(name)
            return False
        return True

    def _already_sent(self, name: str) -> None:
        """An entry the server accepted but an earlier flush could not remove: never sent again."""
        when, message_id = "?", None
        try:
            record = load(self.folder / name / SENT_MARK)
            if isinstance(record, dict):
                when = str(record.get("at") or "?")
                found = record.get("message_id")
                message_id = found if isinstance(found, str) else None
        except (OSError, ValueError, Unreadable):
            pass
        failed = self._remove(name, recorded=True)
        if failed is None:
            text = _("The outbox entry {entry} had already been sent ({when}); it could not be removed then: it is removed now, and not sent again.").format(
                entry=name, when=when)
            log.warning(text)
            self.receipts[name] = Receipt(status=Status.SKIPPED, message_id=message_id, summary=text,
                                          source={"entry": name})
            return
        text = _("The outbox entry {entry} had already been sent ({when}) and still cannot be removed ({reason}): it stays in the outbox, and is never sent again.").format(
            entry=name, when=when, reason=reason(failed))
        log.warning(text)
        self.receipts[name] = Receipt(status=Status.SKIPPED, message_id=message_id, summary=text, error=text,
                                      source={"entry": name})

    def _unreadable(self, name: str, exc: OSError) -> None:
        """An entry the OS will not read: whether a flush was sending it cannot be told, so it is
        never sent as it is; it goes to uncertain/ with that reason."""
        text = _("The outbox entry cannot be read ({reason}): whether a /FLUSH was sending it cannot be told, so it is not sent. Once it can be read and you have checked that it did not arrive, /FLUSH /RESEND_UNCERTAIN sends it.").format(
            reason=reason(exc))
        self._move(name, UNCERTAIN, text, Receipt(status=Status.MAYBE_SENT, exit_code=ExitCode.ERROR, error=text))

    def _move(self, name: str, where: str, text: str, receipt: Receipt) -> None:
        """To failed/ or uncertain/ with its reason; the entry is never sent again from there.
        When it cannot be moved, it stays in place: one in flight keeps its mark (never sent)."""
        text = redact.redact(text)
        entry = self.folder / name
        self.receipts[name] = receipt.with_facts(source={"entry": name})
        try:
            files.replace_name(entry / REASON, f"{iso(self.now())} {text}\n".encode("utf-8", "backslashreplace"))
        except OSError as exc:  # the reason is still in the log and the result file
            log.warning(_("The reason could not be written into the outbox entry {entry}: {reason}").format(
                entry=name, reason=reason(exc)))
        self._update_status(entry, outcome=where, reason=text)
        target_folder = self.folder / where
        try:
            if not files.real_folder(target_folder):
                if os.path.lexists(target_folder):  # a link (or a file): never moved into, nor through
                    raise NotADirectoryError(errno.ENOTDIR, _("it is not a folder (a link or a file)"))
                target_folder.mkdir()
            target = target_folder / name
            number = 1
            while os.path.lexists(target):
                number += 1
                target = target_folder / f"{name}-{number}"
            files.rename(entry, target)
            disk.fsync_dir(self.folder)
            disk.fsync_dir(target_folder)
        except OSError as exc:
            # Left in place: an entry in flight keeps its mark, so that no flush sends it again.
            stays = _("The outbox entry {entry} could not be moved to {folder} ({reason}): it stays in the outbox, and is never sent as it is.").format(
                entry=name, folder=target_folder, reason=reason(exc))
            log.warning(stays)
            self.receipts[name] = receipt.with_facts(source={"entry": name}, error=f"{text} {stays}")
            return
        try:  # its job is done; without it, the entry can be moved back to be sent again
            os.unlink(target / SENDING_MARK)
        except OSError:
            pass
        log.warning(_("Outbox entry {entry} moved to {folder}: {reason}").format(entry=name, folder=target, reason=text))

    def _recover(self, name: str) -> None:
        """An entry left in flight by a flush that died: it may have been delivered."""
        text = _("A /FLUSH stopped after the end of this message went out: it may have been delivered. Check before sending it again.")
        message_id = None
        try:
            document = load(self.folder / name / ENTRY)
            found = document.get("message", {}).get("message_id")
            message_id = found if isinstance(found, str) else None
        except (OSError, ValueError, Unreadable, AttributeError):
            pass
        self._move(name, UNCERTAIN, text, Receipt(status=Status.MAYBE_SENT, message_id=message_id,
                                                  exit_code=ExitCode.SEND, error=text))

    def _clean(self) -> None:
        """Erase what dead processes left: entries half-deleted, and half-written long ago."""
        try:
            items = list(os.scandir(self.folder))
        except OSError:
            return
        for item in items:
            try:
                stale = item.name.startswith(DONE) or (
                    item.name.startswith(NEW) and self.now() - item.stat(follow_symlinks=False).st_mtime > STALE_NEW)
            except OSError:
                continue
            if stale and item.is_dir(follow_symlinks=False):
                where = origin_of(Path(item.path)) if item.name.startswith(NEW) else None
                if where is not None:  # kept for a batch row killed before it appeared
                    handoff.decide(self.folder, Path(item.path), where, _recorded_in(Path(where["results"])))
                else:
                    shutil.rmtree(item.path, ignore_errors=True)

    def _left_in_flight(self) -> set[str]:
        """The entries an earlier flush found in flight and could not move to uncertain/ (it
        recorded the move it tried): what /RESEND_UNCERTAIN covers besides uncertain/."""
        left = set()
        for name in entries(self.folder):
            entry = self.folder / name
            try:
                if mark(entry) != Mark.SENDING:
                    continue
            except OSError:
                continue
            if left_in_flight(entry):
                left.add(name)
        return left

    def _resend_in_place(self, left: set[str]) -> None:
        """/RESEND_UNCERTAIN: an entry left in the outbox marked as in flight, because an earlier
        flush could not move it to uncertain/, is sent again like those of uncertain/."""
        for name in sorted(left):
            entry = self.folder / name
            receipt = self.receipts.get(name)
            if receipt is None or receipt.status is not Status.MAYBE_SENT or not files.real_folder(entry):
                continue  # moved to uncertain/ this time, or gone
            try:
                if mark(entry) != Mark.SENDING:
                    continue
            except OSError:
                continue
            self._update_status(entry, resend=True)
            try:
                os.unlink(entry / SENDING_MARK)
                disk.fsync_dir(entry)
            except OSError as exc:
                log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): it is not sent again.").format(
                    entry=name, reason=reason(exc)))
                continue
            del self.receipts[name]
            self.resends.add(name)
            log.warning(_("Outbox entry {entry}, left in the outbox as in flight because {folder} could not be used, is sent again (/RESEND_UNCERTAIN).").format(
                entry=name, folder=self.folder / UNCERTAIN))

    def _bring_back(self, left: set[str]) -> None:
        """/RESEND_UNCERTAIN: the entries of uncertain/ go back to the outbox, each marked as a
        resend before it moves, to be sent again by this flush."""
        where = self.folder / UNCERTAIN
        if not files.real_folder(where):
            if os.path.lexists(where):
                log.warning(_("{folder} is not a folder (a link or a file): nothing is sent again from it.").format(
                    folder=where))
            return
        try:
            items = sorted(os.scandir(where), key=lambda item: item.name)
        except OSError as exc:
            log.warning(_("{folder} cannot be read: {reason}").format(folder=where, reason=reason(exc)))
            return
        for item in items:
            found = ENTRY_NAME.match(item.name)
            rest = item.name[found.end():] if found else ""
            if not found or not (rest == "" or (rest[:1] == "-" and rest[1:].isdigit())) \
                    or not item.is_dir(follow_symlinks=False):
                continue
            name, source = found.group(0), Path(item.path)
            if name in self.receipts and name not in left:  # found in flight by this run: not checked
                continue
            try:
                state = mark(source)
            except OSError as exc:
                log.warning(_("The outbox entry {entry} in {folder} cannot be read ({reason}): it is not sent again.").format(
                    entry=item.name, folder=where, reason=reason(exc)))
                continue
            if state == Mark.SENT:
                log.warning(_("The outbox entry {entry} in {folder} had already been sent: it is not sent again.").format(
                    entry=item.name, folder=where))
                continue
            if os.path.lexists(self.folder / name):
                log.warning(_("{entry} is both in {folder} and in the outbox: it is not sent again.").format(
                    entry=item.name, folder=where))
                continue
            self._update_status(source, resend=True)
            try:
                files.rename(source, self.folder / name)
                disk.fsync_dir(self.folder)
                disk.fsync_dir(where)
            except OSError as exc:
                log.warning(_("The outbox entry {entry} could not be moved back from {folder} ({reason}): it is not sent again.").format(
                    entry=item.name, folder=where, reason=reason(exc)))
                continue
            try:
                os.unlink(self.folder / name / SENDING_MARK)
            except FileNotFoundError:
                pass
            except OSError as exc:  # still marked: the next flush puts it back in uncertain/
                log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): the next /FLUSH will move it to uncertain.").format(
                    entry=name, reason=reason(exc)))
                continue
            self.resends.add(name)
            self.receipts.pop(name, None)
            log.warning(_("Outbox entry {entry} moved back from {folder}, to be sent again (/RESEND_UNCERTAIN).").format(
                entry=name, folder=where))

    # -- the outcome ---------------------------------------------------------------------------

    def _outcome(self) -> Outcome:
        receipts = list(self.receipts.values())
        if not receipts:
            return empty(self.folder)
        sent = sum(r.status is Status.SENT for r in receipts)
        earlier = [r for r in receipts if r.status is Status.SKIPPED]  # sent by an earlier flush
        if sent + len(earlier) == len(receipts):
            resent = sum(r.resend for r in receipts)
            if not sent:
                text = " ".join(r.summary for r in earlier)
            elif resent:
                text = ngettext("{n} message sent from the outbox {folder}, {resent} of them sent again from {uncertain} (/RESEND_UNCERTAIN); it is now empty.",
                                "{n} messages sent from the outbox {folder}, {resent} of them sent again from {uncertain} (/RESEND_UNCERTAIN); it is now empty.",
                                sent).format(n=sent, folder=self.folder, resent=resent, uncertain=self.folder / UNCERTAIN)
            else:
                text = ngettext("{n} message sent from the outbox {folder}; it is now empty.",
                                "{n} messages sent from the outbox {folder}; it is now empty.",
                                sent).format(n=sent, folder=self.folder)
            if sent and earlier:
                text = " ".join((text, *(r.summary for r in earlier)))
            return Outcome(ExitCode.OK, text, receipts)
        first = next(r for r in receipts if r.status is not Status.SENT)
        facts = {"folder": self.folder, "sent": sent, "waiting": sum(r.status is Status.QUEUED for r in receipts),
                 "failed": sum(r.status is Status.REFUSED for r in receipts), "failed_folder": self.folder / FAILED,
                 "uncertain": sum(r.status is Status.MAYBE_SENT for r in receipts),
                 "uncertain_folder": self.folder / UNCERTAIN,
                 "error": self.stop.message if self.stop is not None else first.error or ""}
        if sent:
            text = _("Outbox {folder}: {sent} sent, {waiting} still waiting, {failed} moved to {failed_folder}, {uncertain} moved to {uncertain_folder}. First failure: {error}").format(**facts)
            return Outcome(ExitCode.PARTIAL, text, receipts, SMailError(text))
        # None could be sent: the failure's own code (3 server down, 4 login refused...).
        code = self.stop.exit_code if self.stop is not None else first.exit_code
        text = _("{error} Outbox {folder}: {sent} sent, {waiting} still waiting, {failed} moved to {failed_folder}, {uncertain} moved to {uncertain_folder}.").format(**facts)
        return Outcome(code, text, receipts, SMailError(text))
