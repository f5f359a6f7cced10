"""Attacks on /BATCH: CSV files as Excel writes them, /BATCH_RESULT files edited by hand, output
options naming a file a row reads, templates, refusals, 5xx from Graph, secrets. Each failing
test's docstring says what is expected and what happens today."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler

COMMON = ("/FROM_ADDR=factures@demo.test", "/SUBJECT=Facture {{ number }}", "/BODY=Bonjour {{ customer }}")
CANARY = "Batch-Canary-Pw-5d1c9e-é"
GRAPH_SECRET = "Graph~Batch.Canary-0123456789"
SENDER = "factures@domaine.test"
GRAPH_ENV = {"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"}


def three_rows(folder: Path) -> Path:
    path = folder / "rows.csv"
    lines = ["TO,customer,number"] + [f"c{n}@test.test,C{n},{n}" for n in (1, 2, 3)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # as is: write_text makes \r\r\n on Windows
    return path


def statuses(path: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for fields in csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))):
        if fields and fields[0].isdigit():
            found.setdefault(int(fields[0]), []).append(fields[1])
    return found


# -- /BATCH_RESULT edited by hand ------------------------------------------------------------------

@pytest.mark.parametrize("number", ["²", "①", "٣"])
def test_a_results_line_whose_row_is_an_odd_digit_is_no_crash(smtpd, run_smail, tmp_path, number):
    """BUG (for "²" and "①"). A hand-edited /BATCH_RESULT whose first cell is a character that
    str.isdigit() accepts but int() refuses.
    Expected: the line is ignored (or exit 2 naming the file); never exit 7.
    Actual: read_results() calls int("²") -> ValueError -> exit 7, "SMail stopped on an internal
    error (a bug)"."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    results.write_text("row,status,exit_code,message_id,reply_or_error,key,time\r\n"
                       f"{number},sent,0,,,,\r\n", encoding="utf-8", newline="")
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert result.exit_code != ExitCode.INTERNAL, result.log[-2000:]
    assert "Traceback" not in result.output
    assert result.exit_code == ExitCode.PARAM, result.stderr  # a line SMail did not write: refused
    assert str(results) in result.stderr and handler.received == []


def test_resume_from_a_results_file_saved_by_french_excel_sends_nothing_twice(smtpd, run_smail, tmp_path):
    """BUG. The user opens results.csv in Excel (French: `;` separator) and saves it, then runs
    /BATCH_RESUME. The file still says every row was sent.
    Expected: no row sent again (skipped), or a refusal (exit 2) saying the file cannot be read
    as a /BATCH_RESULT file.
    Actual: read_results() only splits on `,`, every line has one field and is silently ignored,
    and all 3 rows are sent a second time (6 messages for 3 rows), exit 0."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    first = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert first.exit_code == ExitCode.OK, first.stderr
    assert len(handler.received) == 3
    lines = list(csv.reader(io.StringIO(results.read_text(encoding="utf-8-sig"))))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(lines)
    results.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))
    again = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert len(handler.received) == 3, f"rows sent twice: exit {again.exit_code}, {again.stdout}"
    assert again.exit_code == ExitCode.OK, again.stderr  # read back whatever the separator


def test_a_truncated_last_line_of_a_sending_row_is_never_resent_blindly(smtpd, run_smail, tmp_path):
    """A results file whose last line was cut in the key (a crash, a copy): the row was being
    sent. It must not go out again silently: either maybe-sent or a refusal naming the row."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    results.write_text("row,status,exit_code,message_id,reply_or_error,key,time\r\n"
                       "2,sending,,<x@demo.test>,,0123", encoding="utf-8", newline="")
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert "c1@test.test" not in [r for m in handler.received for r in m.rcpt_tos]
    assert result.exit_code == ExitCode.PARTIAL, result.stderr  # row 2 reported may-have-been-sent


# -- output options naming a file a row reads --------------------------------------------------------

@pytest.mark.parametrize("option,victim", [("/BATCH_RESULT", "a.pdf"), ("/BATCH_RESULT", "body.txt"),
                                           ("/RESULT_FILE", "a.pdf"), ("/LOG", "a.pdf")])
