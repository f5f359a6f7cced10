"""Damaged and hostile outbox entries, folders that cannot be used, a server that drops the
line on one entry, /RESEND_UNCERTAIN. Whatever an entry holds: no traceback, no exit 7,
nothing sent twice, nothing written through a link SMail did not make, and the entries
behind it go on."""

from __future__ import annotations

import email
import errno
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import pytest

from smail import files as smail_files
from smail.errors import ExitCode
from tests.contract.test_outbox import GRAPH_CANARY, GRAPH_ENV, SENDER, graph_options
from tests.smtpd import RecordingHandler, free_port, read_line

FROM = "/FROM_ADDR=albert@demo.test"
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")


def down() -> list[str]:
    return ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}"]


def waiting(box: Path) -> list[Path]:
    return sorted(p for p in box.iterdir() if p.is_dir() and not p.is_symlink() and p.name[:1].isdigit())


def moved(box: Path, where: str) -> list[Path]:
    folder = box / where
    return sorted(folder.iterdir()) if folder.is_dir() and not folder.is_symlink() else []


def queue(run_smail: Any, box: Path, subject: str, *extra: str) -> Path:
    before = set(waiting(box)) if box.is_dir() else set()
    result = run_smail(*down(), FROM, "/TO=client@test.test", f"/SUBJECT={subject}", "/BODY=Bonjour",
                       f"/OUTBOX={box}", *extra)
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    [entry] = set(waiting(box)) - before
    return entry


def subjects(handler: RecordingHandler) -> Counter[str]:
    found: Counter[str] = Counter()
    for received in list(handler.received):
        found[str(make_header(decode_header(email.message_from_bytes(received.data)["Subject"])))] += 1
    return found


