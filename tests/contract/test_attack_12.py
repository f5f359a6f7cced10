"""Hostile servers and dying networks against the promises: never a secret shown, never twice."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from smail import retry
from smail.errors import ExitCode
from smail.outbox import layout
from tests.contract.test_graph import graph, microsoft  # noqa: F401 (fixtures)
from tests.contract.test_outbox import queue
from tests.smtpd import RecordingHandler, read_line


def _echoing_auth_server(mechanism: str):
    """Offers one AUTH mechanism and refuses it with a 535 that echoes the client's answer,
    as some servers' error replies quote the command they refuse."""
    def script(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 smail.test ESMTP\r\n")
        while line := reader.readline():
            words = line.decode("ascii", "replace").split()
            verb = words[0].upper() if words else ""
            if verb == "EHLO":
                conn.sendall(f"250-smail.test\r\n250 AUTH {mechanism}\r\n".encode())
            elif verb == "AUTH" and len(words) == 3:
                conn.sendall(f"535 5.7.8 Authentication credentials invalid: {words[2]}\r\n".encode())
            elif verb == "AUTH":
                conn.sendall(b"334 \r\n")
                answer = reader.readline().decode("ascii", "replace").strip()
                conn.sendall(f"535 5.7.8 Authentication credentials invalid: {answer}\r\n".encode())
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 no\r\n")
    return script


def _decoded_secrets(text: str, secret: str) -> list[str]:
    """Every base64 run of `text` that decodes to bytes holding `secret`."""
    found = []
    for run in re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", text):
        try:
            data = base64.b64decode(run + "=" * (-len(run) % 4))
        except ValueError:
            continue
        if secret.encode() in data:
            found.append(run)
    return found


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "XOAUTH2"])
def test_a_server_echoing_the_auth_answer_never_carries_the_secret_out(scripted, run_smail, files, tmp_path,
                                                                       mechanism):
    secret = "S3cr3t-\\\"'%&<>-é"
    if mechanism == "XOAUTH2":
        credentials = ["/AUTH_TYPE=XOAUTH2", f"/SMTP_TOKEN_FILE={files('token.txt', secret)}"]
    else:
        credentials = [f"/SMTP_PASSWORD={secret}"]
    server = scripted(_echoing_auth_server(mechanism))
    result_file, error_file = tmp_path / "result.json", tmp_path / "error.txt"
    result = run_smail(*server.options, "/SMTP_USERNAME=u@t.test", *credentials, "/TO=x@t.test", "/BODY=hi",
                       f"/RESULT_FILE={result_file}", f"/ERROR_FILE={error_file}")
    assert result.exit_code == 4, result.output
    assert "535 5.7.8 Authentication credentials invalid" in result.stderr
    outputs = result.output + error_file.read_text(encoding="utf-8") + result_file.read_text(encoding="utf-8")
    assert secret not in outputs
    assert _decoded_secrets(outputs, secret) == []
    assert json.loads(result_file.read_text(encoding="utf-8"))["exit_code"] == 4


def test_a_server_sending_continuation_lines_without_end_is_refused_at_once(scripted, run_smail):
    """A greeting that never ends ("220-" lines, as fast as the network goes) used to be kept
    whole in memory until /TIMEOUT: hundreds of megabytes, gigabytes at the default 60 s."""
    def script(conn: socket.socket) -> None:
        block = (b"220-" + b"x" * 8000 + b"\r\n") * 64
        while True:
            conn.sendall(block)

    server = scripted(script)
    started = time.monotonic()
    result = run_smail(*server.options, "/FROM_ADDR=a@t.test", "/TO=x@t.test", "/BODY=hi", "/TIMEOUT=60",
                       log=False)
    assert result.exit_code == 3, result.output
    assert "Reply too long" in result.stderr
    assert time.monotonic() - started < 30


def test_flushing_the_uncertain_folder_itself_never_sends_its_messages_again(scripted, smtpd, run_smail, tmp_path):
    """/OUTBOX=...\\uncertain (a flush run on the folder a dry run listed) used to send every
    may-have-been-sent message again, without /RESEND_UNCERTAIN."""
    box = tmp_path / "box"
    entry = queue(run_smail, box)

    def silent_after_the_dot(conn: socket.socket) -> None:
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            if line.upper().startswith(b"DATA"):
                conn.sendall(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += conn.recv(65536)
                return
            conn.sendall(b"250 ok\r\n")
    first = run_smail(*scripted(silent_after_the_dot).options, "/FLUSH", f"/OUTBOX={box}")
    assert first.exit_code == ExitCode.SEND
    uncertain = box / layout.UNCERTAIN / entry.name
    assert uncertain.is_dir()

    handler = RecordingHandler()
    server = smtpd(handler)
    for folder in (box / layout.UNCERTAIN, box / "Uncertain"):
        if not folder.exists():
            continue  # a case-sensitive file system
        again = run_smail(*server.options, "/FLUSH", f"/OUTBOX={folder}")
        assert again.exit_code == ExitCode.PARAM, again.output
        assert "/RESEND_UNCERTAIN" in again.stderr and "may have been delivered" in again.stderr
    listed = run_smail(*server.options, "/FLUSH", "/DRY_RUN", f"/OUTBOX={box / layout.UNCERTAIN}")
    assert listed.exit_code == ExitCode.OK and entry.name in listed.stdout  # looking is still allowed
    assert handler.received == [] and uncertain.is_dir()

    resent = run_smail(*server.options, "/FLUSH", "/RESEND_UNCERTAIN", f"/OUTBOX={box}")
    assert resent.exit_code == ExitCode.OK, resent.output
    assert len(handler.received) == 1


# -- Microsoft Graph ---------------------------------------------------------------------------

def test_a_429_asking_to_wait_for_years_is_waited_at_most_the_retry_cap(graph, microsoft, monkeypatch):  # noqa: F811
    """The attempt's own wait was capped, but the session's throttle then held the next request
    for the whole Retry-After: a run that never ended. The cap (300 s) is shortened here."""
    monkeypatch.setattr(retry, "MAX_DELAY", 1.0)
    microsoft.fail(r"/sendMail$", 429, headers={"Retry-After": "999999999"})
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(graph("/RETRY=2")), daemon=True)
    worker.start()
    worker.join(60)
    assert outcome, "the run was still waiting after 60 s"
    [result] = outcome
    assert result.exit_code == ExitCode.OK, result.output
    assert "next attempt in 1 s" in result.log and len(microsoft.sent) == 1


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b9"])
def test_a_retry_after_of_odd_digits_is_no_internal_error(graph, microsoft, value):  # noqa: F811
    """str.isdigit() accepts superscripts, which float() refuses: exit 7 from a header."""
    microsoft.fail(r"/sendMail$", 429, headers={"Retry-After": value})
    result = graph()
    assert result.exit_code == ExitCode.SEND, result.output
    assert "429" in result.stderr


