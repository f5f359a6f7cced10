"""/OUTBOX and /FLUSH against real servers (aiosmtpd, scripted SMTP, the Microsoft fake) and
real processes: what the servers received (counted by Message-ID), exit codes, the files left."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smail import outbox
from smail.errors import ExitCode
from smail.outbox import disk, layout
from tests.fakes.microsoft import FakeMicrosoft
from tests.smtpd import Received, RecordingHandler, free_port, read_line

ROOT = Path(__file__).resolve().parents[2]
BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Facture", "/BODY=Bonjour")
CANARY = "Canary-Pw-7f3e9c1d-é"
GRAPH_CANARY = "Graph~Secret.Canary-0123456789"
SENDER = "user@domaine.test"
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


def down() -> list[str]:
    """The options of an SMTP server that is down (a closed port)."""
    return ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}"]


def waiting(box: Path) -> list[Path]:
    if not box.is_dir():
        return []
    return sorted(p for p in box.iterdir() if p.is_dir() and layout.ENTRY_NAME.fullmatch(p.name))


def moved(box: Path, where: str) -> list[Path]:
    folder = box / where
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def message_id(data: bytes) -> str:
    match = MESSAGE_ID.search(data)
    assert match, data[:500]
    return match.group(1).decode()


def entry_message_id(entry: Path) -> str:
    return str(json.loads((entry / layout.ENTRY).read_text(encoding="utf-8"))["message"]["message_id"])


def delivered(received: list[Received]) -> Counter[str]:
    return Counter(message_id(r.data) for r in list(received))


def assert_no_secret(box: Path, *secrets: str) -> None:
    """No file of the outbox holds a secret, raw, base64, URL-encoded or as JSON escapes."""
    forms: set[bytes] = set()
    for secret in secrets:
        raw = secret.encode("utf-8")
        forms |= {raw, base64.b64encode(raw), urllib.parse.quote(secret, safe="").encode(),
                  json.dumps(secret).strip('"').encode(), secret.encode("utf-16-le")}
    paths = list(box.rglob("*"))
    assert paths
    for path in paths:
        assert not any(s in str(path) for s in secrets)
        if path.is_file():
            data = path.read_bytes()
            for form in forms:
                assert form not in data, (path, form)


def queue(run_smail: Any, box: Path, *extra: str, server: list[str] | None = None) -> Path:
    """Send while the server is down: exit 10 and one more entry, which is returned."""
    before = set(waiting(box))
    to = () if any(e.upper().startswith("/TO=") for e in extra) else ("/TO=client@test.test",)
    result = run_smail(*(server or down()), *BASIC[:1], *BASIC[2:], *to, f"/OUTBOX={box}", *extra)
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    [entry] = set(waiting(box)) - before
    assert f"kept in the outbox {box} as {entry.name}" in result.stderr
    return entry


# -- the whole round trip ------------------------------------------------------------------------

def test_server_down_queues_then_flush_delivers_the_same_bytes_without_storing_the_password(
        smtpd, run_smail, files, tmp_path):
    box = tmp_path / "outbox"
    attachment = files("Facture mars.pdf", b"%PDF-1.4 " + bytes(range(256)) * 100)
    inline = files("logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 500)
    body = files("Mail.html", '<p>Bonjour <img src="cid:logo.png"></p>')
    eml = tmp_path / "queued.eml"
    result_file = tmp_path / "queued.json"
    auth = ("/SMTP_USERNAME=u", f"/SMTP_PASSWORD={CANARY}")
    result = run_smail(*down(), *auth, "/FROM_ADDR=albert@demo.test", "/TO=Client <client@test.test>",
                       "/BCC=cache@test.test", "/SUBJECT=Facture de mars", f"/BODY_FILE={body}",
                       f"/ATTACH={attachment}", f"/INLINE={inline}", "/RECEPTION_ACK", "/READ_ACK",
                       "/PRIORITY=HIGH", "/HEADER=X-ERP: FAC-032026", f"/SAVE_EML={eml}",
                       f"/OUTBOX={box}", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    [entry] = waiting(box)
    assert result.stdout == ""
    assert result.stderr.startswith("127.0.0.1:") and "refused the connection" in result.stderr
    assert f"kept in the outbox {box} as {entry.name}" in result.stderr
    report = json.loads(result_file.read_text(encoding="utf-8"))
    assert report["exit_code"] == 10 and report["exit_name"] == "EXIT_QUEUED"
    assert report["messages"][0]["status"] == "queued"
    assert report["messages"][0]["source"] == {"entry": entry.name}
    status = json.loads((entry / layout.STATUS).read_text(encoding="utf-8"))
    assert status["attempts"] == 1 and "refused the connection" in status["last_error"]
    assert status["created"]
    assert_no_secret(box, CANARY)
    attachment.unlink()  # the entry has its own copies
    inline.write_bytes(b"changed after queueing")

    handler = RecordingHandler(passwords={"u": CANARY}, dsn=True)
    server = smtpd(handler)
    flushed = run_smail(*server.options, *auth, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={result_file}")
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    assert flushed.stdout == f"1 message sent from the outbox {box}; it is now empty.\n"
    [received] = handler.received
    assert received.data == eml.read_bytes()  # byte for byte: same Message-ID, Date, boundaries
    assert received.rcpt_tos == ["client@test.test", "cache@test.test"]
    assert "NOTIFY=SUCCESS,FAILURE" in received.rcpt_options and "RET=HDRS" in received.mail_options
    assert handler.logins and CANARY not in flushed.output
    assert waiting(box) == [] and not (box / layout.FAILED).exists() and not (box / layout.UNCERTAIN).exists()
    assert [p.name for p in box.iterdir()] == [layout.LOCK]
    report = json.loads(result_file.read_text(encoding="utf-8"))
    assert report["exit_code"] == 0
    [sent] = report["messages"]
    assert sent["status"] == "sent" and sent["source"] == {"entry": entry.name}
    assert sent["message_id"] == message_id(received.data)


def test_flush_of_an_empty_or_missing_outbox_says_so_and_exits_0(smtpd, run_smail, tmp_path):
    server = smtpd(RecordingHandler())
    missing = run_smail(*server.options, "/FLUSH", f"/OUTBOX={tmp_path / 'none'}")
    assert missing.exit_code == ExitCode.OK
    assert missing.stdout == f"The outbox {tmp_path / 'none'} is empty: nothing to send.\n"
    (tmp_path / "box").mkdir()
    empty = run_smail(*down(), "/FLUSH", f"/OUTBOX={tmp_path / 'box'}")
    assert empty.exit_code == ExitCode.OK and "is empty: nothing to send" in empty.stdout


def test_oldest_first_over_one_connection(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    ids = [entry_message_id(queue(run_smail, box, f"/SUBJECT=n{i}")) for i in range(5)]
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [message_id(r.data) for r in handler.received] == ids
    assert [re.search(rb"Subject: (n\d)", r.data).group(1) for r in handler.received] == \
        [b"n0", b"n1", b"n2", b"n3", b"n4"]
    assert len(handler.helo_names) == 1  # one connection for all five
    assert "5 messages sent from the outbox" in result.stdout


# -- what is queued and what is not -----------------------------------------------------------

def test_a_4xx_after_the_retries_is_queued(smtpd, run_smail, tmp_path):
    handler = RecordingHandler(data_reply="451 4.3.0 Try again later")
    server = smtpd(handler)
    box = tmp_path / "box"
    result = run_smail(*server.options, *BASIC, f"/OUTBOX={box}", "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    assert "after 2 attempts" in result.stderr
    [entry] = waiting(box)
    status = json.loads((entry / layout.STATUS).read_text(encoding="utf-8"))
    assert status["attempts"] == 2 and status["last_exit_code"] == ExitCode.RETRY_EXCEEDED


@pytest.mark.parametrize("handler, code, login", [
    (RecordingHandler(rcpt_replies=["550 5.1.1 No such user"]), ExitCode.SEND, ()),
    (RecordingHandler(data_reply="554 5.7.1 Message refused"), ExitCode.SEND, ()),
    (RecordingHandler(passwords={"u": "other"}), ExitCode.AUTH, ("/SMTP_USERNAME=u", "/SMTP_PASSWORD=pw")),
])
def test_a_permanent_failure_is_not_queued_and_keeps_its_code(smtpd, run_smail, tmp_path, handler, code, login):
    server = smtpd(handler)
    box = tmp_path / "box"
    result = run_smail(*server.options, *BASIC, f"/OUTBOX={box}", *login)
    assert result.exit_code == code, result.stderr
    assert waiting(box) == [] and "outbox" not in result.stderr


def test_may_have_been_sent_is_never_queued(scripted, run_smail, tmp_path):
    def script(conn):
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += conn.recv(65536)
                return  # the final dot arrived; no answer ever comes
            conn.sendall(b"250 ok\r\n")
    server = scripted(script)
    box = tmp_path / "box"
    result = run_smail(*server.options, *BASIC, f"/OUTBOX={box}", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND
    assert "may have been delivered" in result.stderr
    assert waiting(box) == [] and server.connections == 1


def test_a_connection_dropped_during_data_is_queued(scripted, run_smail, tmp_path, files):
    def script(conn):
        conn.sendall(b"220 ready\r\n")
        from tests.smtpd import talk
        talk(conn, {"EHLO": "250 ok"}, drop_during_data=True)
    server = scripted(script)
    box = tmp_path / "box"
    attachment = files("big.bin", b"x" * 3_000_000)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    [entry] = waiting(box)
    assert (entry / "files" / "0").read_bytes() == attachment.read_bytes()


# -- /FLUSH outcomes ------------------------------------------------------------------------------

def test_flush_with_the_server_still_down_keeps_everything_and_exits_3(run_smail, tmp_path):
    box = tmp_path / "box"
    entries = [queue(run_smail, box) for _ in range(3)]
    result_file = tmp_path / "result.json"
    result = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.CONNECT, result.stderr
    assert "refused the connection" in result.stderr and "0 sent, 3 still waiting" in result.stderr
    assert waiting(box) == entries
    status = json.loads((entries[0] / layout.STATUS).read_text(encoding="utf-8"))
    assert status["attempts"] == 2  # the send's attempt and the flush's
    assert json.loads((entries[1] / layout.STATUS).read_text(encoding="utf-8"))["attempts"] == 1  # not tried
    report = json.loads(result_file.read_text(encoding="utf-8"))
    assert [m["status"] for m in report["messages"]] == ["queued"] * 3
    assert [m["source"] for m in report["messages"]] == [{"entry": e.name} for e in entries]
    assert all(m["exit_code"] == ExitCode.CONNECT for m in report["messages"])


def test_flush_with_the_login_refused_exits_4_and_keeps_everything(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    entries = [queue(run_smail, box) for _ in range(2)]
    handler = RecordingHandler(passwords={"u": "right"})
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", "/SMTP_USERNAME=u", "/SMTP_PASSWORD=wrong")
    assert result.exit_code == ExitCode.AUTH, result.stderr
    assert waiting(box) == entries and not (box / layout.FAILED).exists()
    assert handler.received == []


def test_permanent_refusal_goes_to_failed_with_its_reason_and_the_rest_is_sent(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    first = queue(run_smail, box, "/TO=nobody@test.test")
    second = queue(run_smail, box)
    first_id, second_id = entry_message_id(first), entry_message_id(second)
    handler = RecordingHandler(rcpt_replies=["550 5.1.1 <nobody@test.test>: no such user"])
    server = smtpd(handler)
    result_file = tmp_path / "r.json"
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "1 sent, 0 still waiting, 1 moved to" in result.stderr and "550 5.1.1" in result.stderr
    assert waiting(box) == []
    [failed] = moved(box, layout.FAILED)
    assert failed.name == first.name
    assert "550 5.1.1 <nobody@test.test>: no such user" in (failed / layout.REASON).read_text(encoding="utf-8")
    status = json.loads((failed / layout.STATUS).read_text(encoding="utf-8"))
    assert status["outcome"] == "failed" and "550 5.1.1" in status["reason"]
    assert delivered(handler.received) == Counter({second_id: 1}) and entry_message_id(failed) == first_id
    report = json.loads(result_file.read_text(encoding="utf-8"))
    assert report["exit_code"] == 11
    assert [(m["status"], m["source"]["entry"]) for m in report["messages"]] == \
        [("refused", first.name), ("sent", second.name)]
    assert report["messages"][0]["refused"][0]["address"] == "nobody@test.test"


def test_only_refusals_exit_with_the_refusal_code(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box)
    server = smtpd(RecordingHandler(data_reply="554 5.6.0 Content refused"))
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.SEND
    assert result.stderr.startswith("554 5.6.0") or "554 5.6.0" in result.stderr.split(" Outbox ")[0]
    assert len(moved(box, layout.FAILED)) == 1 and waiting(box) == []


def test_a_transient_refusal_of_one_entry_leaves_it_and_sends_the_others(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    first, second = queue(run_smail, box), queue(run_smail, box)
    first_id, second_id = entry_message_id(first), entry_message_id(second)
    handler = RecordingHandler(rcpt_replies=["452 4.2.2 Mailbox full"])
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert waiting(box) == [first]
    assert "452 4.2.2" in json.loads((first / layout.STATUS).read_text(encoding="utf-8"))["last_error"]
    assert delivered(handler.received) == Counter({second_id: 1})
    again = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert again.exit_code == ExitCode.OK and waiting(box) == []
    assert delivered(handler.received) == Counter({first_id: 1, second_id: 1})


def test_no_answer_after_the_final_dot_moves_the_entry_to_uncertain(scripted, run_smail, tmp_path):
    box = tmp_path / "box"
    entry = queue(run_smail, box)

    def script(conn):
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            if line.upper().startswith(b"DATA"):
                conn.sendall(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += conn.recv(65536)
                return
            conn.sendall(b"250 ok\r\n")
    server = scripted(script)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND
    assert "may have been delivered" in result.stderr
    [uncertain] = moved(box, layout.UNCERTAIN)
    assert uncertain.name == entry.name and waiting(box) == []
    assert not (uncertain / layout.SENDING_MARK).exists()  # moved back by hand, it can be sent again
    assert "may have been delivered" in (uncertain / layout.REASON).read_text(encoding="utf-8")
    assert server.connections == 1
    later = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}")
    assert later.exit_code == ExitCode.OK and "empty" in later.stdout  # never resent automatically


def test_expired_entries_go_to_failed_even_with_the_server_down(run_smail, tmp_path):
    box = tmp_path / "box"
    old = queue(run_smail, box)
    time.sleep(1.2)
    young = queue(run_smail, box)
    result = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}", "/OUTBOX_MAX_AGE=1S")
    assert result.exit_code == ExitCode.CONNECT, result.stderr
    assert waiting(box) == [young]
    [failed] = moved(box, layout.FAILED)
    assert failed.name == old.name
    reason = (failed / layout.REASON).read_text(encoding="utf-8")
    assert "could not be delivered within 1 s (/OUTBOX_MAX_AGE)" in reason and "refused the connection" in reason


def test_expired_only_exits_6(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box)
    time.sleep(1.1)
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", "/OUTBOX_MAX_AGE=1S")
    assert result.exit_code == ExitCode.RETRY_EXCEEDED
    assert handler.received == [] and len(moved(box, layout.FAILED)) == 1


def test_dry_run_lists_entries_and_connects_nowhere(run_smail, tmp_path):
    box = tmp_path / "box"
    first = queue(run_smail, box, "/SUBJECT=Premier envoi", "/CC=copie@test.test")
    second = queue(run_smail, box, "/SUBJECT=Second")
    (second / layout.SENDING_MARK).write_text("{}")
    result_file = tmp_path / "r.json"
    result = run_smail(*down(), "/FLUSH", "/DRY_RUN", f"/OUTBOX={box}", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{first.name}: created 20") and \
        lines[0].endswith(', to client@test.test, copie@test.test, subject "Premier envoi".')
    assert lines[1].startswith(f"{second.name}: created") and "would be moved to" in lines[1]
    assert lines[2] == f"Dry run: 1 message of the outbox {box} would be sent; nothing was sent."
    assert "Connecting" not in result.log and "refused" not in result.log
    assert waiting(box) == [first, second]  # nothing moves
    report = json.loads(result_file.read_text(encoding="utf-8"))
    assert [(m["status"], m["source"]) for m in report["messages"]] == [("dry-run", {"entry": first.name})]


def test_french_lines(run_smail, tmp_path, smtpd):
    box = tmp_path / "box"
    result = run_smail(*down(), *BASIC, f"/OUTBOX={box}", "/LANG=FR")
    assert result.exit_code == ExitCode.QUEUED
    assert "Le message est conservé dans la boîte d'envoi" in result.stderr


# -- Graph ----------------------------------------------------------------------------------------

@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=GRAPH_CANARY, mailboxes={SENDER})


def graph_options(microsoft: FakeMicrosoft | None, tls_ca: Any) -> list[str]:
    base = microsoft.base if microsoft else f"https://127.0.0.1:{free_port()}"
    tenant = microsoft.tenant if microsoft else "contoso-tenant-id"
    return ["/MODE=GRAPH", f"/O365_TENANT_ID={tenant}", "/O365_APP_ID=app-id-1", f"/GRAPH_SENDER={SENDER}",
            f"/O365_AUTHORITY_HOST={base}", f"/GRAPH_ENDPOINT={base}", f"/CA_FILE={tls_ca.pem}",
            f"/O365_SECRET={GRAPH_CANARY}"]


GRAPH_ENV = {"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"}


def test_graph_queue_while_down_then_flush(microsoft, tls_ca, run_smail, tmp_path, files):
    box = tmp_path / "box"
    attachment = files("doc.pdf", b"%PDF" + b"z" * 2000)
    result = run_smail(*graph_options(None, tls_ca), "/TO=client@test.test", "/SUBJECT=Démonstration",
                       "/BODY=Bonjour", f"/ATTACH={attachment}", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    [entry] = waiting(box)
    assert_no_secret(box, GRAPH_CANARY)
    attachment.unlink()
    flushed = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    [sent] = microsoft.sent
    assert sent.message["subject"] == "Démonstration"
    [pdf] = sent.message["attachments"]
    assert base64.b64decode(pdf["contentBytes"]) == b"%PDF" + b"z" * 2000 and pdf["name"] == "doc.pdf"
    assert waiting(box) == [] and GRAPH_CANARY not in flushed.output


def test_an_entry_queued_in_smtp_mode_goes_out_through_graph_and_back(microsoft, tls_ca, smtpd, run_smail,
                                                                      tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box, f"/FROM_ADDR={SENDER}", "/CC=copie@test.test", "/PRIORITY=HIGH")
    flushed = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    [sent] = microsoft.sent
    assert sent.message["ccRecipients"][0]["emailAddress"]["address"] == "copie@test.test"
    assert sent.message["importance"] == "high" and "from" not in sent.message

    queued = run_smail(*graph_options(None, tls_ca), "/TO=client@test.test", "/SUBJECT=Via Graph",
                       "/BODY=Bonjour", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert queued.exit_code == ExitCode.QUEUED, queued.stderr
    [entry] = waiting(box)
    queued_id = entry_message_id(entry)
    handler = RecordingHandler()
    server = smtpd(handler)
    flushed = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    [received] = handler.received
    assert received.mail_from == SENDER and message_id(received.data) == queued_id
    assert b"Subject: Via Graph" in received.data


def test_graph_flush_of_many_entries_sends_each_once(microsoft, tls_ca, run_smail, tmp_path):
    box = tmp_path / "box"
    fill(box, 12)
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert sorted(s.message["subject"] for s in microsoft.sent) == sorted(f"Message {n}" for n in range(12))
    assert waiting(box) == []


def test_graph_no_answer_to_the_send_request_moves_the_entry_to_uncertain(microsoft, tls_ca, run_smail, tmp_path):
    box = tmp_path / "box"
    entry = queue(run_smail, box, f"/FROM_ADDR={SENDER}")
    microsoft.stall(r"/sendMail$", 3)
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=1",
                       "/RETRY=3", "/RETRY_DELAY=0.01", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert [p.name for p in moved(box, layout.UNCERTAIN)] == [entry.name] and waiting(box) == []


def test_graph_refusal_goes_to_failed_and_throttling_stays(microsoft, tls_ca, run_smail, tmp_path):
    box = tmp_path / "box"
    first, second = queue(run_smail, box, f"/FROM_ADDR={SENDER}"), queue(run_smail, box, f"/FROM_ADDR={SENDER}")
    microsoft.fail(r"/sendMail$", 400, error={"error": {"code": "ErrorInvalidRecipients", "message": "Bad"}})
    microsoft.fail(r"/sendMail$", 503)
    result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert {p.name for p in moved(box, layout.FAILED)} | {p.name for p in waiting(box)} == {first.name, second.name}
    assert len(moved(box, layout.FAILED)) == 1 and len(waiting(box)) == 1
    assert microsoft.sent == []


# -- the lock ----------------------------------------------------------------------------------

def hold_lock(box: Path) -> int:
    box.mkdir(parents=True, exist_ok=True)
    fd = disk.lock(box, 0)
    assert fd is not None
    return fd


def test_a_second_flush_waits_up_to_timeout_then_exits_1(run_smail, tmp_path):
    box = tmp_path / "box"
    entry = queue(run_smail, box)
    fd = hold_lock(box)
    try:
        started = time.monotonic()
        result = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=1")
        elapsed = time.monotonic() - started
    finally:
        os.close(fd)
    assert result.exit_code == ExitCode.ERROR
    assert 0.9 <= elapsed < 5
    assert "Another SMail /FLUSH is sending the outbox" in result.stderr and "sent nothing" in result.stderr
    assert waiting(box) == [entry]


def test_a_second_flush_gets_the_lock_when_released_and_finds_nothing_left(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    queue(run_smail, box)
    fd = hold_lock(box)
    handler = RecordingHandler()
    server = smtpd(handler)
    releaser = threading.Timer(0.5, lambda: (shutil.rmtree(waiting(box)[0]), os.close(fd)))
    releaser.start()
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=5")
    releaser.join()
    assert result.exit_code == ExitCode.OK and "empty" in result.stdout
    assert handler.received == []


LOCK_HOLDER = """
import os, sys, time
from pathlib import Path
from smail.outbox import disk
fd = disk.lock(Path(sys.argv[1]), 0)
print("locked" if fd is not None else "busy", flush=True)
time.sleep(60)
"""


def test_a_lock_whose_owner_was_killed_is_taken_over(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(box)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert disk.lock(box, 0.2) is None  # held by a live process
        holder.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
        holder.wait(10)
        fd = disk.lock(box, 2)
        assert fd is not None
        os.close(fd)
    finally:
        holder.kill()
        holder.wait(10)


# -- real processes at once ---------------------------------------------------------------------

def smail_process(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LANG": "C", "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("SMAIL_")}
    return subprocess.Popen([sys.executable, "-m", "smail", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fill(box: Path, count: int, *, attachment: Path | None = None) -> list[str]:
    """`count` entries written as a send would, quickly (no process per entry); their Message-IDs."""
    from smail import mime
    from smail.message import load_message
    from smail.settings import MessageSettings

    ids = []
    for number in range(count):
        settings = MessageSettings(from_addr="albert@demo.test", to=("client@test.test",),
                                   subject=f"Message {number}", body_text=f"Bonjour {number}\n",
                                   attachments=(attachment,) if attachment and number % 3 == 0 else ())
        message = load_message(settings)
        outbox.write_entry(box, message, mime.render(message))
        ids.append(message.message_id)
    return ids


def test_two_flushes_at_once_send_each_of_100_entries_exactly_once(smtpd, tmp_path):
    box = tmp_path / "box"
    ids = fill(box, 100)
    handler = RecordingHandler()
    server = smtpd(handler)
    # The second waits for the lock as long as the first sends: generous on a loaded machine.
    flushes = [smail_process(*server.options, "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=600") for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in flushes]
    results = [(p.returncode, out, err) for p, (out, err) in zip(flushes, outputs, strict=True)]
    assert sorted(code for code, _out, _err in results) == [0, 0], results
    outputs = sorted(out for _code, out, _err in results)
    assert outputs == sorted([f"100 messages sent from the outbox {box}; it is now empty.\n",
                              f"The outbox {box} is empty: nothing to send.\n"]), results
    assert delivered(handler.received) == Counter({i: 1 for i in ids})
    assert waiting(box) == []


class SlowHandler(RecordingHandler):
    """Slow to answer after the final dot, so that kills land there: half the time the message
    is kept at once (delivered, the client never hears it), half the time only when answering
    (a client killed meanwhile makes aiosmtpd drop it: not delivered). `answering` counts the
    final dots not answered yet, `ends` every final dot that arrived."""

    answering: int = 0
    ends: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.answering += 1
        self.ends += 1
        try:
            if random.random() < 0.5:
                reply = await super().handle_DATA(server, session, envelope)
                await asyncio.sleep(random.uniform(0.0, 0.15))
                return reply
            await asyncio.sleep(random.uniform(0.0, 0.15))
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.answering -= 1


def wait_for(condition: Any, limit: float, what: str) -> None:
    """Wait until condition() holds; generous limits, so that a loaded machine only waits longer."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {limit:.0f} s: {what}"
        time.sleep(0.02)


