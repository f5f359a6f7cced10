"""The pure parts of /BATCH: CSV encoding and separator, columns, templates and their sandbox,
the results file and its lock, the exit code of a batch, the progress line."""

from __future__ import annotations

import codecs
import io
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smail import reader
from smail.batch.columns import classify
from smail.batch.results import Recorded, ResultsFile, read_results, row_key
from smail.batch.rows import in_row
from smail.batch.runner import Batch
from smail.batch.table import CSVFile, Row, detect_encoding, detect_separator
from smail.batch.tally import ProgressBar, Tally, batch_exit_code
from smail.batch.templates import render_template
from smail.config import validate
from smail.errors import (
    ConnectError,
    ExitCode,
    FileMissingError,
    ParamError,
    RecipientsRefusedError,
    RetryExceededError,
    SMailError,
    SMTPReply,
)
from smail.output import Console
from smail.receipt import Status


def table(tmp_path: Path, data: bytes, name: str = "rows.csv") -> list[tuple[int, tuple[str, ...]]]:
    path = tmp_path / name
    path.write_bytes(data)
    with CSVFile(path) as csv_file:
        return [(row.number, row.cells) for row in csv_file.rows()]


# -- encoding and separator --------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (codecs.BOM_UTF8 + "a;é\n".encode(), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + "a;é\n".encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + "a;é\n".encode("utf-16-be"), "utf-16"),
    ("a;é\n".encode(), "utf-8"),
    ("a;é €\n".encode("cp1252"), "cp1252"),
    (b"a;\x81\x8d\n", "cp1252"),  # bytes Windows-1252 leaves undefined
    (b"", "utf-8"),
])
def test_encoding_is_detected_like_body_files(data, expected):
    stream = io.BytesIO(data)
    assert detect_encoding(stream)[0] == expected
    assert stream.tell() == 0


def test_invalid_utf8_far_into_a_large_file_falls_back_to_windows_1252(tmp_path):
    data = b"to;name\n" + b"a@test.test;plain\n" * 200_000 + "b@test.test;Zoé\n".encode("cp1252")
    rows = table(tmp_path, data)
    assert rows[-1][1] == ("b@test.test", "Zoé")
    assert len(rows) == 200_001


def test_undefined_windows_1252_bytes_map_to_the_same_code_points(tmp_path):
    assert table(tmp_path, b"to;x\na@t.test;\x81\xe9\n") == [(2, ("a@t.test", "\x81é"))]


@pytest.mark.parametrize("header, expected", [
    ("TO;customer;ATTACH", ";"), ("TO,customer,ATTACH", ","), ("TO\tcustomer", "\t"), ("TO", ","),
    ('"Name, first";TO;ATTACH', ";"), ('"a;b",c,d', ","), ("a;b,c;d", ";"),
])
def test_separator_from_the_header_line(header, expected):
    assert detect_separator(header) == expected


@pytest.mark.parametrize("encoding, separator", [("utf-8-sig", ";"), ("utf-16", ";"), ("cp1252", ";"),
                                                 ("utf-8", ","), ("utf-16", "\t")])
def test_rows_in_every_encoding_and_separator(tmp_path, encoding, separator):
    text = separator.join(["TO", "Société"]) + "\r\n" + separator.join(["a@test.test", '"Crème; brûlée, €"']) + "\r\n"
    assert table(tmp_path, text.encode(encoding)) == [(2, ("a@test.test", "Crème; brûlée, €"))]


# -- rows -------------------------------------------------------------------------------------

def test_rows_are_numbered_like_a_spreadsheet_and_blank_lines_are_skipped(tmp_path):
    data = b'TO,note\r\na@t.test,one\r\n\r\n,\r\nb@t.test,"two\r\nlines"\r\nc@t.test,three\r\n'
    assert table(tmp_path, data) == [(2, ("a@t.test", "one")), (5, ("b@t.test", "two\r\nlines")),
                                     (6, ("c@t.test", "three"))]


def test_header_only_has_no_rows(tmp_path):
    assert table(tmp_path, b"TO;customer\r\n") == []


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"   "])
def test_empty_file_is_refused(tmp_path, data):
    with pytest.raises(ParamError, match="is empty: its first line must name the columns"):
        table(tmp_path, data)