# -- batches -----------------------------------------------------------------------------------

class _WritesTheCSVDuringTheFirstMessage(RecordingHandler):
    """An export still being written: while the first row's message arrives, the ERP rewrites
    the next row's address and appends a row that was never checked."""

    def __init__(self, rows: Path) -> None:
        super().__init__()
        self.rows = rows

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.received:
            text = self.rows.read_text(encoding="utf-8").replace("second@t.test", "someone-else@t.test")
            self.rows.write_text(text + "not an address,Unchecked\r\n", encoding="utf-8")
        return await super().handle_DATA(server, session, envelope)


def test_a_csv_written_to_while_its_rows_are_sent_sends_nothing_unchecked(smtpd, run_smail, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,customer\r\nfirst@t.test,A\r\nsecond@t.test,B\r\n", encoding="utf-8")
    handler = _WritesTheCSVDuringTheFirstMessage(rows)
    server = smtpd(handler)
    results = tmp_path / "results.csv"
    result = run_smail(*server.options, "/FROM_ADDR=a@t.test", "/SUBJECT=Hello {{ customer }}", "/BODY=hi",
                       f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert [r.rcpt_tos for r in handler.received] == [["first@t.test"]], result.output
    assert result.exit_code == ExitCode.PARTIAL, result.output
    assert f"{rows} changed while SMail was sending its rows" in result.output
    recorded = results.read_text(encoding="utf-8-sig")
    assert "\n2,sent," in recorded and "\n3,not-sent," in recorded and "\n4," not in recorded, recorded


@pytest.mark.parametrize("status, outcome", [("Sent", "skipped"), ("SENT", "skipped"), (" Sent ", "skipped"),
                                             ("envoyé", "refused"), ("", "refused")])
def test_a_results_file_whose_status_was_retyped_never_sends_the_row_again(smtpd, run_smail, tmp_path, status,
                                                                            outcome):
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,customer\r\nfirst@t.test,A\r\n", encoding="utf-8")
    handler = RecordingHandler()
    server = smtpd(handler)
    results = tmp_path / "results.csv"
    args = (*server.options, "/FROM_ADDR=a@t.test", "/SUBJECT=Hello {{ customer }}", "/BODY=hi", f"/BATCH={rows}",
            f"/BATCH_RESULT={results}")
    assert run_smail(*args).exit_code == ExitCode.OK
    text = results.read_text(encoding="utf-8-sig")
    results.write_text(text.replace(",sent,", f",{status},"), encoding="utf-8")
    again = run_smail(*args, "/BATCH_RESUME")
    assert len(handler.received) == 1, again.output
    if outcome == "skipped":
        assert again.exit_code == ExitCode.OK and "1 skipped (already sent)" in again.stdout
    else:
        assert again.exit_code == ExitCode.PARAM
        assert f'records row 2 as "{status}"' in again.stderr


@pytest.mark.parametrize("where", ["environment", "configuration file"])
def test_resend_uncertain_kept_in_the_environment_or_the_ini_never_resends_at_every_flush(
        scripted, run_smail, tmp_path, where):
    """A scheduled /FLUSH reading SMAIL_RESEND_UNCERTAIN=YES (or resend_uncertain = yes in its
    INI file) sent the same may-have-been-sent message again at every run."""
    box = tmp_path / "box"
    entry = queue(run_smail, box)

    def silent_after_the_dot(conn: socket.socket) -> None:
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            if line.upper().startswith(b"DATA"):
                conn.sendall(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += conn.recv(65536)
                return
            conn.sendall(b"250 ok\r\n")
    server = scripted(silent_after_the_dot)
    assert run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}").exit_code == ExitCode.SEND
    env = {"LANG": "en_US.UTF-8"}
    extra: list[str] = []
    if where == "environment":
        env["SMAIL_RESEND_UNCERTAIN"] = "YES"
    else:
        ini = tmp_path / "smail.ini"
        ini.write_text("[smail]\nresend_uncertain = yes\n", encoding="utf-8")
        extra.append(f"/CONFIG={ini}")
    for _run in range(2):
        again = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}", *extra, env=env)
        assert again.exit_code == ExitCode.PARAM, again.output
        assert "/RESEND_UNCERTAIN is only taken from the command line" in again.stderr
    assert server.connections == 1  # the one flush that left it uncertain
    assert (box / layout.UNCERTAIN / entry.name).is_dir()
