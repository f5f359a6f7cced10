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
from tests.fakes.microsoft import App, FakeMicrosoft
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
    assert result.exit_code in (ExitCode.OK, ExitCode.PARAM)


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
    assert again.exit_code in (ExitCode.OK, ExitCode.PARAM)


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
    assert result.exit_code in (ExitCode.PARAM, ExitCode.PARTIAL), result.stderr


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


@pytest.mark.parametrize("template", [
    "{{ self }}", "{{ self.__class__ }}", "{{ cycler.__init__.__globals__ }}", "{{ joiner.__call__ }}",
    "{{ namespace.__init__ }}", "{{ lipsum.__globals__ }}", "{{ customer.__class__.__mro__ }}",
    "{% raw %}{{ customer }}{% endraw %}", "{{ customer|attr('__class__') }}",
])
def test_template_tricks_never_crash_and_never_leak(smtpd, run_smail, tmp_path, template):
    """A body template reaching for Jinja2 internals: exit 0 (harmless) or 2, never 7, and
    nothing from Python's internals in what goes out."""
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = three_rows(tmp_path)
    result = run_smail(*server.options, "/FROM_ADDR=f@demo.test", "/SUBJECT=s {{ number }}",
                       f"/BODY={template}", f"/BATCH={rows}")
    assert result.exit_code in (ExitCode.OK, ExitCode.PARAM), result.output[-1500:]
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
def microsoft(tls_ca):
    fake = FakeMicrosoft(tls_ca.server_context())
    fake.start()
    fake.register(App("app-id-1", secret=GRAPH_SECRET, mailboxes={SENDER}))
    yield fake
    fake.stop()


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
