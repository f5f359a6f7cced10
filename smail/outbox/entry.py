"""An outbox entry: its message as JSON, its copies of the files, written whole or not at all."""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from smail import files, redact
from smail.addresses import Mailbox
from smail.errors import ExitCode, ParamError, reason
from smail.i18n import _
from smail.kinds import Priority
from smail.message import FilePart, Message, check_message, open_part
from smail.mime import SMIMERecord
from smail.outbox import disk
from smail.outbox.layout import (
    COPY_BLOCK,
    ENTRY,
    FILES,
    FORMAT,
    NEW,
    STATUS,
    Unreadable,
    damaged,
    dump,
    iso,
    load,
    new_name,
)
from smail.receipt import Receipt

if TYPE_CHECKING:
    from smail.mime import Rendered

log = logging.getLogger("smail")


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



def _field(data: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise damaged(key)
    if isinstance(value, str) and any(ch in value for ch in "\r\n\0") and key not in ("body", "text_alternative"):
        raise damaged(key)  # would inject header lines (RFC 5322 section 2.2)
    return value


def _mailbox(data: Any, key: str) -> Mailbox:
    if not isinstance(data, dict):
        raise damaged(key)
    return Mailbox(address=_field(data, "address", str), name=_field(data, "name", (str, type(None))))


def _mailboxes(data: Any, key: str) -> tuple[Mailbox, ...]:
    return tuple(_mailbox(item, key) for item in _field(data, key, list))


def _file_copy(entry: Path, data: Any, key: str) -> FilePart:
    """The FilePart of a copy in the entry, as the copy is now (sent only if it stays so)."""
    relative = _field(data, "file", str)
    number = relative.removeprefix(f"{FILES}/")
    if relative != f"{FILES}/{number}" or not (number.isascii() and number.isdigit()):
        raise damaged(key)  # only the entry's own copies, never a path elsewhere
    size = _field(data, "size", int)
    path = entry / FILES / number
    filename = _field(data, "filename", str)
    if not files.real_folder(entry / FILES):
        raise damaged(FILES)  # a link to a folder elsewhere: its files are not the entry's copies
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise damaged(key)
    except FileNotFoundError:
        raise Unreadable(_("The copy of {name} is missing from the outbox entry.").format(name=filename),
                          ExitCode.FILE_NOT_FOUND) from None
    # An OSError here is the OS's, for now: the entry waits.
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)),
                   "rb") as stream:
        info = os.fstat(stream.fileno())
    if info.st_size != size:
        raise Unreadable(_("The copy of {name} in the outbox entry has {size} bytes instead of {expected}.").format(
            name=filename, size=info.st_size, expected=size), ExitCode.FILE_NOT_FOUND)
    return FilePart(path=path, filename=filename, content_type=_field(data, "content_type", str), size=size,
                    content_id=_field(data, "content_id", (str, type(None))), mtime_ns=info.st_mtime_ns,
                    file_id=(info.st_dev, info.st_ino) if info.st_ino else None)


def decode_message(data: Any, entry: Path) -> Message:
    """The Message an entry holds, its file parts pointing to the entry's copies; Unreadable otherwise."""
    priority = _field(data, "priority", (str, type(None)))
    try:
        level = Priority(priority) if priority is not None else None
    except ValueError:
        raise damaged("priority") from None
    headers = []
    for pair in _field(data, "headers", list):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)) \
                or any(ch in pair[0] + pair[1] for ch in "\r\n\0"):
            raise damaged("headers")
        headers.append((pair[0], pair[1]))
    message = Message(
        sender=_mailbox(_field(data, "sender", dict), "sender"), to=_mailboxes(data, "to"),
        cc=_mailboxes(data, "cc"), bcc=_mailboxes(data, "bcc"), reply_to=_mailboxes(data, "reply_to"),
        subject=_field(data, "subject", str), body=_field(data, "body", str), html=_field(data, "html", bool),
        text_alternative=_field(data, "text_alternative", (str, type(None))),
        inline=tuple(_file_copy(entry, item, "inline") for item in _field(data, "inline", list)),
        attachments=tuple(_file_copy(entry, item, "attachments") for item in _field(data, "attachments", list)),
        priority=level, read_ack=_field(data, "read_ack", bool), reception_ack=_field(data, "reception_ack", bool),
        headers=tuple(headers), message_id=_field(data, "message_id", str), date=_field(data, "date", str))
    try:  # edited by hand, an entry must not do what the command line would refuse
        check_message(message)
    except ParamError as err:
        raise Unreadable(_("The outbox entry is damaged: {reason}").format(reason=err.message)) from None
    return message


@dataclass(frozen=True)
class Loaded:
    message: Message
    created: float
    smime: SMIMERecord | None = None  # signed or encrypted when it goes out (by /FLUSH)


# A clock set a little wrong on the machine that kept the entry is not damage.
CLOCK_SKEW: Final = 24 * 3600.0


def _created(document: Any, now: float) -> float:
    """When the entry was kept: a time SMail could have written (with its zone, not after now),
    else damaged, so that every entry expires."""
    try:
        stamp = datetime.datetime.fromisoformat(_field(document, "created", str))
        created = stamp.timestamp() if stamp.tzinfo is not None else None
    except (ValueError, OverflowError, OSError):
        created = None
    if created is None or not 0 <= created <= now + CLOCK_SKEW:
        raise damaged("created")
    return created


