"""/BATCH against real SMTP servers on 127.0.0.1 and the local fake of Graph: what the servers
received (each row exactly once), exit codes, the results file, and the kill-and-resume cycle
of a real SMail process."""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smail import files
from smail.errors import ExitCode
from tests.fakes.microsoft import FakeMicrosoft
from tests.smtpd import RecordingHandler, free_port, read_line, read_message

ROOT = Path(__file__).resolve().parents[2]
SENDER = "factures@domaine.test"
SECRET = "Sjp~Q8a.secret-value-1234567890"
COMMON = ("/FROM_ADDR=factures@demo.test", "/SUBJECT=Facture {{ number }} pour {{ customer }}")


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def write_csv(path: Path, header: list[str], rows: list[list[str]], *, encoding: str = "utf-8",
              delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def invoices(folder: Path, count: int, *, pdf: bool = True) -> Path:
    """rows.csv: TO, customer, number, ATTACH (one PDF per row, relative to the CSV's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(1, count + 1):
        name = f"FAC-{n:04d}.pdf"
        if pdf:
            (folder / "pdf").mkdir(exist_ok=True)
            (folder / "pdf" / name).write_bytes(b"%PDF-1.4\n% invoice " + str(n).encode() + b"\n%%EOF\n")
        rows.append([f"client{n}@test.test", f"Client n°{n}", f"{n:04d}", f"pdf/{name}" if pdf else ""])
    return write_csv(folder / "rows.csv", ["TO", "customer", "number", "ATTACH"], rows)


def results_of(path: Path) -> dict[int, list[list[str]]]:
    """The results file's lines by row, oldest first."""
    lines: dict[int, list[list[str]]] = {}
    for fields in csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))):
        if fields and fields[0].isdigit():
            lines.setdefault(int(fields[0]), []).append(fields)
    return lines


def last_status(path: Path) -> dict[int, str]:
    return {row: lines[-1][1] for row, lines in results_of(path).items()}


def subjects(received: list[Any]) -> Counter[str]:
    return Counter(str(parse(r.data)["Subject"]) for r in received)


# -- SMTP --------------------------------------------------------------------------------------

def test_300_rows_each_delivered_once_personalised_over_one_connection(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path / "batch", 300)
    body = tmp_path / "batch" / "Mail.html"
    body.write_text("<p>Bonjour {{ customer }},</p><p>voici la facture {{ number }}.</p>\n", encoding="utf-8")
    results = tmp_path / "results.csv"
    result = run_smail(*server.options, *COMMON, f"/BODY_FILE={body}", f"/BATCH={rows}",
                       f"/BATCH_RESULT={results}", "/LOG_LEVEL=INFO")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Batch: 300 sent; see {results}.\n"
    assert len(handler.helo_names) == 1  # one connection, one EHLO
    assert len(handler.received) == 300
    by_recipient = {r.rcpt_tos[0]: r for r in handler.received}
    assert len(by_recipient) == 300
    for n in (1, 150, 300):
        message = parse(by_recipient[f"client{n}@test.test"].data)
        assert message["Subject"] == f"Facture {n:04d} pour Client n°{n}"
        html = message.get_body(("html",)).get_content()
        assert f"Bonjour Client n°{n}," in html and f"facture {n:04d}." in html
        [pdf] = list(message.iter_attachments())
        assert pdf.get_filename() == f"FAC-{n:04d}.pdf"
        assert pdf.get_content() == (tmp_path / "batch" / "pdf" / f"FAC-{n:04d}.pdf").read_bytes()
    statuses = results_of(results)
    assert sorted(statuses) == list(range(2, 302))  # spreadsheet rows: the header is row 1
    assert all([line[1] for line in lines] == ["sending", "sent"] for lines in statuses.values())
    assert statuses[2][1][3] == str(parse(by_recipient["client1@test.test"].data)["Message-ID"])


