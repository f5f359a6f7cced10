"""/OUTBOX and /FLUSH: a message that cannot be delivered now waits on disk, and /FLUSH sends
it later at most once, even when killed at any moment, and never loses one.

The folder:
    <entry>/entry.json    the message, mode-neutral (SMTP or Graph); never rewritten
    <entry>/status.json   created, attempts, last error; replaced atomically
    <entry>/files/<n>     copies of the inline files and attachments
    <entry>/sending       written and fsynced just before the end of the message goes out
    failed/<entry>/       refused, expired or unreadable, with reason.txt
    uncertain/<entry>/    may have been sent: never resent automatically
    .lock                 locked by the running /FLUSH (an OS lock: released when it dies)
    .new-<entry>/         an entry being written; .done-<entry>/ one being deleted

Entry names start with their UTC creation time, so that sorting them gives the oldest first.
Nothing secret is stored: /FLUSH brings its own credentials.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from smail import files, redact
from smail.errors import ExitCode, SMailError, reason
from smail.i18n import _, ngettext
from smail.message import FilePart, Mailbox, Message, Priority, open_part
from smail.receipt import Outcome, Receipt, Status

if TYPE_CHECKING:
    from smail.config import Config, OutboxSettings
    from smail.mime import Rendered
    from smail.output import Console
    from smail.transports import Job, Session

log = logging.getLogger("smail")

FORMAT: Final = 1
ENTRY: Final = "entry.json"
STATUS: Final = "status.json"
FILES: Final = "files"
SENDING: Final = "sending"
REASON: Final = "reason.txt"
FAILED: Final = "failed"
UNCERTAIN: Final = "uncertain"
LOCK: Final = ".lock"
NEW: Final = ".new-"
DONE: Final = ".done-"
# An unfinished .new- entry older than this was left by a process that died while writing it.
STALE_NEW: Final = 3600.0
LOCK_POLL: Final = 0.1
COPY_BLOCK: Final = 1024 * 1024
# entry.json holds the body (at most BODY_LIMIT) and its text alternative, escaped.
JSON_LIMIT: Final = 4 * files.BODY_LIMIT


# -- the lock ----------------------------------------------------------------------------------

def _lock(folder: Path, wait: float, *, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> int | None:
    """The outbox's lock file, locked by us; None when another flush still holds it after `wait` s.

    The file locked must still be the one the outbox names: a lock file deleted and created
    again meanwhile (by hand, by a cleaner) would let two flushes run at once.
    """
    deadline = clock() + wait
    while True:
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0)
                     | getattr(os, "O_NOINHERIT", 0), 0o666)
        try:
            while not files.lock_file(fd):
                if clock() >= deadline:
                    os.close(fd)
                    return None
                sleep(LOCK_POLL)
            if holds_lock(folder, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def holds_lock(folder: Path, fd: int) -> bool:
    """Whether the locked file `fd` is still the outbox's lock file."""
    try:
        held, named = os.fstat(fd), os.stat(folder / LOCK)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino) if held.st_ino else True


# -- durable files -----------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    """Make the names created, renamed or deleted in a folder durable; NTFS journals them itself."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot sync a folder; their renames are synchronous
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """A file written whole and fsynced before anything can depend on it."""
    with open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _dump(document: dict[str, Any]) -> bytes:
    # surrogatepass: a name or argument the OS gave as undecodable bytes round-trips exactly.
    return (json.dumps(document, ensure_ascii=False, indent=1) + "\n").encode("utf-8", "surrogatepass")