def test_an_output_naming_a_file_a_row_reads_is_refused(smtpd, run_smail, tmp_path, option, victim):
    """BUG. The command line's outputs are checked against the command line's inputs
    (/BATCH_RESULT=the CSV is refused), but not against the files the rows name (ATTACH,
    BODY_FILE columns).
    Expected: exit 2 before anything is written ("names a file SMail reads"), the file untouched,
    nothing sent.
    Actual: the user's PDF / body file is truncated and overwritten with the results CSV, the
    JSON receipt or the log (exit 0, or 8 for /LOG) - SMail touched a file that is not its own."""
    handler = RecordingHandler()
    server = smtpd(handler)
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.4 precious invoice\n%%EOF\n")
    (tmp_path / "body.txt").write_text("Hello {{ customer }}\n", encoding="utf-8")
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,customer,number,ATTACH,BODY_FILE\r\nc1@test.test,C1,1,a.pdf,body.txt\r\n", encoding="utf-8",
                    newline="")
    before = (tmp_path / victim).read_bytes()
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"{option}={tmp_path / victim}")
    assert (tmp_path / victim).read_bytes() == before, f"{victim} overwritten (exit {result.exit_code})"
    assert result.exit_code == ExitCode.PARAM
    assert handler.received == []


# -- CSV files as Excel and Notepad write them -------------------------------------------------------

def test_excel_sep_line_names_the_separator(smtpd, run_smail, tmp_path):
    """BUG. Excel writes (and reads) a first line `sep=;` naming the separator.
    Expected: the line is understood (or skipped) and the header is the next line: 1 sent.
    Actual: `sep=;` is taken as the header (2 columns), exit 2 "Row 2 ... has 3 cells, but its
    header names 2 columns"."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = tmp_path / "rows.csv"
    rows.write_text("sep=;\r\nTO;customer;number\r\nc1@test.test;C1;1\r\n", encoding="utf-8", newline="")
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [m.rcpt_tos for m in handler.received] == [["c1@test.test"]]


def test_utf16_cr_only_quoted_newline_and_trailing_empty_columns(smtpd, run_smail, tmp_path):
    """Excel "Unicode text" with `;`, old-Mac CR line ends, a cell holding a line break and two
    trailing empty columns: each row sent once with its values."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = tmp_path / "rows.csv"
    text = 'TO;customer;number;;\r"c1@test.test";"Multi\nline";1;;\rc2@test.test;C2;2;;\r'
    rows.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert sorted(m.rcpt_tos[0] for m in handler.received) == ["c1@test.test", "c2@test.test"]
    assert any(b"Multi" in m.data for m in handler.received)


HARMLESS = ("{{ self }}", "{% raw %}{{ customer }}{% endraw %}")