def edit(entry: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads((entry / "entry.json").read_text(encoding="utf-8"))
    change(document)
    (entry / "entry.json").write_text(json.dumps(document), encoding="utf-8")


def sane(result: Any) -> None:
    assert result.exit_code != ExitCode.INTERNAL, result.output[-3000:]
    assert "Traceback" not in result.output, result.output[-3000:]


def three(run_smail: Any, box: Path) -> tuple[Path, Path, Path]:
    """Three entries; the middle one is the one a test damages: the one behind it must go on."""
    return queue(run_smail, box, "First"), queue(run_smail, box, "Damaged"), queue(run_smail, box, "Last")


# -- damaged content ------------------------------------------------------------------------------

def set_created(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document.update(created=value)


def set_message(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["message"].update({key: value})


DAMAGE: dict[str, Callable[[Path], None]] = {
    "deeply nested JSON": lambda e: (e / "entry.json").write_text("[" * 200_000 + "]" * 200_000),
    "nested message": lambda e: edit(e, set_message("to", json.loads("[" * 50 + "]" * 50))),
    "created at the end of the calendar": lambda e: edit(e, set_created("9999-12-31T23:59:59.999999+00:00")),
    "created past the calendar once in UTC": lambda e: edit(e, set_created("9999-12-31T23:59:59-23:59")),
    "created before the calendar once in UTC": lambda e: edit(e, set_created("0001-01-01T00:00:00+23:59")),
    "created in the year one": lambda e: edit(e, set_created("0001-01-01T00:00:00+00:00")),
    "created without a time zone": lambda e: edit(e, set_created("2026-03-15T08:15:00")),
    "created next year": lambda e: edit(e, set_created("2099-01-01T00:00:00+00:00")),
    "undecodable bytes": lambda e: (e / "entry.json").write_bytes(
        (e / "entry.json").read_bytes().replace(b'"Damaged"', b'"Dam\xff\xfeaged"')),
    "a lone surrogate in the subject": lambda e: edit(e, set_message("subject", "Dam\udcffaged")),
    "a lone surrogate in an address": lambda e: edit(e, set_message("to", [{"address": "cl\udcffient@test.test",
                                                                              "name": None}])),
    "a huge number": lambda e: (e / "entry.json").write_text(
        (e / "entry.json").read_text(encoding="utf-8").replace('"format": 1', '"format": 1' + "0" * 5000)),
    "a date that is not a date": lambda e: edit(e, set_message("date", "\udcff")),
    "status.json nested": lambda e: (e / "status.json").write_text("[" * 200_000),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_moved_aside_and_the_others_are_sent(smtpd, run_smail, tmp_path, damage):
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    DAMAGE[damage](damaged)
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={tmp_path / 'r.json'}")
    sane(result)
    sent = subjects(handler)
    assert sent["First"] == 1 and sent["Last"] == 1, result.stderr
    assert sum(sent.values()) <= 3 and all(n == 1 for n in sent.values())
    if damage != "status.json nested":  # only the counters: the entry itself is whole
        assert sent == Counter({"First": 1, "Last": 1}), result.stderr
        assert waiting(box) == []
        [aside] = moved(box, "failed")
        assert aside.name == damaged.name and (aside / "reason.txt").read_text(encoding="utf-8").strip()
        assert result.exit_code == ExitCode.PARTIAL, result.stderr
    dry = run_smail(*down(), "/FLUSH", "/DRY_RUN", f"/OUTBOX={box}")  # and listing it again is fine
    sane(dry)


@pytest.mark.parametrize("damage", [d for d in DAMAGE if d != "status.json nested"])
def test_a_damaged_entry_is_listed_by_a_dry_run_without_a_traceback(run_smail, tmp_path, damage):
    box = tmp_path / "box"
    _first, damaged, _last = three(run_smail, box)
    DAMAGE[damage](damaged)
    result = run_smail(*down(), "/FLUSH", "/DRY_RUN", f"/OUTBOX={box}")
    sane(result)
    assert result.exit_code == ExitCode.OK
    assert damaged.name in result.stdout


def test_an_entry_that_cannot_be_read_for_ever_still_expires(smtpd, run_smail, tmp_path, monkeypatch):
    """An entry the OS refuses to read (permissions, a lock held by another program) waits for
    the next flush, but not for ever: past /OUTBOX_MAX_AGE (counted from the time in its name)
    it goes to failed/."""
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    old = damaged.with_name("20000101T000000-000000Z-" + damaged.name.rsplit("-", 1)[1])
    damaged.rename(old)
    real_open = os.open

    def refusing(path: Any, *args: Any, **kwargs: Any) -> Any:
        if old in Path(os.fsdecode(path)).parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing)
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    sane(result)
    assert subjects(handler) == Counter({"First": 1, "Last": 1})
    assert [p.name for p in moved(box, "failed")] == [old.name], result.stderr
    assert result.exit_code == ExitCode.PARTIAL


# -- links ----------------------------------------------------------------------------------------

def outside(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes | None]]:
    folder = tmp_path / "outside"
    folder.mkdir()
    secret = folder / "secret.txt"
    secret.write_bytes(b"not SMail's\n")
    return folder, secret, {"secret.txt": b"not SMail's\n"}


def contents(folder: Path) -> dict[str, bytes | None]:
    """Every name under the folder, with the bytes of each file (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


@posix_only
@pytest.mark.parametrize("name", ["entry.json", "status.json", "reason.txt", "sending", "files", "files/0"])
def test_a_link_in_an_entry_is_never_written_through_and_the_entry_is_moved_aside(
        smtpd, run_smail, tmp_path, files, name):
    box = tmp_path / "box"
    attachment = files("a.pdf", b"%PDF-1.4 invoice")
    queue(run_smail, box, "First")
    damaged = queue(run_smail, box, "Damaged", f"/ATTACH={attachment}")
    queue(run_smail, box, "Last")
    folder, secret, before = outside(tmp_path)
    target = damaged / name
    if name == "files":
        (folder / "0").write_bytes((target / "0").read_bytes())  # the same size: only the link is wrong
        before = contents(folder)
        shutil.rmtree(target)
        target.symlink_to(folder)
    elif name == "entry.json":
        (folder / "entry.json").write_bytes(target.read_bytes())
        before = contents(folder)
        target.unlink()
        target.symlink_to(folder / "entry.json")
    else:
        if target.exists():
            target.unlink()
        target.symlink_to(secret)
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    sane(result)
    assert contents(folder) == before, "written through a link"
    sent = subjects(handler)
    assert sent["First"] == 1 and sent["Last"] == 1, result.stderr
    assert sent["Damaged"] == 0, "an entry holding a link was sent"
    assert damaged.name in {p.name for p in moved(box, "failed") + moved(box, "uncertain")}, result.stderr
    assert result.exit_code == ExitCode.PARTIAL
    again = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    sane(again)
    assert contents(folder) == before and subjects(handler)["Damaged"] == 0


@posix_only
@pytest.mark.parametrize("where", ["failed", "uncertain"])
def test_failed_or_uncertain_as_a_link_is_never_written_through(smtpd, run_smail, tmp_path, where):
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    if where == "failed":
        (damaged / "entry.json").write_text("{not json")
    else:
        (damaged / "sending").write_text('{"pid": 1}')  # left by a flush killed after its final dot
    folder, _secret, before = outside(tmp_path)
    (box / where).symlink_to(folder)
    handler = RecordingHandler()
    server = smtpd(handler)
    for _ in range(2):
        result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
        sane(result)
        assert contents(folder) == before, "written through a link"
        assert subjects(handler) == Counter({"First": 1, "Last": 1}), result.stderr
        assert damaged.is_dir() and not damaged.is_symlink()
        assert result.exit_code not in (ExitCode.OK,), result.stderr
        assert str(box / where) in result.stderr


@posix_only
def test_a_lock_file_that_is_a_link_is_not_followed(run_smail, tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box, "First")
    folder, _secret, before = outside(tmp_path)
    (box / ".lock").symlink_to(folder / "created-by-smail")
    result = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}")
    sane(result)
    assert contents(folder) == before
    assert len(waiting(box)) == 1


# -- an entry in flight that cannot be moved to uncertain\ ----------------------------------------

def mark_in_flight(entry: Path) -> None:
    (entry / "sending").write_text('{"since": "2026-03-15T08:15:00+00:00", "pid": 1}')


@pytest.mark.parametrize("obstacle", ["a file named uncertain", "disk full", "folder held open"])
def test_an_entry_in_flight_that_cannot_be_moved_is_never_sent_again(smtpd, run_smail, tmp_path, monkeypatch,
                                                                     obstacle):
    box = tmp_path / "box"
    first, damaged, last = three(run_smail, box)
    mark_in_flight(damaged)
    if obstacle == "a file named uncertain":
        (box / "uncertain").write_text("a file, not a folder")
    else:
        error = OSError(errno.ENOSPC, "No space left on device") if obstacle == "disk full" \
            else PermissionError(errno.EACCES, "The process cannot access the file")
        real_rename = smail_files.rename

        def failing(source: Any, target: Any, **kwargs: Any) -> None:
            if "uncertain" in Path(target).parts:
                raise error
            real_rename(source, target, **kwargs)
        monkeypatch.setattr(smail_files, "rename", failing)
        def failing_write(path: Path, data: bytes) -> None:  # and whatever else fails around it
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(smail_files, "write_atomically", failing_write)
    handler = RecordingHandler()
    server = smtpd(handler)
    for _ in range(3):
        result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
        sane(result)
        assert subjects(handler) == Counter({"First": 1, "Last": 1}), result.stderr
        assert damaged.is_dir() and (damaged / "sending").exists()
        assert result.exit_code not in (ExitCode.OK,), result.stderr
        assert "may have been" in result.stderr, result.stderr


# -- a server that drops the line on one entry ----------------------------------------------------

def test_an_entry_on_which_the_server_drops_the_line_does_not_stop_the_flush(scripted, run_smail, tmp_path):
    """The server closes the connection when it reads one entry's recipient (before the final
    dot: certainly not delivered). The flush reconnects, sends the entries behind it, and keeps
    that one for later, its attempt counted."""
    box = tmp_path / "box"
    first = queue(run_smail, box, "First")
    poison = queue(run_smail, box, "Poison", "/TO=poison@test.test")
    rest = [queue(run_smail, box, f"Next {n}") for n in range(3)]
    delivered: list[bytes] = []

    def script(conn: Any) -> None:
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"RCPT" and b"poison@" in line:
                return  # the line drops
            if verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                delivered.append(data)
                conn.sendall(b"250 2.0.0 queued\r\n")
                continue
            conn.sendall(b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
            if verb == b"QUIT":
                return
    server = scripted(script)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={tmp_path / 'r.json'}")
    sane(result)
    assert len(delivered) == 4, result.stderr
    assert waiting(box) == [poison]
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "1 still waiting" in result.stderr
    status = json.loads((poison / "status.json").read_text(encoding="utf-8"))
    assert status["attempts"] == 2  # the send that kept it, and this flush
    assert first not in waiting(box) and not set(rest) & set(waiting(box))


# -- entries checked again when read back ---------------------------------------------------------

def header(name: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["message"]["headers"].append([name, value])


def recipient(address: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["message"].update(to=[{"address": address, "name": None}])


EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a Bcc: header": header("Bcc", "victim@evil.test"),
    "a From: header": header("From", "ceo@demo.test"),
    "a lower-case from: header": header("from", "ceo@demo.test"),
    "a Subject: header": header("Subject", "other"),
    "a header name with a space": header("X Bad", "1"),
    "a header name with a colon": header("X-A:B", "1"),
    "RCPT parameters": recipient("client@test.test NOTIFY=NEVER"),
    "RCPT parameters after a bracket": recipient("client@test.test> ORCPT=rfc822;victim@evil.test"),
    "an address without a domain": recipient("client"),
    "an empty address": recipient(""),
    "an address with a space": recipient("cli ent@test.test"),
    "two addresses in one": recipient("a@test.test,b@evil.test"),
    "a sender with parameters": lambda d: d["message"].update(sender={"address": "albert@demo.test SIZE=1",
                                                                       "name": None}),
    "a sender name with a control character": lambda d: d["message"].update(
        sender={"address": "albert@demo.test", "name": "Albert\x07"}),
    "no recipient at all": lambda d: d["message"].update(to=[], cc=[], bcc=[]),
    "a Date past the calendar": lambda d: d["message"].update(date="Mon, 1 Jan 99999 00:00:00 +0000"),
    "a Date that is no date": lambda d: d["message"].update(date="tomorrow"),
    "a Message-ID with a space": lambda d: d["message"].update(message_id="<a b@demo.test>"),
    "a Message-ID without brackets": lambda d: d["message"].update(message_id="abc@demo.test"),
    "a content type with a parameter": lambda d: d["message"]["attachments"][0].update(
        content_type='text/plain; boundary="x"'),
    "a content id that closes its bracket": lambda d: d["message"]["attachments"][0].update(
        content_id="a>\tX-Evil: 1"),
}


@pytest.mark.parametrize("change", list(EDITS))
def test_a_hand_edited_entry_passes_the_command_line_checks_or_is_moved_aside(smtpd, run_smail, tmp_path,
                                                                              files, change):
    box = tmp_path / "box"
    attachment = files("a.txt", b"hello")
    first = queue(run_smail, box, "First")
    damaged = queue(run_smail, box, "Damaged", f"/ATTACH={attachment}")
    last = queue(run_smail, box, "Last")
    edit(damaged, EDITS[change])
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    sane(result)
    assert subjects(handler) == Counter({"First": 1, "Last": 1}), result.stderr
    for received in handler.received:
        assert received.rcpt_tos == ["client@test.test"] and received.rcpt_options == []
        assert all(option.startswith("SIZE=") for option in received.mail_options)  # SMail's own
        assert received.mail_from == "albert@demo.test"
    [aside] = moved(box, "failed")
    assert aside.name == damaged.name and "damaged" in (aside / "reason.txt").read_text(encoding="utf-8")
    assert result.exit_code == ExitCode.PARTIAL
    assert first.name not in {p.name for p in waiting(box)} and last.name not in {p.name for p in waiting(box)}


# -- /RESEND_UNCERTAIN ----------------------------------------------------------------------------

def no_answer_after_the_dot(conn: Any) -> None:
    conn.sendall(b"220 ready\r\n")
    while line := read_line(conn):
        if line.upper().startswith(b"DATA"):
            conn.sendall(b"354 go ahead\r\n")
            data = b""
            while not data.endswith(b"\r\n.\r\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            return  # the final dot arrived; no answer ever comes, and nothing was delivered
        conn.sendall(b"250 ok\r\n")


def test_resend_uncertain_sends_again_what_the_administrator_checked(scripted, smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    lost = queue(run_smail, box, "Lost")
    silent = scripted(no_answer_after_the_dot)
    result = run_smail(*silent.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.SEND and "may have been delivered" in result.stderr
    [uncertain] = moved(box, "uncertain")
    handler = RecordingHandler()
    server = smtpd(handler)
    kept = queue(run_smail, box, "Waiting")
    plain = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert plain.exit_code == ExitCode.OK and subjects(handler) == Counter({"Waiting": 1})  # never the default
    assert moved(box, "uncertain") == [uncertain]
    dry = run_smail(*server.options, "/FLUSH", "/DRY_RUN", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert dry.exit_code == ExitCode.OK, dry.stderr
    assert f"{uncertain.name}: in {box / 'uncertain'}" in dry.stdout and "sent again" in dry.stdout
    assert moved(box, "uncertain") == [uncertain] and subjects(handler) == Counter({"Waiting": 1})
    report = tmp_path / "resend.json"
    again = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}", f"/RESULT_FILE={report}")
    sane(again)
    assert again.exit_code == ExitCode.OK, again.stderr
    assert subjects(handler) == Counter({"Waiting": 1, "Lost": 1})
    assert moved(box, "uncertain") == [] and waiting(box) == []
    [receipt] = json.loads(report.read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "sent" and receipt["resend"] is True
    assert receipt["source"] == {"entry": lost.name}
    assert "sent again" in again.log and lost.name in again.log
    assert "sent again" in again.stdout
    later = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert later.exit_code == ExitCode.OK and subjects(handler) == Counter({"Waiting": 1, "Lost": 1})
    assert kept.name not in {p.name for p in waiting(box)}


def test_resend_uncertain_of_an_entry_again_unanswered_keeps_it_uncertain(scripted, run_smail, tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box, "Lost")
    silent = scripted(no_answer_after_the_dot)
    assert run_smail(*silent.options, "/FLUSH", f"/OUTBOX={box}").exit_code == ExitCode.SEND
    again = run_smail(*silent.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    sane(again)
    assert again.exit_code == ExitCode.SEND
    assert len(moved(box, "uncertain")) == 1 and waiting(box) == []
    assert silent.connections == 2


def test_resend_uncertain_needs_flush_or_batch_resume(run_smail, tmp_path):
    result = run_smail(*down(), FROM, "/TO=client@test.test", "/BODY=x", "/RESEND_UNCERTAIN")
    assert result.exit_code == ExitCode.PARAM
    assert "/RESEND_UNCERTAIN" in result.stderr


def test_resend_uncertain_is_in_the_help_in_both_languages(run_smail):
    english = run_smail("/?")
    french = run_smail("/LANG=FR", "/?")
    assert "/RESEND_UNCERTAIN" in english.stdout and "/RESEND_UNCERTAIN" in french.stdout


# -- an entry kept in SMTP mode, flushed through Microsoft Graph ----------------------------------

@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=GRAPH_CANARY, mailboxes={SENDER})


@pytest.mark.parametrize("headers", [("/HEADER=Keywords: facture",),
                                     tuple(f"/HEADER=X-N{n}: {n}" for n in range(6))])
def test_an_entry_graph_cannot_carry_goes_to_failed_with_graph_s_rule(microsoft, tls_ca, run_smail, tmp_path, headers):
    """The command line refuses in Graph mode what Graph refuses (non-X- headers, more than 5):
    an entry kept in SMTP mode with such headers is moved aside, the others go through Graph."""
    box = tmp_path / "box"
    good = queue(run_smail, box, "Good", f"/FROM_ADDR={SENDER}")
    bad = queue(run_smail, box, "Bad", f"/FROM_ADDR={SENDER}", *headers)
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    sane(result)
    assert sorted(s.message["subject"] for s in microsoft.sent) == ["Good"], result.stderr
    [aside] = moved(box, "failed")
    assert aside.name == bad.name and "Microsoft Graph" in (aside / "reason.txt").read_text(encoding="utf-8")
    assert good.name not in {p.name for p in waiting(box)}


# -- many random damages at once ------------------------------------------------------------------

ODD_VALUES: list[Any] = [None, True, 0, -1, 2**70, 1e308, float("nan"), "", "x" * 10_000, "\udcff", "\x00",
                         "a\r\nBcc: v@evil.test", [], {}, [[]], {"address": "v@odd.test"}, "../../etc/passwd",
                         "9999-12-31T23:59:59+00:00", "<a@b>", "files/0", "files/99"]


def mutate(document: dict[str, Any], rng: Any) -> None:
    """Replace one field, anywhere in the entry, by an odd value."""
    node: Any = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        key = rng.choice(keys)
        if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.6:
            node = node[key]
            continue
        node[key] = json.loads(json.dumps(rng.choice(ODD_VALUES)))  # a fresh copy: no shared node
        return


def test_many_randomly_damaged_entries_never_stop_the_flush(smtpd, run_smail, tmp_path, files):
    import random

    rng = random.Random(32)
    box = tmp_path / "box"
    attachment = files("a.txt", b"hello")
    good = queue(run_smail, box, "Good")
    template = queue(run_smail, box, "Damaged", f"/ATTACH={attachment}")
    document = json.loads((template / "entry.json").read_text(encoding="utf-8"))
    for number in range(40):
        copy = box / f"{template.name[:-4]}{number:04x}"
        shutil.copytree(template, copy)
        damaged = json.loads(json.dumps(document))
        for _ in range(rng.randint(1, 3)):
            mutate(damaged, rng)
        (copy / "entry.json").write_text(json.dumps(damaged), encoding="utf-8")
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={tmp_path / 'r.json'}")
    sane(result)
    assert subjects(handler)["Good"] == 1
    for received in handler.received:
        assert b"evil.test" not in received.data and not any("evil" in r for r in received.rcpt_tos)
    assert waiting(box) == [], result.stderr  # each one sent or moved aside: none blocks the others
    assert good.name not in {p.name for p in moved(box, "failed")}