def _load(path: Path) -> Any:
    """A JSON file of the outbox; _Unreadable when missing or not a file, OSError when the OS
    cannot read it now (a lock held by an antivirus), ValueError when it is not JSON."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise _Unreadable(_("The outbox entry has no {name}.").format(name=path.name)) from None
    if not stat.S_ISREG(info.st_mode):
        raise _damaged(path.name)
    with open(path, "rb") as stream:
        if os.fstat(stream.fileno()).st_size > JSON_LIMIT:
            raise _damaged(path.name)
        data = stream.read()
    return json.loads(data.decode("utf-8", "surrogatepass"))


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat()


_ENTRY_NAME: Final = re.compile(r"\d{8}T\d{6}-\d{6}Z-[0-9a-f]{12}")


def _new_name(now: float) -> str:
    stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
    return f"{stamp:%Y%m%dT%H%M%S}-{stamp.microsecond:06d}Z-{uuid.uuid4().hex[:12]}"


# -- an entry's message ------------------------------------------------------------------------

class _Unreadable(Exception):
    """An entry that cannot be read back as the message it was: it goes to failed/."""

    def __init__(self, text: str, exit_code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(text)
        self.text = text
        self.exit_code = exit_code


def _box(box: Mailbox) -> dict[str, Any]:
    return {"address": box.address, "name": box.name}


def encode_message(message: Message) -> dict[str, Any]:
    """Every field of the Message as JSON; file parts name their copy `files/<n>` in the entry."""
    numbers = iter(range(len(message.inline) + len(message.attachments)))

    def part(item: FilePart) -> dict[str, Any]:
        return {"file": f"{FILES}/{next(numbers)}", "filename": item.filename,
                "content_type": item.content_type, "content_id": item.content_id, "size": item.size}
    return {
        "sender": _box(message.sender), "to": [_box(b) for b in message.to],
        "cc": [_box(b) for b in message.cc], "bcc": [_box(b) for b in message.bcc],
        "reply_to": [_box(b) for b in message.reply_to], "subject": message.subject,
        "body": message.body, "html": message.html, "text_alternative": message.text_alternative,
        "inline": [part(p) for p in message.inline], "attachments": [part(p) for p in message.attachments],
        "priority": message.priority.value if message.priority is not None else None,
        "read_ack": message.read_ack, "reception_ack": message.reception_ack,
        "headers": [[name, value] for name, value in message.headers],
        "message_id": message.message_id, "date": message.date,
    }


def _damaged(key: str) -> _Unreadable:
    return _Unreadable(_("The outbox entry is damaged: {field} is missing or invalid.").format(field=key))


def _field(data: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _damaged(key)
    if isinstance(value, str) and any(ch in value for ch in "\r\n\0") and key not in ("body", "text_alternative"):
        raise _damaged(key)  # would inject header lines (RFC 5322 section 2.2)
    return value


def _mailbox(data: Any, key: str) -> Mailbox:
    if not isinstance(data, dict):
        raise _damaged(key)
    return Mailbox(address=_field(data, "address", str), name=_field(data, "name", (str, type(None))))


def _mailboxes(data: Any, key: str) -> tuple[Mailbox, ...]:
    return tuple(_mailbox(item, key) for item in _field(data, key, list))


def _file_copy(entry: Path, data: Any, key: str) -> FilePart:
    """The FilePart of a copy in the entry, as the copy is now (sent only if it stays so)."""
    relative = _field(data, "file", str)
    number = relative.removeprefix(f"{FILES}/")
    if relative != f"{FILES}/{number}" or not (number.isascii() and number.isdigit()):
        raise _damaged(key)  # only the entry's own copies, never a path elsewhere
    size = _field(data, "size", int)
    path = entry / FILES / number
    filename = _field(data, "filename", str)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise _damaged(key)
    except FileNotFoundError:
        raise _Unreadable(_("The copy of {name} is missing from the outbox entry.").format(name=filename),
                          ExitCode.FILE_NOT_FOUND) from None
    with open(path, "rb") as stream:  # an OSError here is the OS's, for now: the entry waits
        info = os.fstat(stream.fileno())
    if info.st_size != size:
        raise _Unreadable(_("The copy of {name} in the outbox entry has {size} bytes instead of {expected}.").format(
            name=filename, size=info.st_size, expected=size), ExitCode.FILE_NOT_FOUND)
    return FilePart(path=path, filename=filename, content_type=_field(data, "content_type", str), size=size,
                    content_id=_field(data, "content_id", (str, type(None))), mtime_ns=info.st_mtime_ns,
                    file_id=(info.st_dev, info.st_ino) if info.st_ino else None)


def decode_message(data: Any, entry: Path) -> Message:
    """The Message an entry holds, its file parts pointing to the entry's copies; _Unreadable otherwise."""
    priority = _field(data, "priority", (str, type(None)))
    try:
        level = Priority(priority) if priority is not None else None
    except ValueError:
        raise _damaged("priority") from None
    headers = []
    for pair in _field(data, "headers", list):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)) \
                or any(ch in pair[0] + pair[1] for ch in "\r\n\0"):
            raise _damaged("headers")
        headers.append((pair[0], pair[1]))
    return Message(
        sender=_mailbox(_field(data, "sender", dict), "sender"), to=_mailboxes(data, "to"),
        cc=_mailboxes(data, "cc"), bcc=_mailboxes(data, "bcc"), reply_to=_mailboxes(data, "reply_to"),
        subject=_field(data, "subject", str), body=_field(data, "body", str), html=_field(data, "html", bool),
        text_alternative=_field(data, "text_alternative", (str, type(None))),
        inline=tuple(_file_copy(entry, item, "inline") for item in _field(data, "inline", list)),
        attachments=tuple(_file_copy(entry, item, "attachments") for item in _field(data, "attachments", list)),
        priority=level, read_ack=_field(data, "read_ack", bool), reception_ack=_field(data, "reception_ack", bool),
        headers=tuple(headers), message_id=_field(data, "message_id", str), date=_field(data, "date", str))


