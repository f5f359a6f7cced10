"""Never twice, never lost: the single SMTP send against servers that misbehave around the
end of the message (SPEC.md, "Never twice"), in-process and as real processes.

Each server here counts the messages it received whole (the final dot arrived) and the
connections it saw, so that every test can say how many times a message went out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, free_port, read_line

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")
MAYBE = "may have been delivered"
ROOT = Path(__file__).resolve().parents[2]


class Stateful:
    """A raw SMTP server with a transaction state (a second MAIL inside an open transaction
    is `503 nested MAIL command`, as Postfix and aiosmtpd answer) and scripted replies.

    `replies[(connection_number, verb)]` replaces the reply to the first such verb on that
    connection, once (verbs: GREETING, EHLO, MAIL, RCPT, DATA, END for the final dot); a reply
    starting with 421
    closes the connection after it is sent, as RFC 5321 section 3.8 says. `after_dot(conn)` may
    take over once a message was received whole (stall, drop, say something odd).
    """

    def __init__(self, replies: dict[tuple[int, str], str] | None = None, *,
                 after_dot: Callable[[socket.socket], bool] | None = None,
                 during_data: Callable[[socket.socket, int], bool] | None = None) -> None:
        self.replies = replies or {}
        self.after_dot = after_dot
        self.during_data = during_data
        self.complete = 0          # messages whose final dot arrived
        self.accepted = 0          # messages answered 250 after the dot
        self.commands: list[tuple[int, str]] = []
        self.connection = 0
        self.dot = threading.Event()
        self.lock = threading.Lock()

    def reply(self, number: int, verb: str, default: str) -> str:
        return self.replies.pop((number, verb), default)

    def __call__(self, conn: socket.socket) -> None:
        with self.lock:
            self.connection += 1
            number = self.connection
        greeting = self.reply(number, "GREETING", "220 stateful.test ESMTP")
        conn.sendall(greeting.encode() + b"\r\n")
        if not greeting.startswith("220"):
            return
        in_transaction = False
        while True:
            line = read_line(conn)
            if not line:
                return
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper().decode(errors="replace")
            self.commands.append((number, line.strip().decode(errors="replace")))
            if verb in ("EHLO", "HELO"):
                answer = self.reply(number, "EHLO", "250-stateful.test\r\n250 8BITMIME")
            elif verb == "MAIL":
                answer = "503 5.5.1 Error: nested MAIL command" if in_transaction \
                    else self.reply(number, "MAIL", "250 2.1.0 Ok")
                in_transaction = in_transaction or answer.startswith("250")
            elif verb == "RCPT":
                answer = self.reply(number, "RCPT", "250 2.1.5 Ok")
            elif verb == "RSET":
                in_transaction, answer = False, "250 2.0.0 Ok"
            elif verb == "DATA":
                answer = self.reply(number, "DATA", "354 End data with <CR><LF>.<CR><LF>")
                if answer.startswith("354"):
                    conn.sendall(answer.encode() + b"\r\n")
                    if not self._receive(conn):
                        return
                    in_transaction = False
                    self.complete += 1
                    self.dot.set()
                    if self.after_dot is not None:
                        if self.after_dot(conn):
                            return
                        continue
                    answer = self.reply(number, "END", "250 2.0.0 Ok: queued as 7A1B2")
                    if answer.startswith("250"):
                        self.accepted += 1
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                answer = "250 Ok"
            conn.sendall(answer.encode() + b"\r\n")
            if answer.startswith("421"):
                return

    def _receive(self, conn: socket.socket) -> bool:
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
            if self.during_data is not None and self.during_data(conn, len(data)):
                return False
        return True


def drop(conn: socket.socket) -> bool:
    conn.shutdown(socket.SHUT_RDWR)
    return True


def process_environ(tmp_path: Path) -> dict[str, str]:
    """The environment of a real SMail process: crash reports (if any) land in tmp_path, not in
    /tmp; the checkout is importable from any folder, installed or not (the Windows CI cells)."""
    environ = dict(os.environ)
    environ.update({"LANG": "en_US.UTF-8", "TMPDIR": str(tmp_path), "TEMP": str(tmp_path), "TMP": str(tmp_path),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    for name in [n for n in environ if n.upper().startswith("SMAIL_")]:
        del environ[name]
    return environ


def smail_process(*args: str | bytes, tmp_path: Path, timeout: float = 20,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """SMail as a real process, in tmp_path."""
    environ = process_environ(tmp_path)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "smail", *args], capture_output=True, env=environ,
                          timeout=timeout, cwd=tmp_path)


def no_crash(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


# -- the end of the message went out: never again ----------------------------------------------

def test_answer_after_the_timeout_is_delivered_once_exit_5_and_said_so(scripted, run_smail, tmp_path):
    def slow(conn: socket.socket) -> bool:
        time.sleep(20)  # the 250 comes, but long after /TIMEOUT=1
        conn.sendall(b"250 2.0.0 Ok: queued late\r\n")
        return False
    server = Stateful(after_dot=slow)
    listener = scripted(server)
    result_file = tmp_path / "result.json"
    started = time.monotonic()
    result = run_smail(*listener.options, *BASIC, "/TIMEOUT=1", "/RETRY=3", "/RETRY_DELAY=0.01",
                       f"/RESULT_FILE={result_file}")
    assert time.monotonic() - started < 15  # gave up after /TIMEOUT, never waited for the late 250
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert MAYBE in result.stderr and "Check before sending it again" in result.stderr
    assert MAYBE in result.log
    assert server.complete == 1 and listener.connections == 1
    [receipt] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "may-have-been-sent"


def test_connection_dropped_right_after_the_final_dot_is_never_resent_nor_queued(scripted, run_smail, tmp_path):
    server = Stateful(after_dot=drop)
    listener = scripted(server)
    outbox = tmp_path / "outbox"
    result = run_smail(*listener.options, *BASIC, "/RETRY=3", "/RETRY_DELAY=0.01", f"/OUTBOX={outbox}")
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert MAYBE in result.stderr
    assert server.complete == 1 and listener.connections == 1
    assert not outbox.exists() or not [p for p in outbox.iterdir() if not p.name.startswith(".")]


def test_half_a_reply_after_the_final_dot_is_may_have_been_sent(scripted, run_smail):
    def half(conn: socket.socket) -> bool:
        conn.sendall(b"250-2.0.0 Ok\r\n")  # a multi-line reply that never ends
        return drop(conn)
    server = Stateful(after_dot=half)
    listener = scripted(server)
    result = run_smail(*listener.options, *BASIC, "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND and MAYBE in result.stderr
    assert server.complete == 1 and listener.connections == 1


def test_unreadable_reply_after_the_final_dot_is_may_have_been_sent_not_refused(scripted, run_smail, tmp_path):
    """BUG: the server got the whole message and answered a line that is no SMTP reply:
    SMail says "The server refused DATA: -1 ..." and the result file says "refused", so the
    user (or a script reading the result file) sends it again. Nobody knows whether it was
    accepted: it may have been delivered."""
    def garbage(conn: socket.socket) -> bool:
        conn.sendall(b"hello from a confused relay\r\n")
        return drop(conn)
    server = Stateful(after_dot=garbage)
    listener = scripted(server)
    result_file = tmp_path / "result.json"
    result = run_smail(*listener.options, *BASIC, "/RETRY=3", "/RETRY_DELAY=0.01",
                       f"/RESULT_FILE={result_file}")
    assert server.complete == 1 and listener.connections == 1
    assert result.exit_code == ExitCode.SEND
    assert MAYBE in result.stderr, result.stderr
    assert "refused" not in result.stderr
    [receipt] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "may-have-been-sent"


# -- nothing was accepted: retried, and delivered once ----------------------------------------

def test_connection_dropped_mid_data_is_resent_and_delivered_once(scripted, run_smail, files):
    first = {"dropped": False}

    def drop_once(conn: socket.socket, received: int) -> bool:
        if not first["dropped"] and received > 100_000:
            first["dropped"] = True
            conn.shutdown(socket.SHUT_RDWR)
            return True
        return False
    server = Stateful(during_data=drop_once)
    listener = scripted(server)
    attachment = files("big.bin", os.urandom(2_000_000))
    result = run_smail(*listener.options, *BASIC, f"/ATTACH={attachment}", "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert server.complete == 1 and server.accepted == 1
    assert listener.connections == 2
    assert "Attempt 1 failed" in result.log


def test_421_greeting_then_accepted_on_the_next_attempt(scripted, run_smail):
    server = Stateful({(1, "GREETING"): "421 4.3.2 Too many connections"})
    listener = scripted(server)
    once = run_smail(*listener.options, *BASIC)
    assert once.exit_code == ExitCode.CONNECT and "421 4.3.2" in once.stderr
    retried = run_smail(*listener.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert retried.exit_code == ExitCode.OK, retried.stderr
    assert server.accepted == 1


def test_451_to_mail_then_accepted_on_the_next_attempt(scripted, run_smail):
    server = Stateful({(1, "MAIL"): "451 4.3.0 Temporary lookup failure"})
    listener = scripted(server)
    result = run_smail(*listener.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert server.accepted == 1 and server.complete == 1
    assert "451 4.3.0" in result.log


def test_451_to_mail_with_one_attempt_exits_5(scripted, run_smail):
    server = Stateful({(1, "MAIL"): "451 4.3.0 Temporary lookup failure"})
    listener = scripted(server)
    result = run_smail(*listener.options, *BASIC)
    assert result.exit_code == ExitCode.SEND
    assert "451 4.3.0 Temporary lookup failure" in result.stderr
    assert server.complete == 0


def test_one_recipient_of_three_refused_sends_nothing_and_names_it(smtpd, run_smail):
    handler = RecordingHandler(rcpt_replies=["250 OK", "550 5.1.1 <gone@test.test>: Recipient address rejected",
                                             "250 OK"])
    server = smtpd(handler)
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/TO=a@test.test,gone@test.test",
                       "/BCC=c@test.test", "/BODY=x", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND
    assert "refused 1 recipient" in result.stderr and "gone@test.test: 550 5.1.1" in result.stderr
    assert "a@test.test:" not in result.stderr and "c@test.test:" not in result.stderr
    assert handler.received == []
    assert "C: DATA" not in result.log
    assert result.log.count("Connecting to") == 1  # a permanent refusal is not retried


def test_4xx_to_every_rcpt_is_retried_then_delivered_once(smtpd, run_smail):
    handler = RecordingHandler(rcpt_replies=["450 4.2.0 Greylisted, come back later"])
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(handler.received) == 1


@pytest.mark.parametrize("verb", ["END", "DATA"])
def test_421_closing_the_channel_is_retried_on_a_new_connection(scripted, run_smail, verb):
    """BUG: a 421 reply means the server is closing the channel (RFC 5321 section 3.8). SMail
    keeps the dead connection for the next attempt, which fails at once ("closed the
    connection unexpectedly"): /RETRY=2 ends in exit 6 and the message is never retried on
    a fresh connection, which the server would have accepted."""
    server = Stateful({(1, verb): "421 4.3.2 Service shutting down, closing transmission channel"})
    listener = scripted(server)
    result = run_smail(*listener.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert server.accepted == 1 and listener.connections == 2


def test_4xx_to_the_data_command_resets_the_transaction_before_retrying(scripted, run_smail):
    """BUG: MAIL and RCPT were accepted, DATA got "451": the transaction is still open. The
    next attempt sends MAIL FROM on the same connection without RSET; the server answers
    "503 nested MAIL command", a permanent error: exit 5 instead of a delivery."""
    server = Stateful({(1, "DATA"): "451 4.3.0 Queue file write error, try again"})
    listener = scripted(server)
    result = run_smail(*listener.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert server.accepted == 1
    assert "nested MAIL" not in result.stderr


# -- never hang --------------------------------------------------------------------------------

def _trickle_lines(conn: socket.socket) -> None:
    for _ in range(40):  # 12 s of "220-" lines
        conn.sendall(b"220-still warming up\r\n")
        time.sleep(0.3)


def _trickle_bytes(conn: socket.socket) -> None:
    for _ in range(60):  # 12 s of one line that never ends, one byte at a time
        conn.sendall(b"2")
        time.sleep(0.2)


@pytest.mark.parametrize("trickle", [_trickle_lines, _trickle_bytes], ids=["lines", "bytes"])
def test_a_server_trickling_its_greeting_cannot_hold_smail_past_the_timeout(scripted, tmp_path, trickle):
    """BUG: /TIMEOUT=1 applied to each recv() only: a server sending one continuation line of
    its greeting every 0.3 s, or one byte of a line every 0.2 s, kept SMail waiting for as
    long as it liked (a scheduled task that never ends). A reply that has not ended within
    the timeout must be given up. (The byte-by-byte case: up to 8192 bytes, about 27 min.)"""
    listener = scripted(trickle)
    started = time.monotonic()
    try:
        proc = smail_process("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={listener.port}", *BASIC, "/TIMEOUT=1",
                             tmp_path=tmp_path, timeout=30)
    except subprocess.TimeoutExpired:  # the trickle would last for minutes
        pytest.fail("SMail with /TIMEOUT=1 was still waiting for the greeting after 30 s")
    assert time.monotonic() - started < 30
    assert proc.returncode == ExitCode.CONNECT, proc.stderr


# -- real processes: signals, kill -9 ------------------------------------------------------------

def _stall(conn: socket.socket) -> bool:
    conn.settimeout(10)
    try:
        conn.recv(10)  # until the client goes away
    except OSError:
        pass
    return True


def test_real_process_answer_after_timeout_delivered_once(scripted, tmp_path):
    server = Stateful(after_dot=_stall)
    listener = scripted(server)
    proc = smail_process(b"/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={listener.port}".encode(), *BASIC,
                         b"/TIMEOUT=1", b"/RETRY=3", b"/RETRY_DELAY=0.01", b"/LOG=run.log", tmp_path=tmp_path)
    assert proc.returncode == ExitCode.SEND
    assert MAYBE in proc.stderr.decode() and MAYBE in (tmp_path / "run.log").read_text(encoding="utf-8")
    assert proc.stdout == b""
    assert server.complete == 1 and listener.connections == 1


def test_kill_9_after_the_final_dot_leaves_one_message_and_no_outbox_entry(scripted, tmp_path):
    server = Stateful(after_dot=_stall)
    listener = scripted(server)
    outbox = tmp_path / "outbox"
    proc = subprocess.Popen([sys.executable, "-m", "smail", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={listener.port}",
                             *BASIC, "/TIMEOUT=30", "/RETRY=3", "/RETRY_DELAY=0.01", f"/OUTBOX={outbox}",
                             "/RESULT_FILE=result.json"], cwd=tmp_path, env=process_environ(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert server.dot.wait(120), "the message never reached the server"
        time.sleep(0.2)
        proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.2)
    assert server.complete == 1 and listener.connections == 1
    assert not outbox.exists() or not [p for p in outbox.iterdir() if not p.name.startswith(".")]
    result_file = tmp_path / "result.json"
    if result_file.exists():  # if anything was written, it must not claim "not sent"
        statuses = [m["status"] for m in json.loads(result_file.read_text(encoding="utf-8"))["messages"]]
        assert statuses in ([], ["may-have-been-sent"], ["sent"])


@pytest.mark.skipif(sys.platform == "win32", reason="Popen.send_signal(SIGINT) is refused on Windows, and a "
                    "console Ctrl+C (CTRL_C_EVENT) cannot be sent to one child process alone")
def test_ctrl_c_after_the_final_dot_says_it_may_have_been_delivered(scripted, tmp_path):
    """BUG: Ctrl+C (SIGINT) while SMail waits for the server's answer to the final dot ends
    with exit 1 "Interrupted." and an empty result file: nothing tells the user that the
    message may have been delivered, so they send it again."""
    server = Stateful(after_dot=_stall)
    listener = scripted(server)
    proc = subprocess.Popen([sys.executable, "-m", "smail", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={listener.port}",
                             *BASIC, "/TIMEOUT=30", "/ERROR_FILE=error.txt", "/RESULT_FILE=result.json"],
                            cwd=tmp_path, env=process_environ(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert server.dot.wait(120), "the message never reached the server"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    no_crash(err.decode())
    assert server.complete == 1
    assert MAYBE in err.decode(), err.decode()
    assert MAYBE in (tmp_path / "error.txt").read_text(encoding="utf-8")
    assert proc.returncode == ExitCode.SEND
    [receipt] = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "may-have-been-sent"


# -- the result file tells the truth about this run ---------------------------------------------

def _previous_success(path: Path) -> None:
    path.write_text(json.dumps({"exit_code": 0, "exit_name": "EXIT_OK", "message": "an earlier run",
                                "messages": [{"status": "sent"}]}), encoding="utf-8")


@pytest.mark.parametrize("case", ["retries_exhausted", "recipient_refused", "unknown_host"])
def test_result_file_after_a_failure_is_written_and_the_exit_code_kept(smtpd, tmp_path, case):
    """BUG: Receipt.as_json() calls dataclasses.asdict(), which deep-copies the `failure`
    exception; RetryExceededError, RecipientsRefusedError and NameResolutionError cannot be
    copied (keyword-only constructor arguments). With /RESULT_FILE the run ends in a Python
    traceback, exit 1 instead of 6, 5 or 3, and the result file still holds the previous run's
    "sent": a script reading it believes this message went out."""
    handler = RecordingHandler(rcpt_replies=["250 OK", "550 5.1.1 <gone@test.test>: no such user"])
    server = smtpd(handler)
    args, expected = {
        "retries_exhausted": (["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", "/RETRY=2",
                               "/RETRY_DELAY=0.01"], ExitCode.RETRY_EXCEEDED),
        "recipient_refused": ([*server.options, "/CC=gone@test.test"], ExitCode.SEND),
        "unknown_host": (["/SMTP_SERVER=no-such-host.invalid", "/TIMEOUT=5"], ExitCode.CONNECT),
    }[case]
    result_file = tmp_path / "result.json"
    _previous_success(result_file)
    proc = smail_process(*args, *BASIC, f"/RESULT_FILE={result_file}", tmp_path=tmp_path)
    no_crash(proc.stderr.decode())
    assert proc.returncode == expected, proc.stderr
    document = json.loads(result_file.read_text(encoding="utf-8"))
    assert document["exit_code"] == expected
    [receipt] = document["messages"]
    assert receipt["status"] in ("failed", "refused")
    assert receipt["exit_code"] == expected
    if case == "recipient_refused":
        assert receipt["refused"] == [{"address": "gone@test.test",
                                       "reply": "550 5.1.1 <gone@test.test>: no such user"}]
    assert handler.received == []


def test_result_file_after_a_refused_recipient_in_process(smtpd, run_smail, tmp_path):
    handler = RecordingHandler(rcpt_replies=["550 5.1.1 <client@test.test>: no such user"])
    server = smtpd(handler)
    result_file = tmp_path / "result.json"
    _previous_success(result_file)
    result = run_smail(*server.options, *BASIC, f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.SEND
    assert json.loads(result_file.read_text(encoding="utf-8"))["messages"][0]["status"] == "refused"
