"""The outbox's pure parts: the OS lock, an entry's round trip to the same bytes, keep()'s receipt,
damaged entries, and the French sentences waiting to be merged into smail.po."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sys
import types
from pathlib import Path

import pytest

from smail import i18n, mime, outbox
from smail.errors import ConnectError, ExitCode, FileChangedError, MaybeSentError, SendError, SMTPReply
from smail.kinds import Priority
from smail.message import Message, load_message
from smail.outbox import disk, layout
from smail.receipt import Receipt, Status
from smail.settings import MessageSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def message(tmp_path: Path) -> Message:
    (tmp_path / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 3)
    (tmp_path / "Facture été.pdf").write_bytes(b"%PDF" + os.urandom(70_000))
    (tmp_path / "Mail.html").write_text('<p>Bonjour é <img src="cid:logo.png"></p>\n', encoding="utf-8")
    settings = MessageSettings(
        from_addr="albert@exämple.test", from_name="Albert Dupont", to=("Client <client@test.test>",),
        cc=("copie@test.test",), bcc=("cache@test.test",), reply_to="support@test.test",
        subject="Facture de mars — été", body_file=tmp_path / "Mail.html",
        attachments=(tmp_path / "Facture été.pdf",), inline=(tmp_path / "logo.png",),
        priority=Priority.HIGH, read_ack=True, reception_ack=True, headers=("X-ERP: FAC-1",))
    return load_message(settings)


def transient_receipt(msg: Message) -> Receipt:
    return Receipt.from_error(ConnectError("127.0.0.1:25 refused the connection."), message_id=msg.message_id,
                              attempts=1)


def test_lock_waits_then_gives_up(tmp_path):
    holder = disk.lock(tmp_path, 0)
    assert holder is not None
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
    try:
        assert disk.lock(tmp_path, 1.0, clock=lambda: now[0], sleep=sleep) is None
    finally:
        os.close(holder)
    assert 1.0 <= sum(slept) < 1.0 + 2 * disk.LOCK_POLL
    fd = disk.lock(tmp_path, 0)
    assert fd is not None
    os.close(fd)


# -- an entry -----------------------------------------------------------------------------------

def test_every_message_field_is_stored():
    names = {f.name for f in dataclasses.fields(Message)}
    assert set(outbox.encode_message(load_message(MessageSettings(from_addr="a@b.test", to=("c@d.test",))))) \
        == names, "a new Message field must be stored in the outbox entry (outbox.encode_message)"


def test_an_entry_renders_the_very_same_bytes_from_its_own_copies(message, tmp_path):
    before = b"".join(mime.render(message).chunks())
    box = tmp_path / "box"
    name = outbox.write_entry(box, message, mime.render(message), transient_receipt(message))
    for part in (*message.inline, *message.attachments):
        part.path.unlink()  # the originals may go: the entry has its copies
    loaded = outbox.read_entry(box / name)
    assert b"".join(mime.render(loaded.message).chunks()) == before
    assert loaded.message.message_id == message.message_id and loaded.message.date == message.date
    assert [p.path.parent for p in loaded.message.attachments] == [box / name / layout.FILES]
    assert dataclasses.replace(loaded.message, inline=message.inline, attachments=message.attachments) == message
    status = json.loads((box / name / layout.STATUS).read_text(encoding="utf-8"))
    assert status["attempts"] == 1 and status["last_exit_code"] == 3
    assert status["last_error"] == "127.0.0.1:25 refused the connection."
    assert sorted(p.name for p in box.iterdir()) == [name]


def test_undecodable_names_round_trip_but_such_a_message_is_never_sent(tmp_path):
    message = load_message(MessageSettings(from_addr="a@b.test", to=("c@d.test",), subject="caf\udce9",
                                           body_text="x"))
    name = outbox.write_entry(tmp_path, message, types.SimpleNamespace(size=0, smime=None))  # storage only
    assert layout.load(tmp_path / name / layout.ENTRY)["message"]["subject"] == "caf\udce9"
    with pytest.raises(layout.Unreadable, match="not valid Unicode"):  # no message can carry it
        outbox.read_entry(tmp_path / name)


def test_entry_names_sort_oldest_first(message, tmp_path):
    names = [outbox.write_entry(tmp_path, message, mime.render(message), now=t)
             for t in (1_800_000_000.5, 1_700_000_000.25, 1_700_000_000.0)]
    assert layout.entries(tmp_path) == names[::-1]
    (tmp_path / "failed").mkdir()
    (tmp_path / ".new-x").mkdir()
    (tmp_path / "file").write_text("")
    assert layout.entries(tmp_path) == names[::-1]


def test_a_file_changed_since_the_message_was_built_is_not_kept(message, tmp_path):
    [attachment] = message.attachments
    attachment.path.write_bytes(b"%PDF other content of another size")
    with pytest.raises(FileChangedError):
        outbox.write_entry(tmp_path / "box", message, mime.render(message))
    assert list((tmp_path / "box").iterdir()) == []


@pytest.mark.parametrize("change, text", [
    (lambda d: d["message"].update(priority="URGENT"), "priority is missing or invalid"),
    (lambda d: d["message"].update(to="client@test.test"), "to is missing or invalid"),
    (lambda d: d["message"]["attachments"][0].update(file="/etc/passwd"), "attachments is missing or invalid"),
    (lambda d: d["message"]["attachments"][0].update(file="files/../../x"), "attachments is missing or invalid"),
    (lambda d: d["message"].update(headers=[["X-A", "b\r\nBcc: x@y.test"]]), "headers is missing or invalid"),
    (lambda d: d["message"].update(message_id="<a@b>\r\nX: y"), "message_id is missing or invalid"),
    (lambda d: d["message"].pop("date"), "date is missing or invalid"),
    (lambda d: d.update(created="yesterday"), "created is missing or invalid"),
    (lambda d: d.update(format=2), "another format (2)"),
    (lambda d: d.update(message=[]), "message is missing or invalid"),
])
def test_damaged_entries_are_named_not_crashed_on(message, tmp_path, change, text):
    name = outbox.write_entry(tmp_path, message, mime.render(message))
    path = tmp_path / name / layout.ENTRY
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(layout.Unreadable, match=text.replace("(", r"\(").replace(")", r"\)")):
        outbox.read_entry(tmp_path / name)


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="POSIX symlinks")
def test_a_copy_replaced_by_a_symlink_is_refused(message, tmp_path):
    name = outbox.write_entry(tmp_path, message, mime.render(message))
    copy = tmp_path / name / layout.FILES / "1"
    copy.unlink()
    copy.symlink_to("/etc/hostname")
    with pytest.raises(layout.Unreadable, match="is damaged"):
        outbox.read_entry(tmp_path / name)


# -- keep() ------------------------------------------------------------------------------------

def settings_for(folder: Path):
    from smail.settings import OutboxSettings
    return OutboxSettings(folder=folder, max_age=72 * 3600.0)


def test_keep_stores_the_entry_and_exits_10(message, tmp_path):
    receipt = outbox.keep(settings_for(tmp_path / "box"), message, mime.render(message), transient_receipt(message))
    [name] = layout.entries(tmp_path / "box")
    assert receipt.exit_code == ExitCode.QUEUED
    assert receipt.error == (f"127.0.0.1:25 refused the connection. The message is kept in the outbox "
                             f"{tmp_path / 'box'} as {name}; the next /FLUSH will send it.")
    assert receipt.status is Status.QUEUED and receipt.source == {"entry": name}
    assert receipt.message_id == message.message_id and receipt.attempts == 1
    receipt.as_json()


@pytest.mark.parametrize("error", [
    MaybeSentError("no answer after the final dot"),
    SendError("refused", reply=SMTPReply(550, "5.1.1 no such user", "RCPT")),
])
def test_keep_never_stores_a_refusal_or_a_may_have_been_sent(message, tmp_path, error):
    receipt = Receipt.from_error(error, message_id=message.message_id, attempts=1)
    kept = outbox.keep(settings_for(tmp_path / "box"), message, mime.render(message), receipt)
    assert kept == receipt and kept.exit_code == ExitCode.SEND and kept.error == error.message
    assert not (tmp_path / "box").exists()


def test_keep_when_the_outbox_cannot_be_written_keeps_the_original_code(message, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(disk, "write_new", full)
    receipt = outbox.keep(settings_for(tmp_path / "box"), message, mime.render(message), transient_receipt(message))
    assert receipt.exit_code == ExitCode.CONNECT and receipt.status is Status.FAILED
    assert receipt.error == (f"127.0.0.1:25 refused the connection. The message could not be kept in the outbox "
                             f"{tmp_path / 'box'} either: No space left on device")
    assert list((tmp_path / "box").iterdir()) == []


def test_a_failure_after_the_rename_still_says_kept(message, tmp_path, monkeypatch):
    real = disk.fsync_dir
    box = tmp_path / "box"

    def fsync_dir(path):
        if path == box:
            raise OSError(errno.EIO, "Input/output error")
        real(path)
    monkeypatch.setattr(disk, "fsync_dir", fsync_dir)
    receipt = outbox.keep(settings_for(box), message, mime.render(message), transient_receipt(message))
    assert receipt.exit_code == ExitCode.QUEUED and len(layout.entries(box)) == 1


# -- French -------------------------------------------------------------------------------------

def test_the_french_line_of_keep(message, tmp_path):
    i18n.activate("fr")
    try:
        receipt = outbox.keep(settings_for(tmp_path / "box"), message, mime.render(message),
                              transient_receipt(message))
    finally:
        i18n.activate("en")
    assert "Le message est conservé dans la boîte d'envoi" in (receipt.error or "")


def test_keep_leaves_the_failure_on_the_receipt_for_a_batch_to_stop_on(message, tmp_path):
    from smail.transports import ends_session

    receipt = outbox.keep(settings_for(tmp_path / "box"), message, mime.render(message), transient_receipt(message))
    assert ends_session(receipt)
