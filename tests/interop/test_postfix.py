"""The product sheet's SMTP examples against a real Postfix (+ Dovecot SASL) on 127.0.0.1,
checking what Postfix delivered byte for byte."""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smime_certs import PASSWORD

pytestmark = pytest.mark.interop
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def subject(request) -> str:
    """A subject unique to the test, to find its message among everything delivered."""
    return f"SMail interop {uuid.uuid4().hex[:12]}"  # short enough to stay unencoded


@pytest.fixture
def delivered(postfix, subject):
    def find(count: int = 1, recipient: str = "client@smail.test") -> list[bytes]:
        return postfix.wait_for(subject.encode(), recipient, count)
    return find


def as_sent(delivered: bytes) -> bytes:
    """What SMail sent: Postfix prepends Return-Path, Delivered-To and Received, and stores LF."""
    start = delivered.index(b"\nFrom: ") + 1
    return delivered[start:]


def parse(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_simple_smtp(postfix, delivered, subject, run_smail, files, tmp_path):
    body = files("Msg.txt", "Bonjour,\n.ligne avec un point\nMerci.\n")
    eml = tmp_path / "sent.eml"
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/FROM_NAME=Albert",
                       "/FROM_ADDR=albert@demo.test", "/TO=client@smail.test", f"/SUBJECT={subject}",
                       f"/BODY_FILE={body}", f"/SAVE_EML={eml}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "queued as" in result.stdout
    [message] = delivered()
    assert as_sent(message) == eml.read_bytes().replace(b"\r\n", b"\n")
    assert b"Delivered-To: client@smail.test" in message


def test_attachments_and_priority(postfix, delivered, subject, run_smail, files, tmp_path):
    body = files("Mail.txt", "Veuillez trouver la facture ci-jointe.\n")
    eml = tmp_path / "sent.eml"
    result = run_smail("/MODE=SMTP", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}",
                       "/FROM_NAME=Albert Dupont", "/FROM_ADDR=albert@demo.test", "/TO=client@smail.test",
                       f"/SUBJECT={subject}", f"/BODY_FILE={body}",
                       f"/ATTACH={EXAMPLES / 'Offre2026.pdf'},{EXAMPLES / 'Conditions.pdf'}",
                       "/PRIORITY=HIGH", f"/SAVE_EML={eml}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [message] = delivered()
    assert as_sent(message) == eml.read_bytes().replace(b"\r\n", b"\n")
    parsed = parse(message)
    assert parsed["X-Priority"] == "2 (High)"
    assert [p.get_content() for p in parsed.iter_attachments()] == [
        (EXAMPLES / "Offre2026.pdf").read_bytes(), (EXAMPLES / "Conditions.pdf").read_bytes()]


def test_html_inline_attachments_receipts_over_sasl_starttls_tls12(postfix, delivered, subject, run_smail, tmp_path):
    eml = tmp_path / "sent.eml"
    result = run_smail("/MODE=SMTP", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}",
                       "/AUTH_TYPE=SASL", "/SSL_VERSION=TLSV1_2", f"/CA_FILE={postfix.ca_file}",
                       "/SMTP_USERNAME=james@smail.test", "/SMTP_PASSWORD=Secret123",
                       "/FROM_NAME=KoXo Support", "/FROM_ADDR=james@smail.test", "/TO=client@smail.test",
                       f"/SUBJECT={subject}", f"/BODY_FILE={EXAMPLES / 'Mail.html'}",
                       f"/INLINE={EXAMPLES / 'logo.png'},{EXAMPLES / 'banner.jpg'}",
                       f"/ATTACH={EXAMPLES / 'Offre2026.pdf'},{EXAMPLES / 'Conditions.pdf'}",
                       "/READ_ACK", "/RECEPTION_ACK", f"/SAVE_EML={eml}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "TLSv1." in result.stdout
    assert "C: AUTH PLAIN ****" in result.log and "Secret123" not in result.output
    assert "NOTIFY=SUCCESS,FAILURE" in result.log and "RET=HDRS" in result.log  # Postfix offers DSN
    [message] = delivered()
    assert as_sent(message) == eml.read_bytes().replace(b"\r\n", b"\n")
    parsed = parse(message)
    related = [p for p in parsed.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1 and [p["Content-ID"] for p in related[0].iter_parts()][1:] == ["<logo.png>", "<banner.jpg>"]
    assert parsed["Disposition-Notification-To"] == "KoXo Support <james@smail.test>"
    assert b"(Authenticated sender: james@smail.test)" in message
    # Postfix honoured NOTIFY=SUCCESS: its delivery report reaches the sender's mailbox.
    [report] = delivered(recipient="james@smail.test")  # RET=HDRS: it quotes our Subject
    assert parse(report).get_content_type() == "multipart/report"
    assert b"Action: delivered" in report


def test_office365_style_sasl_with_sender_from_username(postfix, delivered, subject, run_smail):
    result = run_smail("/MODE=SMTP", "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}",
                       "/AUTH_TYPE=SASL", "/SSL_VERSION=TLSV1_2", f"/CA_FILE={postfix.ca_file}",
                       "/SMTP_USERNAME=user@smail.test", "/SMTP_PASSWORD=pässwörd", "/TO=client@smail.test",
                       f"/SUBJECT={subject}",
                       f"/BODY_FILE={EXAMPLES / 'Mail.html'}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [message] = delivered()
    assert parse(message)["From"] == "user@smail.test"


def test_implicit_tls(postfix, delivered, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtps_port}", "/SSL_MODE=IMPLICIT",
                       f"/CA_FILE={postfix.ca_file}", "/SMTP_USERNAME=james@smail.test",
                       "/SMTP_PASSWORD=Secret123", "/TO=client@smail.test", "/BODY=implicit",
                       f"/SUBJECT={subject}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "TLSv1." in result.stdout
    [message] = delivered()
    assert parse(message).get_content().strip() == "implicit"


def test_wrong_password_exits_4(postfix, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}", "/AUTH_TYPE=SASL",
                       "/SSL_VERSION=TLSV1_2", f"/CA_FILE={postfix.ca_file}", "/SMTP_USERNAME=james@smail.test",
                       "/SMTP_PASSWORD=wrong-one", "/TO=client@smail.test", "/BODY=x")
    assert result.exit_code == ExitCode.AUTH
    assert "535" in result.stderr and "wrong-one" not in result.output


def test_no_tls_means_no_auth_on_postfix(postfix, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/SMTP_USERNAME=james@smail.test",
                       "/SMTP_PASSWORD=Secret123", "/TO=client@smail.test", "/BODY=x")
    assert result.exit_code == ExitCode.AUTH
    assert "/SSL_VERSION=TLSV1_2" in result.stderr


def test_smtputf8_recipient(postfix, delivered, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/FROM_ADDR=albert@demo.test",
                       "/TO=Jürgen <jürgen@smail.test>", "/BODY=utf8",
                       f"/SUBJECT={subject}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [message] = delivered(recipient="jürgen@smail.test")
    assert "jürgen@smail.test".encode() in message


def test_unknown_recipient_domain_is_refused_and_nothing_sent(postfix, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}", "/SSL_VERSION=TLSV1_2",
                       f"/CA_FILE={postfix.ca_file}", "/AUTH_TYPE=NONE", "/FROM_ADDR=albert@demo.test",
                       "/TO=client@smail.test", "/BODY=x")
    assert result.exit_code == ExitCode.SEND
    assert "client@smail.test: 554 5.7.1" in result.stderr


def test_signed_and_encrypted_message_as_postfix_delivered_it(postfix, delivered, subject, run_smail, pki, tmp_path):
    sender = pki.ca.issue("albert", "albert@demo.test")
    client = pki.ca.issue("client-smail", "client@smail.test")
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/FROM_ADDR=albert@demo.test",
                       "/TO=client@smail.test", f"/SUBJECT={subject}", "/BODY=Bulletin de paie, été.",
                       f"/SIGN_CERT={sender.pfx}", f"/SIGN_CERT_PASSWORD={PASSWORD}", f"/ENCRYPT_TO={client.pem}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [message] = delivered()
    assert parse(message).get_content_type() == "application/pkcs7-mime"
    openssl = shutil.which("openssl")
    if openssl is None:
        return
    stored = tmp_path / "delivered.eml"
    stored.write_bytes(as_sent(message).replace(b"\n", b"\r\n"))  # Postfix stores LF line ends
    decrypted = tmp_path / "decrypted.eml"
    subprocess.run([openssl, "cms", "-decrypt", "-in", stored, "-recip", client.pem, "-inkey", client.key,
                    "-out", decrypted], check=True, capture_output=True, timeout=60)
    verified = subprocess.run([openssl, "cms", "-verify", "-in", decrypted, "-CAfile", pki.ca.pem, "-purpose",
                               "smimesign"], capture_output=True, timeout=60)
    assert verified.returncode == 0, verified.stderr.decode()
    assert "Bulletin de paie" in parse(verified.stdout).get_content()