def _no_link(entry: Path) -> None:
    """An entry holds only what SMail wrote: a link among its files (its copies included) is
    not SMail's, and is never read nor written through."""
    for folder in (entry, entry / FILES):
        try:
            items = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for item in items:
            if item.is_symlink() or (folder == entry and item.name == FILES and not files.real_folder(Path(item.path))):
                raise Unreadable(_("The outbox entry is damaged: {name} is a link, not a file SMail wrote.").format(
                    name=item.name if folder == entry else f"{FILES}/{item.name}"))


def read_entry(entry: Path, *, now: float | None = None) -> Loaded:
    """An entry's message and creation time; Unreadable when it is damaged."""
    _no_link(entry)
    try:
        document = load(entry / ENTRY)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError too
        text = str(exc).encode("utf-8", "backslashreplace").decode("utf-8")[:300]
        raise Unreadable(_("The outbox entry cannot be read: {reason}").format(reason=text)) from None
    if _field(document, "format", int) != FORMAT:
        raise Unreadable(_("The outbox entry was written in another format ({format}).").format(
            format=str(document.get("format"))[:20]))
    created = _created(document, time.time() if now is None else now)
    return Loaded(decode_message(_field(document, "message", dict), entry), created, _smime(document))


def _smime(document: Any) -> SMIMERecord | None:
    """What S/MIME the entry asks for: whether to sign, and the certificates to encrypt to."""
    if "smime" not in document:
        return None
    record = _field(document, "smime", dict)
    signed, encrypt_to = _field(record, "sign", bool), _field(record, "encrypt_to", list)
    if not all(isinstance(pem, str) and pem.startswith("-----BEGIN CERTIFICATE-----") for pem in encrypt_to):
        raise Unreadable(_("The outbox entry's certificates are damaged."))
    return SMIMERecord(signed=signed, encrypt_to=tuple(encrypt_to))


def origin_of(entry: Path) -> dict[str, Any] | None:
    """The batch row an entry was kept for (results file, row, key, Message-ID), if any."""
    try:
        document = load(entry / ENTRY)
    except (OSError, ValueError, Unreadable):
        return None
    origin = document.get("origin") if isinstance(document, dict) else None
    message = document.get("message") if isinstance(document, dict) else None
    if not (isinstance(origin, dict) and isinstance(origin.get("results"), str)
            and isinstance(origin.get("row"), int) and isinstance(message, dict)
            and isinstance(message.get("message_id"), str)):
        return None
    return {**origin, "message_id": message["message_id"]}


def _copy(part: FilePart, target: Path) -> None:
    """Copy a part as it was when the message was built (FileChangedError otherwise)."""
    with open_part(part) as reader, open(target, "xb") as out:
        while chunk := reader.read(COPY_BLOCK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def write_entry(folder: Path, message: Message, rendered: Rendered, receipt: Receipt | None = None, *,
                now: float | None = None, origin: dict[str, Any] | None = None,
                before_publish: Callable[[str], None] | None = None) -> str:
    """Store the message as a new entry, which appears whole or not at all; returns its name.

    `origin` names the batch row it is kept for; `before_publish(name)` runs once the entry
    is whole on disk, just before it appears (a batch records the row as kept there, so that
    no kill leaves a row both in the outbox and unrecorded). Once it has run, a failure
    leaves the whole entry as .new-<name>, for /BATCH_RESUME or a later /FLUSH to settle
    from what the results file recorded.
    """
    now = time.time() if now is None else now
    folder.mkdir(parents=True, exist_ok=True)
    name = new_name(now)
    temporary = folder / f"{NEW}{name}"
    temporary.mkdir()
    status = {"format": FORMAT, "created": iso(now), "attempts": receipt.attempts if receipt else 0,
              "last_attempt": iso(now) if receipt else None,
              "last_error": redact.redact(receipt.error) if receipt and receipt.error else None,
              "last_exit_code": int(receipt.exit_code) if receipt else None}
    try:
        (temporary / FILES).mkdir()
        for number, part in enumerate((*message.inline, *message.attachments)):
            _copy(part, temporary / FILES / str(number))
        disk.fsync_dir(temporary / FILES)
        document = {"format": FORMAT, "created": iso(now), "size": rendered.size,
                    "message": encode_message(message)}
        if origin is not None:
            document["origin"] = origin
        if rendered.smime is not None:  # no key: only whether to sign, and public certificates
            document["smime"] = {"sign": rendered.smime.signed, "encrypt_to": list(rendered.smime.encrypt_to)}
        disk.write_new(temporary / ENTRY, dump(document))
        disk.write_new(temporary / STATUS, dump(status))
        disk.fsync_dir(temporary)
        if before_publish is not None:  # the record about to be made names an entry that must survive
            disk.fsync_dir(folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    if before_publish is None:
        try:
            files.rename(temporary, folder / name)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    else:  # from here on, what the batch recorded decides (outbox.handoff)
        before_publish(name)
        files.rename(temporary, folder / name)
    try:  # the entry is in place: from here on a failure must not say it was not kept
        disk.fsync_dir(folder)
    except OSError as exc:
        log.warning(_("The outbox folder {folder} could not be synced to disk: {reason}").format(
            folder=folder, reason=reason(exc)))
    return name