@pytest.mark.parametrize("line, count", [(b"a@t.test,x,extra", 3), (b"a@t.test", 1)])
def test_ragged_row_names_its_row(tmp_path, line, count):
    with pytest.raises(ParamError, match=f"Row 3 of .* has {count} cells, but its header names 2 columns"):
        table(tmp_path, b"TO,x\r\nb@t.test,y\r\n" + line + b"\r\n")


def test_nul_byte_names_row_and_column(tmp_path):
    with pytest.raises(ParamError, match="Row 3, column customer: a NUL character is not allowed"):
        table(tmp_path, b"TO,customer\na@t.test,x\nb@t.test,y\x00z\n")


def test_utf16_without_bom_is_refused_with_a_reason(tmp_path):
    with pytest.raises(ParamError, match="NUL character"):
        table(tmp_path, "TO;x\na@t.test;y\n".encode("utf-16-le"))


def test_a_10_mb_cell_is_refused_naming_its_row(tmp_path):
    with pytest.raises(ParamError, match="Row 3 of .* cannot be read as CSV: field larger than field limit"):
        table(tmp_path, b"TO,x\na@t.test,y\nb@t.test," + b"z" * (10 * 1024 * 1024) + b"\n")


def test_an_unclosed_quote_is_refused_naming_its_row(tmp_path):
    with pytest.raises(ParamError, match="Row 3 of .* cannot be read as CSV"):
        table(tmp_path, b'TO,x\na@t.test,y\nb@t.test,"never closed\nc@t.test,z\n')


def test_bom_and_semicolons(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + "TO;Nom\r\nzoe@t.test;Zoé\r\n".encode())
    with CSVFile(path) as csv_file:
        assert [c.name for c in csv_file.columns] == ["TO", "Nom"]  # no BOM glued to the first name
        assert csv_file.columns[0].option is not None and csv_file.separator == ";"


