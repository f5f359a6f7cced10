"""/BATCH against a real Postfix (+ Dovecot SASL): every row delivered once, with its own
attachment, over one authenticated STARTTLS session; a resumed run sends nothing again."""

from __future__ import annotations

import csv
import email
import email.policy
import re
import uuid
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.interop import servers as interop

pytestmark = pytest.mark.interop
ROWS = 25


def sessions(postfix: interop.Servers) -> list[str]:
    """Postfix's summary of each SMTP session that sent mail ("disconnect from ... mail=25 ...")."""
    log = Path(postfix.folder) / "postfix.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return re.findall(r"smtpd\[\d+\]: disconnect from .* (ehlo=.* mail=.*)", text)


def batch_folder(tmp_path: Path, marker: str) -> Path:
    folder = tmp_path / "export"
    (folder / "pdf").mkdir(parents=True)
    rows = []
    for n in range(1, ROWS + 1):
        (folder / "pdf" / f"F{n:03d}.pdf").write_bytes(b"%PDF-1.4\n% " + f"{marker} {n}".encode() + b"\n%%EOF\n")
        rows.append([f"client{n}@smail.test", f"Client {n}", f"{n:03d}", f"pdf/F{n:03d}.pdf"])
    with (folder / "rows.csv").open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, delimiter=";")
        writer.writerow(["TO", "customer", "number", "ATTACH"])
        writer.writerows(rows)
    return folder / "rows.csv"


def test_batch_over_one_authenticated_starttls_session(postfix, run_smail, tmp_path):
    marker = f"SMail batch {uuid.uuid4().hex[:10]}"
    rows = batch_folder(tmp_path, marker)
    results = tmp_path / "results.csv"
    options = ("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}", "/AUTH_TYPE=SASL",
               "/SSL_VERSION=TLSV1_2", f"/CA_FILE={postfix.ca_file}", "/SMTP_USERNAME=james@smail.test",
               "/SMTP_PASSWORD=Secret123", "/FROM_ADDR=james@smail.test",
               f"/SUBJECT={marker} {{{{ number }}}}", "/BODY=Bonjour {{ customer }},\nvoici la facture {{ number }}.",
               f"/BATCH={rows}", f"/BATCH_RESULT={results}", "/BATCH_RESUME")
    before = len(sessions(postfix))
    result = run_smail(*options)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Batch: {ROWS} sent; see {results}.\n"
    assert result.log.count("C: AUTH PLAIN ****") == 1 and "Secret123" not in result.output
    for n in (1, 13, ROWS):
        [delivered] = postfix.wait_for(f"{marker} {n:03d}".encode(), f"client{n}@smail.test")
        message = email.message_from_bytes(delivered, policy=email.policy.default)
        assert message.get_body(("plain",)).get_content().startswith(f"Bonjour Client {n},")
        [pdf] = message.iter_attachments()
        assert pdf.get_filename() == f"F{n:03d}.pdf"
        assert pdf.get_content() == (rows.parent / "pdf" / f"F{n:03d}.pdf").read_bytes()
        assert b"(Authenticated sender: james@smail.test)" in delivered
    every = [m for m in postfix.delivered() if marker.encode() in m]
    assert len(every) == ROWS  # each row once
    # One session: one EHLO before and one after STARTTLS, one AUTH, RSET between messages.
    assert sessions(postfix)[before:] == [
        f"ehlo=2 starttls=1 auth=1 mail={ROWS} rcpt={ROWS} data={ROWS} rset={ROWS - 1} quit=1 commands={4 * ROWS + 4}"]
    queue_ids = {line[4].rsplit(" ", 1)[-1] for line in csv.reader(results.read_text("utf-8-sig").splitlines())
                 if len(line) > 4 and line[1] == "sent"}
    assert len(queue_ids) == ROWS  # Postfix's "250 2.0.0 Ok: queued as ..." per row

    again = run_smail(*options)
    assert again.exit_code == ExitCode.OK
    assert again.stdout == f"Batch: {ROWS} skipped (already sent); see {results}.\n"
    assert len([m for m in postfix.delivered() if marker.encode() in m]) == ROWS


def test_a_row_over_the_servers_size_limit_is_refused_and_the_others_delivered(postfix, run_smail, tmp_path):
    marker = f"SMail batch {uuid.uuid4().hex[:10]}"
    with (tmp_path / "huge.bin").open("wb") as huge:
        huge.truncate(60 * 1024 * 1024)  # over Postfix's message_size_limit (50 MB), sparse
    (tmp_path / "small.pdf").write_bytes(b"%PDF-1.4 small")
    rows = tmp_path / "rows.csv"
    rows.write_text("to,n,attach\nclient1@smail.test,1,small.pdf\nclient2@smail.test,2,huge.bin\n"
                    "client3@smail.test,3,small.pdf\n", encoding="utf-8")
    results = tmp_path / "results.csv"
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/FROM_ADDR=albert@demo.test",
                       f"/SUBJECT={marker} {{{{ n }}}}", "/BODY=x", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert "Batch: 2 sent, 1 refused" in result.stderr
    postfix.wait_for(f"{marker} 1".encode(), "client1@smail.test")
    postfix.wait_for(f"{marker} 3".encode(), "client3@smail.test")
    assert not [m for m in postfix.delivered() if f"{marker} 2".encode() in m]
    statuses = {line[0]: line[1] for line in csv.reader(results.read_text("utf-8-sig").splitlines())}
    assert statuses == {"row": "status", "2": "sent", "3": "refused", "4": "sent"}