def test_a_refused_recipient_does_not_stop_the_others(smtpd, run_smail, tmp_path):
    handler = RecordingHandler(rcpt_replies=["250 OK"] * 3 + ["550 5.1.1 <client4@test.test>: no such user"])
    server = smtpd(handler)
    rows = invoices(tmp_path, 6)
    results, receipts = tmp_path / "results.csv", tmp_path / "result.json"
    result = run_smail(*server.options, *COMMON, "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}",
                       f"/BATCH_RESULT={results}", f"/RESULT_FILE={receipts}")
    assert result.exit_code == ExitCode.PARTIAL
    assert result.stdout == ""
    assert f"Batch: 5 sent, 1 refused; see {results}." in result.stderr
    assert sorted(r.rcpt_tos[0] for r in handler.received) == [f"client{n}@test.test" for n in (1, 2, 3, 5, 6)]
    [refused] = results_of(results)[5]
    assert refused[1:3] == ["refused", "5"] and "550 5.1.1" in refused[4]
    assert last_status(results) == {2: "sent", 3: "sent", 4: "sent", 5: "refused", 6: "sent", 7: "sent"}
    document = json.loads(receipts.read_text(encoding="utf-8"))
    assert document["exit_code"] == 11
    assert [m["source"]["row"] for m in document["messages"]] == [2, 3, 4, 5, 6, 7]
    assert [m["status"] for m in document["messages"]].count("refused") == 1