@pytest.mark.parametrize("path", [
    pytest.param("/dev/zero", marks=pytest.mark.skipif(sys.platform == "win32", reason="/dev/zero is POSIX")),
    "FOLDER",
    pytest.param("FIFO", marks=pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX"))])
def test_not_a_regular_file(tmp_path, path):
    target = {"FOLDER": tmp_path, "FIFO": tmp_path / "fifo"}.get(path, Path(path))
    if path == "FIFO":
        os.mkfifo(target)
    with pytest.raises(FileMissingError):
        CSVFile(target)


# -- columns ----------------------------------------------------------------------------------

def test_columns_are_options_in_any_case_or_template_variables():
    columns = classify(["to", "Customer", "attach", "", "Body-File", "reply_to"])
    assert [(c.index, c.name, c.option.name if c.option else None) for c in columns] == [
        (0, "to", "TO"), (1, "Customer", None), (2, "attach", "ATTACH"), (4, "Body-File", "BODY_FILE"),
        (5, "reply_to", "REPLY_TO")]


@pytest.mark.parametrize("names, message", [
    (["TO", "smtp_password"], "Column smtp_password: /SMTP_PASSWORD cannot change from one row to another"),
    (["TO", "Batch"], "Column Batch: /BATCH cannot change"),
    (["TO", "log_file"], "Column log_file: /LOG cannot change"),
    (["TO", "to"], "Columns TO and to name the same thing"),
    (["customer", "CUSTOMER"], "Columns customer and CUSTOMER name the same thing"),
])
def test_refused_columns(names, message):
    with pytest.raises(ParamError, match=message):
        classify(names)


def test_row_key_ignores_column_order_but_not_values():
    columns = classify(["TO", "n"])
    swapped = classify(["n", "TO"])
    key = row_key(columns, Row(2, ("a@t.test", "1")))
    assert key == row_key(swapped, Row(2, ("1", "a@t.test")))
    assert key != row_key(columns, Row(2, ("a@t.test", "2")))
    assert len(key) == 16


# -- a row's errors ---------------------------------------------------------------------------

REFUSED = SMTPReply(550, "5.1.1 no such user", "RCPT TO")


@pytest.mark.parametrize("err", [
    ParamError("bad value"),
    RecipientsRefusedError("refused", refused=(("a@t.test", REFUSED),)),  # keyword-only facts
    RetryExceededError("gave up", last=ConnectError("down"), attempts=3),
], ids=["param", "refused-recipient", "retry-exceeded"])
def test_a_row_error_keeps_its_class_code_and_facts_and_names_the_row(err):
    located = in_row(err, 4, "TO")
    assert type(located) is type(err) and located.exit_code == err.exit_code
    assert located.message == str(located) == f"Row 4, column TO: {err.message}"
    assert {k: v for k, v in vars(located).items() if k != "message"} == \
        {k: v for k, v in vars(err).items() if k != "message"}
    assert err.message in ("bad value", "refused", "gave up")  # the original is left as it was


# -- templates --------------------------------------------------------------------------------

def render(text: str, html: bool = False, **variables: str) -> str:
    return render_template(text, html=html, variables={k.casefold(): v for k, v in variables.items()}, row=7,
                           template="/BODY")


def test_variables_are_found_in_any_case():
    assert render("{{ Customer }} {{ customer }} {{ CUSTOMER }}", customer="Zoé") == "Zoé Zoé Zoé"


def test_html_is_autoescaped_and_text_is_not():
    assert render("<p>{{ name }}</p>", html=True, name="<b>A&B</b>") == "<p>&lt;b&gt;A&amp;B&lt;/b&gt;</p>"
    assert render("{{ name }}", name="<b>A&B</b>") == "<b>A&B</b>"


def test_control_flow_filters_and_trailing_newline():
    text = "{% if amount|float > 100 %}Gros client{% else %}Client{% endif %} {{ name|upper }}\n"
    assert render(text, amount="250,5".replace(",", "."), name="zoé") == "Gros client ZOÉ\n"


def test_unknown_variable_names_row_and_variable_even_in_a_branch_not_taken():
    with pytest.raises(ParamError, match=r"^Row 7: /BODY uses the variable typo, which is not a column"):
        render("{% if false %}{{ typo }}{% endif %}")


def test_unknown_attribute_is_an_error():
    with pytest.raises(ParamError, match="Row 7: /BODY cannot be rendered"):
        render("{{ name.missing }}", name="x")


@pytest.mark.parametrize("text", [
    "{{ ''.__class__.__mro__ }}", "{{ name.__class__.__base__.__subclasses__() }}",
    "{{ name.format.__globals__ }}", "{{ lipsum.__globals__ }}", "{{ cycler.__init__.__globals__.os }}",
    "{% set x = [] %}{{ x.append(1) }}",
])
def test_the_sandbox_refuses_python_internals(text):
    with pytest.raises(ParamError, match="Row 7: /BODY (tries something the template sandbox forbids|cannot be rendered)"):
        render(text, name="x")


@pytest.mark.parametrize("text", ["{{ name ", "{% if %}", "{% include 'other.html' %}", "{{ 1/0 }}",
                                  "{% for i in range(10**9) %}{% endfor %}"])
def test_broken_templates_exit_2(text):
    with pytest.raises(ParamError) as caught:
        render(text, name="x")
    assert caught.value.exit_code == ExitCode.PARAM
    assert caught.value.message.startswith("Row 7: /BODY")


def test_used_variables_are_collected():
    used: set[str] = set()
    render_template("{{ A }}{% set b = 1 %}{{ b }}", html=False, variables={"a": "1"}, row=2, template="x", used=used)
    assert used == {"a"}


# -- results file -----------------------------------------------------------------------------

def test_results_file_lines_and_the_last_status_of_each_row(tmp_path):
    path = tmp_path / "results.csv"
    results = ResultsFile(path)
    results.start(truncate=True)
    results.record(2, "sending", message_id="<a@x>", key="k2")
    results.record(2, "sent", exit_code=0, message_id="<a@x>", text="250 ok\r\nqueued", key="k2")
    results.record(3, "sending", key="k3")
    results.record(4, "refused", exit_code=5, text='550 "no", such; user', key="k4")
    results.close()
    data = path.read_bytes()
    assert data.startswith(codecs.BOM_UTF8 + b"row,status,exit_code,message_id,reply_or_error,key,time\r\n")
    assert b"2,sent,0,<a@x>,250 ok queued,k2," in data
    assert b'4,refused,5,,"550 ""no"", such; user",k4,' in data
    assert read_results(path) == {2: Recorded("sent", "k2", "<a@x>"), 3: Recorded("sending", "k3"),
                                        4: Recorded("refused", "k4")}


def test_results_file_is_truncated_only_for_a_new_run(tmp_path):
    path = tmp_path / "results.csv"
    path.write_bytes(b"row,status,exit_code,message_id,reply_or_error,key\r\n2,sent,0,,,k\r\n")
    appended = ResultsFile(path)
    appended.start(truncate=False)
    appended.record(3, "sent", key="k3")
    appended.close()
    assert set(read_results(path)) == {2, 3}
    fresh = ResultsFile(path)
    fresh.start(truncate=True)
    fresh.close()
    assert read_results(path) == {}


def test_read_results_is_tolerant_of_foreign_and_missing_files(tmp_path):
    assert read_results(tmp_path / "missing.csv") == {}
    path = tmp_path / "r.csv"
    path.write_text("garbage\n\nrow,status\nx,sent,0,,,k\n5,sent,0,,,k5\n6,sent\n", encoding="utf-8")
    assert read_results(path) == {5: Recorded("sent", "k5")}


def test_a_second_writer_of_the_results_file_is_refused(tmp_path):
    path = tmp_path / "results.csv"
    first = ResultsFile(path)
    try:
        with pytest.raises(SMailError, match="is being written by another SMail run"):
            ResultsFile(path)
    finally:
        first.close()
    ResultsFile(path).close()  # released with its file


def test_each_line_is_one_write(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    results = ResultsFile(path)
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", spy)
    results.record(2, "sending", message_id="<a@x>", key="k")
    results.close()
    assert len(writes) == 1 and writes[0].startswith(b"2,sending,,<a@x>,,k,") and writes[0].endswith(b"\r\n")


def test_a_short_write_is_an_error(tmp_path, monkeypatch):
    results = ResultsFile(tmp_path / "results.csv")
    monkeypatch.setattr(os, "write", lambda fd, data: len(data) - 1)
    with pytest.raises(OSError):
        results.record(2, "sending")
    results.close()


# -- outcome ----------------------------------------------------------------------------------

@pytest.mark.parametrize("accepted, failures, expected", [
    (5, [], ExitCode.OK),
    (0, [], ExitCode.OK),
    (3, [ExitCode.SEND], ExitCode.PARTIAL),
    (0, [ExitCode.CONNECT] * 4, ExitCode.CONNECT),
    (0, [ExitCode.SEND, ExitCode.AUTH, ExitCode.AUTH], ExitCode.AUTH),
    (0, [ExitCode.SEND, ExitCode.AUTH], ExitCode.SEND),  # a tie: the first seen
    (0, [ExitCode.QUEUED, ExitCode.QUEUED], ExitCode.QUEUED),
])
def test_batch_exit_code(accepted, failures, expected):
    assert batch_exit_code(accepted, Counter(failures)) == expected


@given(st.integers(0, 50), st.lists(st.sampled_from(list(ExitCode)[1:]), max_size=50))
def test_batch_exit_code_properties(accepted, failures):
    code = batch_exit_code(accepted, Counter(failures))
    if not failures:
        assert code is ExitCode.OK
    elif accepted:
        assert code is ExitCode.PARTIAL
    else:
        assert code in failures and failures.count(code) == max(failures.count(c) for c in failures)


def test_tally_counts_in_words():
    tally = Tally()
    for status, code in [(Status.SENT, ExitCode.OK)] * 498 + [(Status.REFUSED, ExitCode.SEND)] * 2 + [
            (Status.SKIPPED, ExitCode.OK), (Status.MAYBE_SENT, ExitCode.SEND)]:
        tally.add(status, code)
    tally.add(Status.FAILED, ExitCode.CONNECT, not_sent=True)
    assert tally.counts_text() == "498 sent, 1 skipped (already sent), 2 refused, 1 may have been sent, 1 not sent"
    assert tally.accepted == 499 and tally.exit_code() is ExitCode.PARTIAL and tally.done == 503


def test_summary_is_translated():
    from smail import i18n

    tally = Tally()
    tally.add(Status.SENT, ExitCode.OK)
    tally.add(Status.REFUSED, ExitCode.SEND)
    tally.add(Status.REFUSED, ExitCode.SEND)
    i18n.activate("fr")
    try:
        text = tally.counts_text()
    finally:
        i18n.activate("en")
    assert text == "1 envoyé, 2 refusés"


def test_progress_line():
    stream = io.StringIO()
    now = [100.0]
    bar = ProgressBar(stream, 500, clock=lambda: now[0])
    now[0] = 110.0
    bar.update(100)
    bar.update(101)  # too soon after the last one: not drawn
    now[0] = 120.0
    bar.update(500, final=True)
    assert stream.getvalue() == ("\r[####                ] 100/500 rows, 10.0/s, 0:00:40 left  "
                                 "\r[####################] 500/500 rows, 25.0/s, 0:00:00 left  \n")


# -- the run's stop state ---------------------------------------------------------------------

def wait_for(condition, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


def test_the_first_reason_to_stop_stands_when_a_worker_fails_to_record_its_row_later(tmp_path, monkeypatch):
    """Two rows in flight (Graph sends several at once): row 2 finds the server gone, then row 3,
    already being sent, cannot write its `sending` line. The batch stopped because the server
    is gone: the later failure, found in a worker, must not replace that reason."""
    rows = tmp_path / "rows.csv"
    rows.write_text("TO\na@t.test\nb@t.test\n", encoding="utf-8")
    results = tmp_path / "results.csv"
    raw = reader.parse(["/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
                         "/GRAPH_SENDER=u@d.test", f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/RETRY=1",
                         "/BODY=x"], {})
    config = validate(raw)
    second_started = threading.Event()
    batch: Batch

    class Session:
        where = "graph.test"

        def send(self, message, rendered, *, on_commit=None):
            if message.to[0].address == "a@t.test":
                assert second_started.wait(30)
                raise ConnectError("the server is gone")
            second_started.set()
            wait_for(lambda: batch.stop_error is not None)
            on_commit()
            raise AssertionError("the row was sent although its `sending` line could not be written")

        def close(self):
            pass

    real_record = ResultsFile.record

    def record(self, row, status, **facts):
        if row == 3 and status == "sending":
            raise OSError(28, "No space left on device")
        real_record(self, row, status, **facts)
    monkeypatch.setattr(ResultsFile, "record", record)
    batch = Batch(config, Console(io.StringIO(), io.StringIO()), workers=2,
                  open_session=lambda settings: Session())
    outcome = batch.run()
    assert isinstance(batch.stop_error, ConnectError)
    assert outcome.text.startswith("Batch stopped: the server is gone")
    assert outcome.exit_code == ExitCode.CONNECT


def test_every_option_a_row_may_set_names_a_field_of_the_message_settings():
    from dataclasses import fields

    from smail.batch.columns import FIELD_OF
    from smail.options import OPTIONS
    from smail.settings import MessageSettings

    names = {f.name for f in fields(MessageSettings)}
    assert sorted(o.name for o in OPTIONS if o.per_row and o not in FIELD_OF) == ["ENCRYPT_TO"]
    assert all(o.per_row for o in FIELD_OF)
    assert set(FIELD_OF.values()) <= names


def test_a_row_sets_its_cells_over_the_command_line_and_keeps_it_where_a_cell_is_empty(tmp_path):
    from smail.batch.rows import read_row

    (tmp_path / "a.html").write_text("<p>x</p>", encoding="utf-8")
    rows = tmp_path / "rows.csv"
    rows.write_text("TO;FROM_NAME;BODY_FILE;CC\n a@t.test ;  Ann  ;a.html;\n", encoding="utf-8")
    raw = reader.parse(["/SMTP_SERVER=s.test", "/FROM_ADDR=me@t.test", "/TO=cli@t.test", "/CC=c@t.test",
                        "/BODY=command line", f"/BATCH={rows}"], {})
    plan = validate(raw).batch
    assert plan is not None and plan.message.to == ("cli@t.test",) and plan.message.body_text == "command line"
    with CSVFile(rows) as table:
        row = next(table.rows())
        values = read_row(row, table.columns, plan.message, tmp_path)
    assert values.number == 2
    assert values.message.to == (" a@t.test ",) and values.message.from_name == "Ann"
    assert values.message.cc == ("c@t.test",) and values.message.from_addr == "me@t.test"
    assert (values.message.body_file, values.message.body_text) == (tmp_path / "a.html", None)
    assert values.variables["from_name"] == "  Ann  "