@dataclass(frozen=True)
class _Loaded:
    message: Message
    created: float


def _created(document: Any) -> float:
    try:
        return datetime.datetime.fromisoformat(_field(document, "created", str)).timestamp()
    except ValueError:
        raise _damaged("created") from None


def read_entry(entry: Path) -> _Loaded:
    """An entry's message and creation time; _Unreadable when it is damaged."""
    try:
        document = _load(entry / ENTRY)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise _Unreadable(_("The outbox entry cannot be read: {reason}").format(reason=exc)) from None
    if _field(document, "format", int) != FORMAT:
        raise _Unreadable(_("The outbox entry was written in another format ({format}).").format(
            format=document.get("format")))
    return _Loaded(decode_message(_field(document, "message", dict), entry), _created(document))


def _copy(part: FilePart, target: Path) -> None:
    """Copy a part as it was when the message was built (FileChangedError otherwise)."""
    with open_part(part) as reader, open(target, "xb") as out:
        while chunk := reader.read(COPY_BLOCK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def write_entry(folder: Path, message: Message, rendered: Rendered, receipt: Receipt | None = None, *,
                now: float | None = None) -> str:
    """Store the message as a new entry, which appears whole or not at all; returns its name."""
    now = time.time() if now is None else now
    folder.mkdir(parents=True, exist_ok=True)
    name = _new_name(now)
    temporary = folder / f"{NEW}{name}"
    temporary.mkdir()
    status = {"format": FORMAT, "created": _iso(now), "attempts": receipt.attempts if receipt else 0,
              "last_attempt": _iso(now) if receipt else None,
              "last_error": redact.redact(receipt.error) if receipt and receipt.error else None,
              "last_exit_code": int(receipt.exit_code) if receipt else None}
    try:
        (temporary / FILES).mkdir()
        for number, part in enumerate((*message.inline, *message.attachments)):
            _copy(part, temporary / FILES / str(number))
        _fsync_dir(temporary / FILES)
        _write_new(temporary / ENTRY, _dump({"format": FORMAT, "created": _iso(now), "size": rendered.size,
                                             "message": encode_message(message)}))
        _write_new(temporary / STATUS, _dump(status))
        _fsync_dir(temporary)
        files.rename(temporary, folder / name)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:  # the entry is in place: from here on a failure must not say it was not kept
        _fsync_dir(folder)
    except OSError as exc:
        log.warning(_("The outbox folder {folder} could not be synced to disk: {reason}").format(
            folder=folder, reason=reason(exc)))
    return name


# -- /OUTBOX on a send -------------------------------------------------------------------------

def keep(settings: OutboxSettings, message: Message, rendered: Rendered, receipt: Receipt) -> Outcome:
    """Keep a message that failed for a transient reason, for a later /FLUSH (exit 10).

    The line goes to stderr and /ERROR_FILE: the message was not delivered. When the outbox
    cannot be written, the original failure's exit code stands.
    """
    failure = receipt.failure
    error = receipt.error or (failure.message if failure else "")
    if receipt.status is not Status.FAILED:  # a refusal or a "may have been sent" is never kept
        return Outcome(receipt.exit_code, error, [receipt], failure or SMailError(error))
    try:
        name = write_entry(settings.folder, message, rendered, receipt)
    except (OSError, ValueError, SMailError) as exc:
        why = exc.message if isinstance(exc, SMailError) else reason(exc)
        text = _("{error} The message could not be kept in the outbox {folder} either: {reason}").format(
            error=error, folder=settings.folder, reason=why)
        return Outcome(receipt.exit_code, text, [receipt], SMailError(text))
    text = _("{error} The message is kept in the outbox {folder} as {entry}; the next /FLUSH will send it.").format(
        error=error, folder=settings.folder, entry=name)
    log.info(_("Message {message_id} kept in the outbox as {entry}.").format(
        message_id=message.message_id, entry=name))
    return Outcome(ExitCode.QUEUED, text, [receipt.with_facts(status=Status.QUEUED, source={"entry": name})],
                   SMailError(text))


# -- /FLUSH ------------------------------------------------------------------------------------

def _entries(folder: Path) -> list[str]:
    """The waiting entries' names, oldest first."""
    try:
        items = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SMailError(_("The outbox {folder} cannot be read: {reason}").format(
            folder=folder, reason=reason(exc))) from None
    # Only folders named as SMail names its entries: anything else in the folder is not ours.
    return sorted(item.name for item in items
                  if _ENTRY_NAME.fullmatch(item.name) and item.is_dir(follow_symlinks=False))


def _age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


class _OutboxError(SMailError):
    """The outbox itself failed (an entry could not be marked as being sent): stop sending."""


def _empty(folder: Path) -> Outcome:
    return Outcome(ExitCode.OK, _("The outbox {folder} is empty: nothing to send.").format(folder=folder))


def flush(config: Config, console: Console) -> Outcome:
    """/FLUSH: send the waiting entries oldest first over one session, each at most once."""
    settings = config.outbox
    assert settings is not None
    folder = settings.folder
    if config.output.dry_run:
        return _dry_run(settings, console)
    if not files.is_dir(folder):
        return _empty(folder)
    wait = config.transport.timeout
    try:
        fd = _lock(folder, wait)
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


class _Flush:
    """One /FLUSH under the outbox lock: what it sent, kept and moved."""

    def __init__(self, config: Config, settings: OutboxSettings, *, lock: int | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.config, self.settings, self.now, self.lock = config, settings, now, lock
        self.folder = settings.folder
        self.receipts: dict[str, Receipt] = {}
        self.stop: SMailError | None = None

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> Outcome:
        from smail import transports

        self._clean()
        for name in _entries(self.folder):
            if os.path.lexists(self.folder / name / SENDING):
                self._recover(name)
        names = _entries(self.folder)
        if not names and not self.receipts:
            return _empty(self.folder)
        session = transports.open_session(self.config)
        try:
            while names:
                if not self._send(session, names):
                    break
                names = [n for n in _entries(self.folder) if n not in self.receipts]  # kept meanwhile
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
                                        per_second=self.settings.per_second)
        return complete and self.stop is None

    def _jobs(self, names: Iterable[str]) -> Iterator[Job]:
        for name in names:
            if self.stop is None and self.lock is not None and not holds_lock(self.folder, self.lock):
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
        try:
            loaded = read_entry(entry)
            rendered = mime.render(loaded.message)
        except _Unreadable as bad:
            self._move(name, FAILED, bad.text, Receipt(status=Status.REFUSED, exit_code=bad.exit_code,
                                                       error=bad.text, source={"entry": name}))
            return None
        except (OSError, ValueError) as exc:  # e.g. held by an antivirus: left for the next flush
            err = SMailError(_("The outbox entry {entry} cannot be read now: {reason}").format(
                entry=name, reason=reason(exc)))
            self._waiting(name, None, err)
            return None
        age = self.now() - loaded.created
        if age > self.settings.max_age:
            limit = _age_text(self.settings.max_age)
            last = self._status(name).get("last_error")
            if isinstance(last, str) and last:
                text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up. Last error: {error}").format(
                    age=limit, error=last)
            else:
                text = _("It could not be delivered within {age} (/OUTBOX_MAX_AGE): given up.").format(age=limit)
            self._move(name, FAILED, text, Receipt(status=Status.REFUSED, message_id=loaded.message.message_id,
                                                   exit_code=ExitCode.RETRY_EXCEEDED, error=text,
                                                   source={"entry": name}))
            return None
        return Job(key=name, message=loaded.message, rendered=rendered,
                   on_commit=(lambda: self._commit(name)) if send else None)

    def _commit(self, name: str) -> None:
        """Just before the end of the message goes out: mark the entry as in flight, durably,
        so that a flush killed from now on leaves it to uncertain/ instead of sending it again."""
        entry = self.folder / name
        try:
            _write_new(entry / SENDING, _dump({"since": _iso(self.now()), "pid": os.getpid()}))
            _fsync_dir(entry)
        except OSError as exc:
            raise _OutboxError(_("The outbox entry {entry} could not be marked as being sent ({reason}), so it was not sent.").format(
                entry=name, reason=reason(exc))) from None

    def _done(self, job: Job, receipt: Receipt) -> None:
        from smail.transports import ends_session

        name = str(job.key)
        receipt = receipt.with_facts(source={"entry": name})
        failure = receipt.failure
        if receipt.status is Status.SENT:
            self.receipts[name] = receipt
            log.info(_("Outbox entry {entry} sent: {summary}").format(entry=name, summary=receipt.summary))
            self._remove(name)
        elif receipt.status is Status.MAYBE_SENT:
            self._move(name, UNCERTAIN, receipt.error or "", receipt)
        elif receipt.status is Status.FAILED or isinstance(failure, _OutboxError) or ends_session(receipt):
            if isinstance(failure, _OutboxError) or ends_session(receipt):
                self.stop = self.stop or failure
            self._unmark(name)
            self._waiting(name, receipt, failure)
        else:  # refused for good: sending it again cannot help
            self._unmark(name)
            self._move(name, FAILED, receipt.error or "", receipt)

    # -- entries -------------------------------------------------------------------------------

    def _status(self, name: str, where: Path | None = None) -> dict[str, Any]:
        try:
            document = _load((where or self.folder / name) / STATUS)
        except (OSError, ValueError, _Unreadable):
            return {}
        return document if isinstance(document, dict) else {}

    def _update_status(self, entry: Path, **changes: Any) -> None:
        """Replace status.json; a failure only loses the counters, never the entry."""
        document = self._status(entry.name, entry)
        document.setdefault("format", FORMAT)
        document.update(changes)
        try:
            files.write_atomically(entry / STATUS, _dump(document))
        except OSError as exc:
            log.warning(_("The status of the outbox entry {entry} could not be written: {reason}").format(
                entry=entry.name, reason=reason(exc)))

    def _waiting(self, name: str, receipt: Receipt | None, failure: SMailError | None) -> None:
        """The entry stays for the next flush; its status counts the attempt."""
        error = redact.redact(receipt.error or "") if receipt else (failure.message if failure else "")
        if receipt is not None and receipt.attempts:
            attempts = self._status(name).get("attempts")
            self._update_status(self.folder / name, last_attempt=_iso(self.now()), last_error=error or None,
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
            if os.path.lexists(entry / SENDING):
                os.unlink(entry / SENDING)
                _fsync_dir(entry)
        except OSError as exc:
            log.warning(_("The outbox entry {entry} could not be unmarked ({reason}): the next /FLUSH will move it to uncertain.").format(
                entry=name, reason=reason(exc)))

    def _remove(self, name: str) -> None:
        """Delete a sent entry: renamed aside at once (one atomic step), then erased."""
        done = self.folder / f"{DONE}{name}"
        try:
            files.rename(self.folder / name, done)
            _fsync_dir(self.folder)
        except OSError as exc:
            log.warning(_("The outbox entry {entry} was sent but could not be removed ({reason}): the next /FLUSH will move it to uncertain.").format(
                entry=name, reason=reason(exc)))
            return
        shutil.rmtree(done, ignore_errors=True)

    def _move(self, name: str, where: str, text: str, receipt: Receipt) -> None:
        """To failed/ or uncertain/ with its reason; the entry is never sent again from there."""
        text = redact.redact(text)
        entry = self.folder / name
        self.receipts[name] = receipt.with_facts(source={"entry": name})
        try:
            _write_new(entry / REASON, f"{_iso(self.now())} {text}\n".encode("utf-8", "backslashreplace"))
        except OSError as exc:  # the reason is still in the log and the result file
            log.warning(_("The reason could not be written into the outbox entry {entry}: {reason}").format(
                entry=name, reason=reason(exc)))
        self._update_status(entry, outcome=where, reason=text)
        target_folder = self.folder / where
        try:
            target_folder.mkdir(exist_ok=True)
            target = target_folder / name
            number = 1
            while os.path.lexists(target):
                number += 1
                target = target_folder / f"{name}-{number}"
            files.rename(entry, target)
            _fsync_dir(self.folder)
            _fsync_dir(target_folder)
        except OSError as exc:
            # Left in place: an entry in flight keeps its mark, so the next flush cannot resend it.
            log.warning(_("The outbox entry {entry} could not be moved to {folder} ({reason}).").format(
                entry=name, folder=target_folder, reason=reason(exc)))
            return
        try:  # its job is done; without it, the entry can be moved back to be sent again
            os.unlink(target / SENDING)
        except OSError:
            pass
        log.warning(_("Outbox entry {entry} moved to {folder}: {reason}").format(entry=name, folder=target, reason=text))

    def _recover(self, name: str) -> None:
        """An entry left in flight by a flush that died: it may have been delivered."""
        text = _("A /FLUSH stopped after the end of this message went out: it may have been delivered. Check before sending it again.")
        message_id = None
        try:
            document = _load(self.folder / name / ENTRY)
            found = document.get("message", {}).get("message_id")
            message_id = found if isinstance(found, str) else None
        except (OSError, ValueError, _Unreadable, AttributeError):
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
                shutil.rmtree(item.path, ignore_errors=True)

    # -- the outcome ---------------------------------------------------------------------------

    def _outcome(self) -> Outcome:
        # Receipt.as_json deep-copies every field, and some errors cannot be copied: the error
        # is already in each receipt's text and in the outcome.
        receipts = [r.with_facts(failure=None) for r in self.receipts.values()]
        if not receipts:
            return _empty(self.folder)
        sent = sum(r.status is Status.SENT for r in receipts)
        if sent == len(receipts):
            text = ngettext("{n} message sent from the outbox {folder}; it is now empty.",
                            "{n} messages sent from the outbox {folder}; it is now empty.",
                            sent).format(n=sent, folder=self.folder)
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


# -- /FLUSH /DRY_RUN ---------------------------------------------------------------------------

def _dry_run(settings: OutboxSettings, console: Console) -> Outcome:
    """One line per entry (created, recipients, subject); nothing connects, nothing moves."""
    folder = settings.folder
    names = _entries(folder)
    if not names:
        return _empty(folder)
    receipts: list[Receipt] = []
    for name in names:
        entry = folder / name
        try:
            loaded = read_entry(entry)
        except _Unreadable as bad:
            console.out(_("{entry}: {reason} It would be moved to {folder}.").format(
                entry=name, reason=bad.text, folder=folder / FAILED))
            continue
        except OSError as exc:
            console.out(_("{entry}: cannot be read now: {reason}").format(entry=name, reason=reason(exc)))
            continue
        message = loaded.message
        created = datetime.datetime.fromtimestamp(loaded.created).strftime("%Y-%m-%d %H:%M:%S")
        facts = {"entry": name, "created": created, "recipients": ", ".join(b.address for b in message.recipients),
                 "subject": message.subject}
        if os.path.lexists(entry / SENDING):
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\". A /FLUSH stopped while sending it: it would be moved to {folder}.").format(
                folder=folder / UNCERTAIN, **facts))
        elif time.time() - loaded.created > settings.max_age:
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\". It is older than /OUTBOX_MAX_AGE: it would be moved to {folder}.").format(
                folder=folder / FAILED, **facts))
        else:
            console.out(_("{entry}: created {created}, to {recipients}, subject \"{subject}\".").format(**facts))
            receipts.append(Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                    accepted=tuple(b.address for b in message.recipients), source={"entry": name}))
    count = len(receipts)
    text = ngettext("Dry run: {n} message of the outbox {folder} would be sent; nothing was sent.",
                    "Dry run: {n} messages of the outbox {folder} would be sent; nothing was sent.",
                    count).format(n=count, folder=folder)
    return Outcome(ExitCode.OK, text, receipts)