def test_kill_9_during_flushes_never_sends_twice_nor_loses_a_message(smtpd, tmp_path, files):
    box = tmp_path / "box"
    attachment = files("big.bin", os.urandom(4_000_000))  # DATA long enough to be killed during it
    ids = fill(box, 60, attachment=attachment)
    handler = SlowHandler()
    server = smtpd(handler, data_size_limit=0)
    rng = random.Random(12)
    kills = 0
    for _ in range(15):
        flush = smail_process(*server.options, "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=30")
        # The kill lands a random moment after this flush's first final dot (or its end): the
        # moment depends on what the flush did, not on how fast a loaded machine started it.
        ends = handler.ends
        wait_for(lambda ends=ends, flush=flush: handler.ends > ends or flush.poll() is not None, 600,
                 "a final dot or the flush's end")
        time.sleep(rng.uniform(0.0, 0.5))
        if flush.poll() is None:
            flush.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
            kills += 1
        flush.communicate(timeout=600)
        if not waiting(box):
            break
    final = smail_process(*server.options, "/FLUSH", f"/OUTBOX={box}", "/TIMEOUT=30")
    out, err = final.communicate(timeout=900)  # 60 messages of 4 MB: generous on a loaded machine
    code = final.returncode
    assert code in (ExitCode.OK, ExitCode.PARTIAL, ExitCode.SEND), (code, out[-2000:], err[-2000:])
    assert kills > 0
    assert waiting(box) == [] and moved(box, layout.FAILED) == []
    uncertain = {entry_message_id(e) for e in moved(box, layout.UNCERTAIN)}
    wait_for(lambda: handler.answering == 0, 60, "the server finishing the transactions of killed clients")
    counts = delivered(handler.received)
    print(f"{kills} kills; {len(uncertain)} in uncertain/, {sum(counts[i] for i in uncertain)} of them delivered")
    assert set(counts) <= set(ids)
    for i in ids:
        if i in uncertain:
            assert counts[i] <= 1, i
        else:
            assert counts[i] == 1, (i, counts[i])