@dataclass
class Limited:
    """A raw SMTP server that misbehaves after `limit` messages on one connection: it drops the
    line, or answers MAIL with a 421 (and hangs up) or a 451."""

    limit: int
    behaviour: str
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __call__(self, conn: socket.socket) -> None:
        self.connections += 1
        delivered = 0
        conn.sendall(b"220 limited ESMTP\r\n")
        while line := read_line(conn):
            verb = line.split(b" ", 1)[0].split(b":")[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-limited\r\n250 PIPELINING\r\n")
            elif verb == b"RSET" and delivered >= self.limit and self.behaviour == "drop":
                return
            elif verb == b"MAIL" and delivered >= self.limit and self.behaviour == "421":
                conn.sendall(b"421 4.7.0 Too many messages, closing connection\r\n")
                return
            elif verb == b"MAIL" and delivered >= self.limit and self.behaviour == "451":
                conn.sendall(b"451 4.3.2 Too many messages on this connection\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = read_message(conn)
                if data is None:
                    return
                self.messages.append(data)
                delivered += 1
                conn.sendall(f"250 2.0.0 Ok: queued as Q{len(self.messages)}\r\n".encode())
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")


@pytest.mark.parametrize("behaviour", ["drop", "421", "451"])
def test_a_server_that_stops_after_n_messages_gets_every_row_once(scripted, run_smail, tmp_path, behaviour):
    script = Limited(limit=3, behaviour=behaviour)
    server = scripted(script)
    rows = invoices(tmp_path, 10)
    results = tmp_path / "results.csv"
    result = run_smail(*server.options, *COMMON, "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}",
                       f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.OK, result.stderr
    delivered = Counter(str(parse(m[:-3]).get("Subject")) for m in script.messages)
    assert delivered == Counter({f"Facture {n:04d} pour Client n°{n}": 1 for n in range(1, 11)})
    assert script.connections == 4  # 3 + 3 + 3 + 1
    assert set(last_status(results).values()) == {"sent"}
    assert "reconnecting" in result.log


def test_an_invalid_row_stops_everything_before_sending(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 10)
    results = tmp_path / "results.csv"
    results.write_text("previous run\n", encoding="utf-8")
    table = rows.read_text(encoding="utf-8").splitlines()

    def run_with(line: int, cells: str) -> Any:
        changed = table[:line - 1] + [cells] + table[line:]
        rows.write_text("\r\n".join(changed) + "\r\n", encoding="utf-8")
        return run_smail(*server.options, *COMMON, "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}",
                         f"/BATCH_RESULT={results}")

    bad_address = run_with(7, "client 6@@test.test,Client,0006,pdf/FAC-0006.pdf")
    assert bad_address.exit_code == ExitCode.PARAM
    assert bad_address.stderr.startswith("Row 7, column TO: Invalid e-mail address: client 6@@test.test")
    missing = run_with(9, "client8@test.test,Client,0008,pdf/FAC-9999.pdf")
    assert missing.exit_code == ExitCode.FILE_NOT_FOUND
    assert missing.stderr.startswith("Row 9, column ATTACH: File not found:") and "FAC-9999.pdf" in missing.stderr
    unknown = run_smail(*server.options, *COMMON, "/BODY=Bonjour {{ client }}", f"/BATCH={rows}")
    assert unknown.exit_code == ExitCode.PARAM
    assert unknown.stderr == ("Row 2: /BODY uses the variable client, which is not a column of the CSV file.\n")
    assert handler.received == [] and handler.helo_names == []  # nothing sent, not even connected
    assert results.read_text(encoding="utf-8") == "previous run\n"  # truncated only after validation


def test_unknown_variable_in_a_branch_no_row_takes_is_still_an_error(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 2)
    result = run_smail(*server.options, *COMMON, "/BODY={% if false %}{{ typo }}{% endif %}ok", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert "typo" in result.stderr and "Row 2" in result.stderr
    assert handler.received == []


def test_template_sandbox_refuses_python_internals(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 2)
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT={{ customer.__class__.__mro__ }}",
                       "/BODY=x", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr.startswith("Row 2: /SUBJECT tries something the template sandbox forbids")
    assert handler.received == []


class TimedHandler(RecordingHandler):
    """Records when each transaction reached the server (its first RCPT): /RATE spaces the
    starts of the messages."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if not envelope.rcpt_tos:
            self.times.append(time.monotonic())
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def test_rate_spaces_the_messages(smtpd, run_smail, tmp_path):
    handler = TimedHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 6, pdf=False)
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", "/RATE=20/S")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(handler.times) == 6 and len(handler.received) == 6
    assert handler.times[-1] - handler.times[0] >= 0.22  # 5 intervals of 50 ms
    unpaced = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}")
    assert unpaced.exit_code == ExitCode.OK
    assert handler.times[-1] - handler.times[-6] < handler.times[5] - handler.times[0]


def test_dry_run_saves_one_eml_per_row_and_connects_to_nothing(run_smail, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    rows = invoices(tmp_path, 3)
    folder = tmp_path / "out" / "eml"
    results = tmp_path / "results.csv"
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={listener.getsockname()[1]}", *COMMON,
                       "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}", "/DRY_RUN", f"/SAVE_EML={folder}",
                       f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Dry run: 3 messages are valid and saved in {folder}; nothing was sent.\n"
    assert sorted(p.name for p in folder.iterdir()) == ["row-0002.eml", "row-0003.eml", "row-0004.eml"]
    message = parse((folder / "row-0003.eml").read_bytes())
    assert message["Subject"] == "Facture 0002 pour Client n°2" and message["To"] == "client2@test.test"
    assert [a.get_filename() for a in message.iter_attachments()] == ["FAC-0002.pdf"]
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert not results.exists()  # a dry run never touches what /BATCH_RESUME reads


@pytest.mark.parametrize("encoding, delimiter", [("cp1252", ";"), ("utf-8-sig", ","), ("utf-16", ";"),
                                                 ("utf-16", "\t"), ("utf-8", ";")])
def test_csv_encodings_and_separators(smtpd, run_smail, tmp_path, encoding, delimiter):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = write_csv(tmp_path / "rows.csv", ["Destinataire", "to", "Société"],
                     [["Zoé", "zoe@test.test", "Crème & Brûlée, SARL"], ["Ægir", "aegir@test.test", "Œuvre « 1 € »"]],
                     encoding=encoding, delimiter=delimiter)
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT={{ destinataire }} — {{ société }}",
                       "/BODY=Bonjour {{ Destinataire }}", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert subjects(handler.received) == Counter({"Zoé — Crème & Brûlée, SARL": 1, "Ægir — Œuvre « 1 € »": 1})
    assert {r.rcpt_tos[0] for r in handler.received} == {"zoe@test.test", "aegir@test.test"}


def test_per_row_body_file_inline_and_several_attachments_relative_to_the_csv(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    folder = tmp_path / "export"
    (folder / "docs").mkdir(parents=True)
    for name in ("a1.pdf", "a2.pdf", "b1.pdf", "cgv.pdf"):
        (folder / "docs" / name).write_bytes(b"%PDF " + name.encode())
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\nlogo")
    (folder / "fr.html").write_text('<p>Bonjour {{ name }} <img src="cid:logo.png"></p>\n', encoding="utf-8")
    (folder / "en.txt").write_text("Hello {{ name }} & co <b>\n", encoding="utf-8")
    rows = write_csv(folder / "rows.csv", ["to", "name", "body_file", "attach", "inline", "cc"], [
        ["a@test.test", "Anne <A&B>", "fr.html", "docs/a*.pdf;docs/cgv.pdf", "logo.png", ""],
        ["b@test.test", "Bob <B&C>", "en.txt", "docs/b1.pdf", "", "Copie <copie@test.test>"],
    ])
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT=Docs", "/BODY=unused",
                       "/CC=boss@test.test", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    first, second = sorted(handler.received, key=lambda r: r.rcpt_tos[0])
    assert first.rcpt_tos == ["a@test.test", "boss@test.test"]
    assert second.rcpt_tos == ["b@test.test", "copie@test.test"]  # a row's CC replaces the command line's
    html = parse(first.data)
    assert "Bonjour Anne &lt;A&amp;B&gt;" in html.get_body(("html",)).get_content()  # HTML autoescaped
    assert [a.get_filename() for a in html.iter_attachments()] == ["a1.pdf", "a2.pdf", "cgv.pdf"]
    assert [p["Content-ID"] for p in html.walk() if p["Content-ID"]] == ["<logo.png>"]
    text = parse(second.data)
    assert text.get_body(("plain",)).get_content().strip() == "Hello Bob <B&C> & co <b>"  # plain text: not escaped
    assert [a.get_filename() for a in text.iter_attachments()] == ["b1.pdf"]


def test_column_naming_an_option_a_row_cannot_set(smtpd, run_smail, tmp_path):
    server = smtpd(RecordingHandler())
    rows = write_csv(tmp_path / "rows.csv", ["TO", "smtp_server"], [["a@test.test", "evil.test"]])
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/BODY=x", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr.startswith("Column smtp_server: /SMTP_SERVER cannot change from one row to another")


@pytest.mark.parametrize("kind", [
    pytest.param("fifo", marks=pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")),
    pytest.param("device", marks=pytest.mark.skipif(sys.platform == "win32", reason="/dev/zero is POSIX")),
    "folder"])
def test_batch_naming_something_that_is_not_a_file_exits_8_at_once(run_smail, tmp_path, kind):
    target = {"fifo": tmp_path / "pipe", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    started = time.monotonic()
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@demo.test", "/BODY=x", f"/BATCH={target}")
    assert result.exit_code == ExitCode.FILE_NOT_FOUND
    assert time.monotonic() - started < 5
    assert str(target) in result.stderr


def test_batch_result_naming_the_csv_is_refused(run_smail, tmp_path):
    rows = invoices(tmp_path, 2)
    before = rows.read_bytes()
    result = run_smail("/SMTP_SERVER=127.0.0.1", *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert "/BATCH_RESULT" in result.stderr and rows.read_bytes() == before


def test_unreachable_server_stops_the_batch_and_reports_the_rest_not_sent(run_smail, tmp_path):
    rows = invoices(tmp_path, 4)
    results = tmp_path / "results.csv"
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", *COMMON, "/BODY=x",
                       f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.CONNECT
    assert "refused the connection" in result.stderr and "3 not sent" in result.stderr
    assert last_status(results) == {2: "failed", 3: "not-sent", 4: "not-sent", 5: "not-sent"}


def test_login_refused_stops_the_batch_with_exit_4(smtpd, run_smail, tmp_path):
    handler = RecordingHandler(passwords={"james": "right"})
    server = smtpd(handler)
    rows = invoices(tmp_path, 3)
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", "/SMTP_USERNAME=james",
                       "/SMTP_PASSWORD=wrong")
    assert result.exit_code == ExitCode.AUTH
    assert handler.received == [] and len(handler.logins) == 1  # not once per row


def test_resume_skips_sent_rows_and_never_resends_a_row_that_was_being_sent(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 5)
    results = tmp_path / "results.csv"
    first = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert first.exit_code == ExitCode.OK
    lines = results.read_text(encoding="utf-8-sig").splitlines()
    keys = {int(f[0]): f[5] for f in csv.reader(lines[1:])}
    # As if the run had been killed: row 4 while its end was going out, rows 5 and 6 before.
    results.write_text("\r\n".join([lines[0], f"2,sent,0,<a@x>,250 ok,{keys[2]}",
                                    f"3,sent,0,<b@x>,250 ok,{keys[3]}", f"4,sending,,<c@x>,,{keys[4]}",
                                    f"5,failed,5,,451 later,{keys[5]}"]) + "\r\n", encoding="utf-8")
    handler.received.clear()
    second = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                       "/BATCH_RESUME")
    assert second.exit_code == ExitCode.PARTIAL
    assert f"Batch: 2 sent, 2 skipped (already sent), 1 may have been sent; see {results}." in second.stderr
    assert sorted(r.rcpt_tos[0] for r in handler.received) == ["client4@test.test", "client5@test.test"]
    assert last_status(results) == {2: "sent", 3: "sent", 4: "may-have-been-sent", 5: "sent", 6: "sent"}
    handler.received.clear()
    third = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                      "/BATCH_RESUME")
    assert third.exit_code == ExitCode.PARTIAL and handler.received == []


def test_resume_with_a_changed_csv_names_the_row(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 3)
    results = tmp_path / "results.csv"
    assert run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}").exit_code == 0
    rows.write_text(rows.read_text(encoding="utf-8").replace("Client n°2", "Client n°22"), encoding="utf-8")
    handler.received.clear()
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                       "/BATCH_RESUME")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr.startswith(f"Row 3 of {rows} is not the row {results} records as sent")
    assert handler.received == []


def test_resume_without_a_results_file_yet_sends_everything(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 2)
    results = tmp_path / "results.csv"
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                       "/BATCH_RESUME")
    assert result.exit_code == ExitCode.OK and len(handler.received) == 2


def test_a_results_file_another_run_holds_is_refused(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 2)
    results = tmp_path / "results.csv"
    with results.open("ab") as held:
        assert files.lock_file(held.fileno())  # as another SMail run holds it
        result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.ERROR
    assert "is being written by another SMail run" in result.stderr
    assert handler.received == []


def test_outbox_keeps_a_row_that_failed_for_a_transient_reason(smtpd, run_smail, tmp_path):
    pytest.importorskip("smail.outbox")
    handler = RecordingHandler(rcpt_replies=["250 OK", "451 4.2.0 mailbox busy"])
    server = smtpd(handler)
    rows = invoices(tmp_path, 3)
    results, outbox = tmp_path / "results.csv", tmp_path / "outbox"
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                       f"/OUTBOX={outbox}")
    assert result.exit_code == ExitCode.PARTIAL
    assert "1 kept in the outbox" in result.stderr
    assert last_status(results) == {2: "sent", 3: "queued", 4: "sent"}
    assert len([p for p in outbox.iterdir() if not p.name.startswith(".")]) == 1
    handler.received.clear()
    again = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
                      "/BATCH_RESUME", f"/OUTBOX={outbox}")
    assert handler.received == []  # the outbox sends it, never the batch again
    assert again.exit_code == ExitCode.PARTIAL


# -- a real process, killed and resumed --------------------------------------------------------

class SlowHandler(RecordingHandler):
    """Accepts each message, then answers after `delay`; `slow_subject` waits `slow` seconds
    after its final dot, so that a kill lands between the dot and the answer."""

    def __init__(self, delay: float, slow_subject: str, slow: float) -> None:
        super().__init__()
        self.delay, self.slow_subject, self.slow = delay, slow_subject, slow
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)  # delivered from here on
        subject = str(parse(self.received[-1].data)["Subject"])
        await asyncio.sleep(self.slow if subject == self.slow_subject else self.delay)
        return reply


def smail_process(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LANG": "C", "PYTHONPATH": str(ROOT)}
    env.pop("SMAIL_LANG", None)
    return subprocess.Popen([sys.executable, "-m", "smail", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_kill_9_then_resume_delivers_each_row_exactly_once(smtpd, tmp_path):
    count = 12
    handler = SlowHandler(0.05, "Facture 0006 pour Client n°6", 3.0)
    server = smtpd(handler)
    rows = invoices(tmp_path, count)
    results = tmp_path / "results.csv"
    args = (*server.options, *COMMON, "/BODY=Bonjour {{ customer }}", f"/BATCH={rows}", f"/BATCH_RESULT={results}",
            "/TIMEOUT=20")
    first = smail_process(*args)
    # Row 7 holds invoice 6: kill once its end went out, while the server takes its time.
    wait_for(lambda: results.exists() and "\n7,sending," in results.read_text(encoding="utf-8-sig"))
    time.sleep(0.2)
    first.kill()  # SIGKILL; TerminateProcess on Windows
    first.wait()
    assert last_status(results)[7] == "sending"
    second = smail_process(*args, "/BATCH_RESUME")
    out, err = second.communicate(timeout=300)
    assert second.returncode == ExitCode.PARTIAL, err
    assert b"1 may have been sent" in err
    delivered = subjects(handler.received)
    assert delivered == Counter({f"Facture {n:04d} pour Client n°{n}": 1 for n in range(1, count + 1)})
    statuses = last_status(results)
    assert statuses.pop(7) == "may-have-been-sent"
    assert set(statuses.values()) == {"sent"} and len(statuses) == count - 1


def test_killed_at_random_moments_and_resumed_never_sends_a_row_twice(smtpd, tmp_path):
    count = 30
    handler = SlowHandler(0.03, "none", 0)
    server = smtpd(handler)
    rows = invoices(tmp_path, count)
    results = tmp_path / "results.csv"
    args = (*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    for delay in (0.45, 0.3, 0.37, 0.52):
        process = smail_process(*args)
        time.sleep(delay)
        process.kill()  # SIGKILL; TerminateProcess on Windows
        process.wait()
    final = smail_process(*args)
    final.communicate(timeout=300)
    delivered = subjects(handler.received)
    statuses = last_status(results)
    uncertain = {n for n in range(1, count + 1) if statuses[n + 1] == "may-have-been-sent"}
    # Where the kills land is chance: exit 11 when one of them left a row may-have-been-sent.
    assert final.returncode == (ExitCode.PARTIAL if uncertain else ExitCode.OK)
    for n in range(1, count + 1):
        copies = delivered[f"Facture {n:04d} pour Client n°{n}"]
        assert copies == 1 or (n in uncertain and copies == 0), (n, copies, statuses[n + 1])
    assert set(statuses.values()) <= {"sent", "may-have-been-sent"}


class HeldHandler(RecordingHandler):
    """Takes each message, then answers only once `release` is set (or after five minutes)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.to_thread(self.release.wait, 300)
        return reply


def test_two_processes_on_one_results_file_never_both_send(smtpd, tmp_path):
    handler = HeldHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 10)
    results = tmp_path / "results.csv"
    args = (*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    first = smail_process(*args)
    wait_for(lambda: results.exists() and "sending" in results.read_text(encoding="utf-8-sig"))
    second = smail_process(*args, "/BATCH_RESUME")  # the first is held on its first row's answer
    try:
        _out, err = second.communicate(timeout=300)
    finally:
        handler.release.set()
    assert second.returncode == ExitCode.ERROR and b"another SMail run" in err
    first.communicate(timeout=300)
    assert first.returncode == ExitCode.OK
    assert len(handler.received) == 10


# -- Microsoft Graph ---------------------------------------------------------------------------

@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=SECRET, mailboxes={SENDER})


def graph_options(microsoft: FakeMicrosoft, ca: Path) -> list[str]:
    return ["/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-id-1", f"/O365_SECRET={SECRET}",
            f"/GRAPH_SENDER={SENDER}", f"/O365_AUTHORITY_HOST={microsoft.authority}",
            f"/GRAPH_ENDPOINT={microsoft.graph}", f"/CA_FILE={ca}"]


def test_graph_batch_with_429s_sends_every_row_once(microsoft, tls_ca, run_smail, tmp_path):
    microsoft.fail(r"/sendMail$", 429, times=4, headers={"Retry-After": "1"})
    rows = invoices(tmp_path, 12)
    body = tmp_path / "Mail.html"
    body.write_text("<p>Bonjour {{ customer }}</p>\n", encoding="utf-8")
    results = tmp_path / "results.csv"
    result = run_smail(*graph_options(microsoft, tls_ca.pem), "/SUBJECT=Facture {{ number }}", f"/BODY_FILE={body}",
                       f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/RETRY=4", "/RETRY_DELAY=1",
                       env={"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"})
    assert result.exit_code == ExitCode.OK, result.stderr
    assert Counter(s.message["subject"] for s in microsoft.sent) == Counter(
        {f"Facture {n:04d}": 1 for n in range(1, 13)})
    sent = {s.message["toRecipients"][0]["emailAddress"]["address"]: s.message for s in microsoft.sent}
    assert "Bonjour Client n°7" in sent["client7@test.test"]["body"]["content"]
    [pdf] = sent["client7@test.test"]["attachments"]
    assert pdf["name"] == "FAC-0007.pdf"
    assert set(last_status(results).values()) == {"sent"}
    assert len([r for r in microsoft.requests if r[1].endswith("/sendMail")]) == 16  # 12 + 4 throttled


def test_graph_batch_keeps_four_requests_in_flight(microsoft, tls_ca, run_smail, tmp_path):
    # The fake answers sendMail only once four are waiting: a batch that sent one at a time
    # would show max_in_flight 1, one with more workers than Microsoft's limit more than 4.
    microsoft.gate(r"/sendMail$", together=4)
    rows = invoices(tmp_path, 8, pdf=False)
    result = run_smail(*graph_options(microsoft, tls_ca.pem), "/SUBJECT={{ number }}", "/BODY=x", f"/BATCH={rows}",
                       "/TIMEOUT=300", env={"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"})
    assert microsoft.max_in_flight == 4
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 8


def test_the_example_batch(smtpd, run_smail, tmp_path):
    example = ROOT / "examples" / "batch"
    handler = RecordingHandler()
    server = smtpd(handler)
    results = tmp_path / "resultats.csv"
    result = run_smail(*server.options, "/FROM_NAME=Service comptabilité", "/FROM_ADDR=factures@example.com",
                       "/SUBJECT=Facture {{ number }}", f"/BODY_FILE={example / 'Facture.html'}",
                       f"/BATCH={example / 'factures.csv'}", f"/BATCH_RESULT={results}", "/BATCH_RESUME",
                       "/RATE=30/S")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Batch: 3 sent; see {results}.\n"
    by_subject = {str(parse(r.data)["Subject"]): parse(r.data) for r in handler.received}
    assert sorted(by_subject) == ["Facture FAC-2026-0301", "Facture FAC-2026-0302", "Facture FAC-2026-0303"]
    message = by_subject["Facture FAC-2026-0303"]
    assert message["To"] == "achats@brasserie-du-port.example"
    html = message.get_body(("html",)).get_content()
    assert "Bonjour Brasserie du Port &amp; Fils," in html and "420,00 €" in html
    assert "Bonjour Brasserie du Port & Fils," in message.get_body(("plain",)).get_content()
    [pdf] = message.iter_attachments()
    assert pdf.get_content() == (example / "factures" / "FAC-2026-0303.pdf").read_bytes()
    assert str(by_subject["Facture FAC-2026-0302"]["To"]) == "Mme Zoé Lefèvre <zoe.lefevre@example.org>"
    handler.received.clear()
    again = run_smail(*server.options, "/FROM_ADDR=factures@example.com", "/SUBJECT=Facture {{ number }}",
                      f"/BODY_FILE={example / 'Facture.html'}", f"/BATCH={example / 'factures.csv'}",
                      f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    assert again.exit_code == ExitCode.OK and handler.received == []
    assert again.stdout == f"Batch: 3 skipped (already sent); see {results}.\n"


def test_a_variable_cannot_inject_a_header_through_the_subject(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = write_csv(tmp_path / "rows.csv", ["TO", "n"], [["a@test.test", "1"], ["b@test.test", "2\r\nBcc: evil@test.test"]])
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT=Facture {{ n }}", "/BODY=x", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr.startswith("Row 3: Invalid value") and "/SUBJECT" in result.stderr
    assert handler.received == []


def test_header_only_sends_nothing_and_succeeds(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = write_csv(tmp_path / "rows.csv", ["TO", "n"], [])
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/BODY=x", f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK
    assert result.stdout == f"{rows} has no rows: nothing was sent.\n"
    assert handler.helo_names == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full is Linux")
def test_results_file_that_cannot_be_written_stops_before_sending(smtpd, run_smail, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 2)
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", "/BATCH_RESULT=/dev/full")
    assert result.exit_code == ExitCode.ERROR
    assert "/dev/full could not be written" in result.stderr
    assert handler.received == []


def test_a_sending_line_that_cannot_be_written_aborts_that_message_and_stops(smtpd, run_smail, tmp_path, monkeypatch):
    from smail.batch.results import ResultsFile

    handler = RecordingHandler()
    server = smtpd(handler)
    rows = invoices(tmp_path, 5)
    results = tmp_path / "results.csv"
    real_record = ResultsFile.record
    calls = Counter()

    def record(self: Any, row: int, status: str, **facts: Any) -> None:
        calls[status] += 1
        if status == "sending" and calls[status] == 2:
            raise OSError(28, "No space left on device")
        real_record(self, row, status, **facts)
    monkeypatch.setattr(ResultsFile, "record", record)
    result = run_smail(*server.options, *COMMON, "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.PARTIAL
    assert [r.rcpt_tos for r in handler.received] == [["client1@test.test"]]  # row 3 never got its final dot
    assert "No space left on device" in result.stderr and "3 not sent" in result.stderr
    # Row 3 was stopped by the full disk, not refused by the server.
    assert last_status(results) == {2: "sent", 3: "failed", 4: "not-sent", 5: "not-sent", 6: "not-sent"}


def test_server_down_with_an_outbox_keeps_every_row_and_flush_delivers_them_once(smtpd, run_smail, tmp_path):
    rows = invoices(tmp_path, 4)
    results, outbox = tmp_path / "results.csv", tmp_path / "outbox"
    down = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", *COMMON, "/BODY=x", f"/BATCH={rows}",
                     f"/BATCH_RESULT={results}", f"/OUTBOX={outbox}", "/TIMEOUT=3")
    assert down.exit_code == ExitCode.QUEUED, down.stderr
    assert last_status(results) == {2: "queued", 3: "queued", 4: "queued", 5: "queued"}
    handler = RecordingHandler()
    server = smtpd(handler)
    flushed = run_smail(*server.options, "/FLUSH", f"/OUTBOX={outbox}")
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    subjects = sorted(str(parse(r.data)["Subject"]) for r in handler.received)
    assert len(subjects) == 4 and len(set(subjects)) == 4