@pytest.mark.parametrize("template", [
    *HARMLESS, "{{ self.__class__ }}", "{{ cycler.__init__.__globals__ }}", "{{ joiner.__call__ }}",
    "{{ namespace.__init__ }}", "{{ lipsum.__globals__ }}", "{{ customer.__class__.__mro__ }}",
    "{{ customer|attr('__class__') }}",
])
def test_template_tricks_never_crash_and_never_leak(smtpd, run_smail, tmp_path, template):
    """A body template reaching for Jinja2 internals: exit 2 (the sandbox refuses it), never 7;
    the harmless ones (text, the template's own name) are sent; nothing from Python's internals
    in what goes out."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=s {{ number }}",
                       f"/BODY={template}", f"/BATCH={rows}")
    assert result.exit_code == (ExitCode.OK if template in HARMLESS else ExitCode.PARAM), result.output[-1500:]
    assert len(handler.received) == (3 if template in HARMLESS else 0)
    for message in handler.received:
        assert b"__builtins__" not in message.data and b"<function" not in message.data


# -- refusals and results that tell the truth --------------------------------------------------------

def test_every_row_refused_exits_5_and_records_each_row_without_the_password(smtpd, run_smail, tmp_path):
    handler = RecordingHandler(data_reply="554 5.7.1 Rejected as spam", passwords={"u": CANARY})
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results, receipt = tmp_path / "results.csv", tmp_path / "result.json"
    result = run_smail(*server.options, *COMMON, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={CANARY}",
                       f"/BATCH={rows}", f"/BATCH_RESULT={results}", f"/RESULT_FILE={receipt}")
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert handler.logins == ["PLAIN u"] or len(handler.logins) == 1
    assert {row: lines[-1] for row, lines in statuses(results).items()} == {2: "refused", 3: "refused", 4: "refused"}
    document = json.loads(receipt.read_text(encoding="utf-8"))
    assert document["exit_code"] == ExitCode.SEND
    for text in (results.read_text(encoding="utf-8-sig"), receipt.read_text(encoding="utf-8"), result.output):
        assert CANARY not in text


def test_one_recipient_of_three_busy_on_every_row_goes_to_the_outbox_and_never_half_sent(
        smtpd, run_smail, tmp_path):
    """450 for the 2nd of 3 recipients on every attempt of row 2: nothing of that row is sent
    (the transaction is reset), it waits in the outbox, the other rows go; exit 11."""
    handler = RecordingHandler(rcpt_replies=["250 OK", "450 4.2.1 busy", "250 OK"] * 2)
    server = smtpd(handler)
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,customer,number\r\n" + "".join(
        f'"a{n}@t.test,b{n}@t.test,c{n}@t.test",C{n},{n}\r\n' for n in range(3)), encoding="utf-8", newline="")
    results = tmp_path / "results.csv"
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/RETRY=2",
                       "/RETRY_DELAY=0.1", f"/OUTBOX={tmp_path / 'box'}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert sorted(m.rcpt_tos[0] for m in handler.received) == ["a1@t.test", "a2@t.test"]
    assert {row: lines[-1] for row, lines in statuses(results).items()} == {2: "queued", 3: "sent", 4: "sent"}


# -- Graph -----------------------------------------------------------------------------------------

@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=GRAPH_SECRET, mailboxes={SENDER})


def test_graph_504_on_send_is_maybe_sent_and_never_resent(microsoft, tls_ca, run_smail, tmp_path):
    """A 504 to sendMail may hide a delivered message: that row is maybe-sent (never retried,
    never resumed), the others go once; exit 11; no secret in the results."""
    microsoft.fail(r"/sendMail$", 504, times=1)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    options = ["/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-id-1",
               f"/O365_SECRET={GRAPH_SECRET}", f"/GRAPH_SENDER={SENDER}", f"/O365_AUTHORITY_HOST={microsoft.authority}",
               f"/GRAPH_ENDPOINT={microsoft.graph}", f"/CA_FILE={tls_ca.pem}"]
    result = run_smail(*options, "/SUBJECT=F {{ number }}", "/BODY=x {{ customer }}", f"/BATCH={rows}",
                       f"/BATCH_RESULT={results}", "/RETRY=3", "/RETRY_DELAY=0.1", env=GRAPH_ENV)
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    last = {row: lines[-1] for row, lines in statuses(results).items()}
    assert sorted(last.values()) == ["maybe-sent", "sent", "sent"] or Counter(last.values())["sent"] == 2
    assert len(microsoft.sent) == 2
    again = run_smail(*options, "/SUBJECT=F {{ number }}", "/BODY=x {{ customer }}", f"/BATCH={rows}",
                      f"/BATCH_RESULT={results}", "/BATCH_RESUME", env=GRAPH_ENV)
    assert len(microsoft.sent) == 2, again.stdout
    assert GRAPH_SECRET not in results.read_text(encoding="utf-8-sig") + result.output + again.output


# -- 1.2: a batch run twice never sends twice ------------------------------------------------------

def _many_rows(folder: Path, count: int) -> Path:
    path = folder / "rows.csv"
    lines = ["TO,customer,number"] + [f"c{n}@test.test,C{n},{n}" for n in range(1, count + 1)]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def test_a_200_row_batch_run_again_without_resume_sends_nothing_and_keeps_the_results(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = _many_rows(tmp_path, 200)
    results = tmp_path / "results.csv"
    args = (*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    first = run_smail(*args)
    assert first.exit_code == ExitCode.OK, first.stderr
    assert len(handler.received) == 200
    before = results.read_bytes()
    again = run_smail(*args)  # the same line of the .bat, /BATCH_RESUME forgotten
    assert again.exit_code == ExitCode.PARAM, again.stderr
    assert len(handler.received) == 200  # nothing sent twice
    assert results.read_bytes() == before  # byte for byte: the record of what was sent
    assert str(results) in again.stderr and "/BATCH_RESUME" in again.stderr
    assert again.stderr.count("\n") == 1
    dry = run_smail(*args, "/DRY_RUN")  # a dry run does not wipe it either
    assert dry.exit_code == ExitCode.PARAM and results.read_bytes() == before


@pytest.mark.parametrize("status", ["sent", "sending", "may-have-been-sent"])
def test_a_results_file_recording_any_delivery_is_never_truncated(smtpd, run_smail, tmp_path, status):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    results.write_text("row,status,exit_code,message_id,reply_or_error,key,time\r\n"
                       "2,refused,5,,554 no,,\r\n"
                       f"3,{status},0,<m@demo.test>,,,\r\n", encoding="utf-8")
    before = results.read_bytes()
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert handler.received == [] and results.read_bytes() == before


def test_a_results_file_recording_no_delivery_may_be_started_again(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    results.write_text("row,status,exit_code,message_id,reply_or_error,key,time\r\n"
                       "2,refused,5,,554 no,,\r\n3,not-sent,3,,,,\r\n", encoding="utf-8")
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(handler.received) == 3


# -- 1.2: /RESEND_UNCERTAIN, the administrator's decision --------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


class _SwallowingServer:
    """Reads the first message up to its final dot, then never answers and never delivers it:
    the row is "sending" in the results file when SMail is killed."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.dot = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from tests.smtpd import read_line, read_message

        try:
            conn, _addr = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"220 swallow.test ESMTP\r\n")
            while line := read_line(conn):
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    read_message(conn)
                    self.dot.set()
                    conn.recv(1)  # silent until the client dies
                    return
                conn.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.listener.close()