def test_a_send_that_queues_during_a_flush_is_neither_lost_nor_sent_twice(smtpd, tmp_path, run_smail):
    box = tmp_path / "box"
    ids = fill(box, 20)
    handler = SlowHandler()
    server = smtpd(handler)
    flush = smail_process(*server.options, "/FLUSH", f"/OUTBOX={box}")
    wait_for(lambda: handler.ends > 0 or flush.poll() is not None, 600, "the flush's first message")
    added = [entry_message_id(queue(run_smail, box)) for _ in range(3)]
    _out, err = flush.communicate(timeout=600)
    assert flush.returncode == 0, err
    again = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert again.exit_code == ExitCode.OK
    assert delivered(handler.received) == Counter({i: 1 for i in ids + added})
    assert waiting(box) == []


def test_many_processes_queue_at_once(tmp_path):
    box = tmp_path / "box"
    port = free_port()
    senders = [smail_process("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={port}", *BASIC, f"/SUBJECT=n{i}",
                             f"/OUTBOX={box}") for i in range(20)]
    codes = [p.wait(300) for p in senders]
    for p in senders:
        p.stdout.close()
        p.stderr.close()
    assert codes == [ExitCode.QUEUED] * 20
    entries = waiting(box)
    assert len(entries) == 20
    assert len({entry_message_id(e) for e in entries}) == 20
    assert not [p for p in box.iterdir() if p.name.startswith(".new-")]