def _wait(condition, limit: float, what: str) -> None:
    import time

    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {limit:.0f} s: {what}"
        time.sleep(0.02)


def test_resend_uncertain_sends_a_row_killed_after_its_final_dot_once_and_says_so(smtpd, run_smail, tmp_path):
    import os
    import subprocess
    import sys

    rows = three_rows(tmp_path)
    results = tmp_path / "results.csv"
    swallowing = _SwallowingServer()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMAIL_")}
    env.update({"LANG": "C", "PYTHONPATH": str(ROOT)})
    first = subprocess.Popen([sys.executable, "-m", "smail", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={swallowing.port}",
                              *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/TIMEOUT=600"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(swallowing.dot.is_set, 120, "the first row's final dot")
        _wait(lambda: "\n2,sending," in results.read_text(encoding="utf-8-sig"), 60, "the sending line")
    finally:
        first.kill()  # SIGKILL; TerminateProcess on Windows
        first.communicate(timeout=120)
        swallowing.close()
    assert statuses(results)[2][-1] == "sending"
    handler = RecordingHandler()
    server = smtpd(handler)
    args = (*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    # Without the decision: the row is reported, never sent.
    cautious = run_smail(*args)
    assert cautious.exit_code == ExitCode.PARTIAL, cautious.stderr
    assert sorted(m.rcpt_tos[0] for m in handler.received) == ["c2@test.test", "c3@test.test"]
    assert "/RESEND_UNCERTAIN" in cautious.stderr
    # The administrator checked that c1 did not get it: sent once, recorded as a resend.
    receipt = tmp_path / "receipt.json"
    decided = run_smail(*args, "/RESEND_UNCERTAIN", f"/RESULT_FILE={receipt}")
    assert decided.exit_code == ExitCode.OK, decided.stderr
    assert Counter(m.rcpt_tos[0] for m in handler.received) == Counter(
        {"c1@test.test": 1, "c2@test.test": 1, "c3@test.test": 1})
    assert statuses(results)[2][-1] == "resent"
    [row2] = [m for m in json.loads(receipt.read_text(encoding="utf-8"))["messages"] if m["source"]["row"] == 2]
    assert row2["status"] == "sent" and row2["source"]["resend"] is True
    assert "Row 2" in decided.log and "resen" in decided.log.lower()
    assert "1 sent again (/RESEND_UNCERTAIN)" in decided.stdout
    # And it is done: a later resume, even with the option, sends nothing more.
    later = run_smail(*args, "/RESEND_UNCERTAIN")
    assert later.exit_code == ExitCode.OK, later.stderr
    assert len(handler.received) == 3


def test_resend_uncertain_is_never_implied(run_smail, tmp_path):
    rows = three_rows(tmp_path)
    result = run_smail("/SMTP_SERVER=127.0.0.1", *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={tmp_path / 'r.csv'}",
                       "/RESEND_UNCERTAIN")
    assert result.exit_code == ExitCode.PARAM and "/RESEND_UNCERTAIN" in result.stderr


# -- 1.2: every template failure is exit 2 before the first message leaves --------------------------

TEMPLATE_FAILURES = [
    "{{ customer|truncate('x') }}",                     # a filter given a wrong argument
    "{{ customer.split(1, 2, 3) }}",                    # a method called wrongly
    "{{ ('1e400'|float)|int }}",                        # a number too large for its conversion
    "{{ '%d'|format('1e400'|float) }}",
    "{{ range() }}",                                    # a helper called with no argument
    "{{ customer.encode('no-such-codec') }}",
    "{{ customer|wordwrap(0) }}",
    "{{ customer|indent(width='x') }}",
    "{{ customer|format(1, 2, 3) }}",
    "{{ customer|int(base=99) }}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",  # recursion
    "{{ customer[10**30] }}",
    "{{ (10).to_bytes(-1, 'big') }}",
    "{{ customer|replace() }}",
    "{{ dict(1) }}",
    "{{ cycler() .next() }}",
    "{{ customer|batch(0)|list }}",
    "{{ customer|slice(0)|list }}",
    "{{ customer|round(1, 'nope') }}",
    "{{ [1, 'a']|sort }}",
    "{{ customer|attr() }}",
    "{{ customer|center('wide') }}",
    "{{ {}|dictsort(by='x') }}",
    "{{ customer|unknown_filter }}",
    "{% if %}",                                         # syntax
    "{{ customer|join(1) }}",
    "{{ 1 // 0 }}",
    "{{ customer|list|max(attribute=1) }}",
]


@pytest.mark.parametrize("template", TEMPLATE_FAILURES)
def test_every_template_failure_is_exit_2_naming_row_template_and_cause(smtpd, run_smail, tmp_path, template):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=s {{ number }}",
                       f"/BODY=Hello {template}", f"/BATCH={rows}")
    if result.exit_code == ExitCode.OK:  # harmless in this Jinja2 (not a failure): nothing to refuse
        assert len(handler.received) == 3
        return
    assert result.exit_code == ExitCode.PARAM, result.output[-1500:]
    assert handler.received == []
    line = result.stderr
    assert line.count("\n") == 1 and "Traceback" not in result.output
    assert "Row 2" in line and "/BODY" in line
    reason = line.split("/BODY", 1)[1]
    assert len(reason.strip(" :.\n")) > 10, line  # a cause, not an empty reason


@pytest.mark.parametrize("template, column", [
    ("{{ 'x' * 4000000000 }}", "/BODY"),                                    # gigabytes in one go
    ("{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}", "/BODY"),  # gigabytes bit by bit
    ("{{ 'x'|center(3000000000) }}", "/BODY"),
    ("{{ 'x'.ljust(3000000000) }}", "/BODY"),
    ("{{ '%0999999999d'|format(1) }}", "/BODY"),
    ("{{ '{:>999999999}'.format(1) }}", "/BODY"),
    ("{{ 99 ** 999999999 }}", "/BODY"),                                       # minutes of CPU
    ("{% set ns = namespace(n=99) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n }}", "/BODY"),
    ("{{ lipsum(1000000000) }}", "/BODY"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "/BODY"),
    ("{{ [1] * 3000000000 }}", "/BODY"),
    ("{{ 'x' * 100000 * 100000 }}", "/SUBJECT"),
])
def test_a_template_rendering_gigabytes_or_for_minutes_is_exit_2(smtpd, run_smail, tmp_path, template, column):
    import resource
    import time

    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    body, subject = (template, "s") if column == "/BODY" else ("x", template)
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", f"/SUBJECT={subject}", f"/BODY={body}",
                       f"/BATCH={rows}")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.exit_code == ExitCode.PARAM, result.output[-1500:]
    assert handler.received == [] and "Row 2" in result.stderr and column in result.stderr
    assert time.monotonic() - started < 60
    assert grown_mb < 300, grown_mb  # memory flat: no gigabytes were ever built


def test_a_template_that_runs_out_of_memory_says_why(smtpd, run_smail, tmp_path, monkeypatch):
    from jinja2 import Template

    def out_of_memory(self, *args, **kwargs):
        raise MemoryError()
    monkeypatch.setattr(Template, "generate", out_of_memory)
    monkeypatch.setattr(Template, "render", out_of_memory)
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM, result.output[-1500:]
    assert "memory" in result.stderr and handler.received == []


# -- 1.2: the results file's last line, and the record that guards a resend -----------------------------

def test_a_cut_last_line_is_repaired_before_anything_is_appended(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = _many_rows(tmp_path, 4)
    results = tmp_path / "results.csv"
    first = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert first.exit_code == ExitCode.OK and len(handler.received) == 4
    # Rows 4 and 5 never went: the file is cut in the middle of row 3's final line.
    text = results.read_text(encoding="utf-8-sig")
    kept = [line for line in text.splitlines() if not line.startswith(("4,", "5,"))]
    cut = "\r\n".join(kept)[:-12]
    results.write_bytes(b"\xef\xbb\xbf" + cut.encode("utf-8"))
    handler.received.clear()
    again = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert again.exit_code == ExitCode.OK, again.stderr  # the cut line is repaired, rows 4 and 5 sent
    sent_again = sorted(m.rcpt_tos[0] for m in handler.received)
    assert "c1@test.test" not in sent_again  # row 2 was recorded whole: never again
    # Repaired: every line SMail appended reads back as its own line.
    last = statuses(results)
    assert last[4][-1] == "sent" and last[5][-1] == "sent"
    third = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert len(handler.received) == len(sent_again), third.stdout  # nothing sent on a third run


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc to name fsync's file")
def test_the_sending_line_is_on_disk_before_the_end_of_the_message_goes_out(scripted, run_smail, tmp_path, monkeypatch):
    import os
    import socket

    from tests.smtpd import read_line, read_message

    results = tmp_path / "results.csv"
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        try:
            if os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == os.path.realpath(results):
                synced.append(results.read_text(encoding="utf-8-sig"))
        except OSError:
            pass
    monkeypatch.setattr(os, "fsync", fsync)
    on_disk_at_dot: list[bool] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(b"220 ok\r\n")
        while line := read_line(conn):
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = read_message(conn)
                if data is None:
                    return
                on_disk_at_dot.append(any(",sending," in text for text in synced))
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")
    server = scripted(script)
    rows = _many_rows(tmp_path, 1)
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert on_disk_at_dot == [True]


# -- 1.2: outputs, columns and failures that tell the truth --------------------------------------------

def test_save_eml_folder_never_overwrites_a_file_a_row_attaches(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    saved = tmp_path / "saved"
    saved.mkdir()
    precious = saved / "row-0002.eml"
    precious.write_bytes(b"the original message, attached by row 2\r\n")
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,customer,number,ATTACH\r\nc1@test.test,C1,1,saved/row-0002.eml\r\n", encoding="utf-8")
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/SAVE_EML={saved}")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert precious.read_bytes() == b"the original message, attached by row 2\r\n"
    assert handler.received == [] and "row-0002.eml" in result.stderr


@pytest.mark.parametrize("alias", ["H", "?"])
def test_a_column_named_like_a_short_alias_is_a_variable(smtpd, run_smail, tmp_path, alias):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = tmp_path / "rows.csv"
    rows.write_text(f"TO,{alias}\r\nc1@test.test,tall\r\n", encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=size", f"/BODY=Size: {{{{ {alias} }}}}"
                       if alias.isidentifier() else "/BODY=Size", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "Usage" not in result.stdout and len(handler.received) == 1
    if alias.isidentifier():
        assert b"Size: tall" in handler.received[0].data


def test_a_row_with_both_body_and_body_file_is_refused_saying_which(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    (tmp_path / "body.txt").write_text("from the file\n", encoding="utf-8")
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,BODY,BODY_FILE\r\nc1@test.test,,body.txt\r\nc2@test.test,inline,body.txt\r\n",
                    encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=s", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert handler.received == []
    assert "Row 3" in result.stderr and "BODY" in result.stderr and "BODY_FILE" in result.stderr


def test_a_header_that_is_one_huge_line_is_refused_quickly(run_smail, tmp_path):
    import time

    rows = tmp_path / "rows.csv"
    with rows.open("wb") as stream:
        stream.write(b"TO,")
        for _ in range(64):
            stream.write(b"x" * (1 << 20))  # 64 MB and no line end
    started = time.monotonic()
    result = run_smail("/SMTP_SERVER=127.0.0.1", *COMMON, f"/BATCH={rows}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert str(rows) in result.stderr
    assert time.monotonic() - started < 10


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full is Linux")
def test_a_row_stopped_by_a_full_disk_is_not_reported_as_refused_by_the_server(smtpd, run_smail, tmp_path, monkeypatch):
    import errno

    from smail import files as smail_files

    handler = RecordingHandler()
    server = smtpd(handler)
    rows = _many_rows(tmp_path, 2)
    results = tmp_path / "results.csv"
    real_open = smail_files.open_output

    def full(path, **kwargs):
        if str(path).endswith(".eml"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, **kwargs)
    import os
    monkeypatch.setattr(smail_files, "open_output", full)
    result = run_smail(*server.options, *COMMON, f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                       f"/SAVE_EML={tmp_path / 'saved'}")
    assert result.exit_code not in (ExitCode.SEND, ExitCode.INTERNAL), result.stderr
    assert "refused" not in result.stderr.lower() and "refused" not in results.read_text(encoding="utf-8-sig")
    assert "No space left" in result.stderr or "space" in result.stderr.lower()


@pytest.mark.parametrize("victim", ["/BATCH_RESULT", "/RESULT_FILE", "/LOG", "BODY_FILE"])
def test_save_eml_folder_never_overwrites_another_file_of_the_batch(smtpd, run_smail, tmp_path, victim):
    handler = RecordingHandler()
    server = smtpd(handler)
    saved = tmp_path / "saved"
    saved.mkdir()
    target = saved / "row-0002.eml"
    target.write_bytes(b"row,status\r\n" if victim != "BODY_FILE" else b"Hello {{ customer }}\r\n")
    before = target.read_bytes()
    if victim == "BODY_FILE":
        rows = tmp_path / "rows.csv"
        rows.write_text("TO,customer,BODY_FILE\r\nc1@test.test,C1,saved/row-0002.eml\r\n", encoding="utf-8")
        extra: tuple[str, ...] = ()
    else:
        rows = three_rows(tmp_path)
        extra = (f"{victim}={target}",)
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=s", f"/BATCH={rows}",
                       f"/SAVE_EML={saved}", *extra, *(() if victim == "BODY_FILE" else ("/BODY=x",)), log=victim != "/LOG")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert target.read_bytes() == before and handler.received == []