def test_an_interrupted_flush_leaves_its_in_flight_entry_to_uncertain(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    first, second = queue(run_smail, box), queue(run_smail, box)
    second_id = entry_message_id(second)
    (first / layout.SENDING_MARK).write_text('{"pid": 1}')  # what a flush killed after on_commit leaves
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "1 moved to" in result.stderr and "may have been delivered" in result.stderr
    assert delivered(handler.received) == Counter({second_id: 1})
    [uncertain] = moved(box, layout.UNCERTAIN)
    assert uncertain.name == first.name


# -- attacks --------------------------------------------------------------------------------------

def test_a_lock_that_is_not_a_file_is_a_clear_error(run_smail, tmp_path):
    box = tmp_path / "box"
    entry = queue(run_smail, box)
    (box / layout.LOCK).mkdir()
    result = run_smail(*down(), "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.ERROR
    assert result.stderr.startswith(f"The outbox {box} cannot be locked:")
    assert waiting(box) == [entry]


def test_outbox_naming_a_file_or_a_fifo_is_refused_before_sending(run_smail, tmp_path, files):
    plain = files("not-a-folder.txt", "x")
    result = run_smail(*down(), *BASIC, f"/OUTBOX={plain}")
    assert result.exit_code == ExitCode.PARAM and "is not a folder" in result.stderr
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        result = run_smail(*down(), *BASIC, f"/OUTBOX={fifo}")
        assert result.exit_code == ExitCode.PARAM
        flushed = run_smail(*down(), "/FLUSH", f"/OUTBOX={fifo}")
        assert flushed.exit_code == ExitCode.PARAM


def test_an_outbox_under_a_file_keeps_the_original_failure(run_smail, tmp_path, files):
    plain = files("file.txt", "x")
    result = run_smail(*down(), *BASIC, f"/OUTBOX={plain / 'sub'}")
    assert result.exit_code == ExitCode.CONNECT, result.stderr
    assert "could not be kept in the outbox" in result.stderr


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_outbox_keeps_the_original_failure(run_smail, tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o500)
    try:
        result = run_smail(*down(), *BASIC, f"/OUTBOX={box}")
    finally:
        box.chmod(0o700)
    assert result.exit_code == ExitCode.CONNECT
    assert "could not be kept in the outbox" in result.stderr and "Permission denied" in result.stderr


def test_disk_full_while_writing_an_entry_keeps_the_original_failure_and_leaves_nothing(
        run_smail, tmp_path, files, monkeypatch):
    box = tmp_path / "box"
    attachment = files("a.bin", b"a" * 10_000)
    real_write = disk.write_new

    def full(path, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(disk, "write_new", full)
    result = run_smail(*down(), *BASIC, f"/ATTACH={attachment}", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.CONNECT
    assert "could not be kept in the outbox" in result.stderr and "No space left on device" in result.stderr
    assert list(box.iterdir()) == []
    monkeypatch.setattr(disk, "write_new", real_write)
    monkeypatch.setattr(disk.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    result = run_smail(*down(), *BASIC, f"/ATTACH={attachment}", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.CONNECT and "No space left" in result.stderr
    assert list(box.iterdir()) == []


@pytest.mark.parametrize("mode", ["SMTP", "GRAPH"])
def test_an_entry_that_cannot_be_marked_in_flight_is_not_sent(smtpd, microsoft, tls_ca, run_smail, tmp_path,
                                                              monkeypatch, mode):
    box = tmp_path / "box"
    entries = [queue(run_smail, box, f"/FROM_ADDR={SENDER}") for _ in range(2)]
    real = disk.write_new

    def no_marker(path, data):
        if path.name == layout.SENDING_MARK:
            raise OSError(28, "No space left on device")
        real(path, data)
    monkeypatch.setattr(disk, "write_new", no_marker)
    handler = RecordingHandler()
    server = smtpd(handler)
    if mode == "SMTP":
        result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    else:
        result = run_smail(*graph_options(microsoft, tls_ca), "/FLUSH", f"/OUTBOX={box}", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.ERROR, result.stderr
    assert "could not be marked as being sent (No space left on device), so it was not sent" in result.stderr
    assert handler.received == [] and microsoft.sent == []  # abandoned before its end: discarded
    assert waiting(box) == entries and not any((e / layout.SENDING_MARK).exists() for e in entries)


def test_damaged_entries_go_to_failed_with_a_reason_never_a_traceback(smtpd, run_smail, tmp_path, files):
    box = tmp_path / "box"
    attachment = files("a.bin", b"a" * 1000)
    entries = [queue(run_smail, box, f"/ATTACH={attachment}") for _ in range(6)]
    good_id = entry_message_id(entries[4])
    (entries[0] / layout.ENTRY).write_text("{not json", encoding="utf-8")
    (entries[1] / "files" / "0").unlink()
    (entries[2] / "files" / "0").write_bytes(b"short")
    document = json.loads((entries[3] / layout.ENTRY).read_text(encoding="utf-8"))
    document["message"]["attachments"][0]["file"] = "../../../etc/passwd"
    (entries[3] / layout.ENTRY).write_text(json.dumps(document), encoding="utf-8")
    (entries[4] / layout.STATUS).write_text("garbage", encoding="utf-8")  # only the counters are lost
    document = json.loads((entries[5] / layout.ENTRY).read_text(encoding="utf-8"))
    document["message"]["subject"] = "x\r\nBcc: victim@test.test"
    (entries[5] / layout.ENTRY).write_text(json.dumps(document), encoding="utf-8")
    (box / "stray-file.txt").write_text("ignored")
    (box / "empty-folder").mkdir()
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr + result.log
    assert "Traceback" not in result.log
    failed = {p.name: (p / layout.REASON).read_text(encoding="utf-8") for p in moved(box, layout.FAILED)}
    assert set(failed) == {entries[0].name, entries[1].name, entries[2].name, entries[3].name, entries[5].name}
    assert "cannot be read" in failed[entries[0].name]
    assert "missing from the outbox entry" in failed[entries[1].name]
    assert "has 5 bytes instead of 1000" in failed[entries[2].name]
    assert "is damaged" in failed[entries[3].name] and "is damaged" in failed[entries[5].name]
    assert delivered(handler.received) == Counter({good_id: 1})
    assert waiting(box) == [] and (box / "stray-file.txt").exists()
    assert (box / "empty-folder").is_dir()  # not named as SMail names its entries: not ours


def test_a_half_written_entry_is_invisible_and_cleaned_when_stale(smtpd, run_smail, tmp_path):
    box = tmp_path / "box"
    entry = queue(run_smail, box)
    half = box / f"{layout.NEW}{entry.name}x"
    # copyfile, not copytree's default copy2: on Windows copy2 calls CopyFile2, which Wine 8 lacks.
    shutil.copytree(entry, half, copy_function=shutil.copyfile)
    fresh = box / f"{layout.NEW}fresh"
    fresh.mkdir()
    old = time.time() - layout.STALE_NEW - 10
    os.utime(half, (old, old))
    gone = box / f"{layout.DONE}{entry.name}y"
    gone.mkdir()
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.OK and len(handler.received) == 1
    assert not half.exists() and not gone.exists() and fresh.exists()

