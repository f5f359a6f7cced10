"""GraphTransport and the token path against the local fake of the identity platform and
Graph (tests/fakes/microsoft.py): what Graph received, exit codes, messages, secrets."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from smail.errors import ExitCode
from tests.cli.test_smime import OPENSSL, decrypt, verify
from tests.fakes.microsoft import App
from tests.smime_certs import PASSWORD
from tests.smtpd import RecordingHandler

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SENDER = "user@domaine.test"
SECRET = "Sjp~Q8a.secret-value-1234567890"


@pytest.fixture
def microsoft(start_microsoft):
    return start_microsoft(secret=SECRET, mailboxes={SENDER})


@pytest.fixture
def graph(microsoft, tls_ca, run_smail):
    """Run SMail in Graph mode against the fake; extra options override the defaults."""
    def run(*extra: str, secret: bool = True, env: dict[str, str] | None = None):
        options = ["/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-id-1",
                   f"/GRAPH_SENDER={SENDER}", "/TO=Client <client@test.test>", "/SUBJECT=Démonstration",
                   f"/O365_AUTHORITY_HOST={microsoft.authority}", f"/GRAPH_ENDPOINT={microsoft.graph}",
                   f"/CA_FILE={tls_ca.pem}"]
        if secret:
            options.append(f"/O365_SECRET={SECRET}")
        if not any(e.startswith(("/BODY=", "/BODY_FILE=")) for e in extra):
            options.append("/BODY=Bonjour")
        environment = {"LANG": "C", "NO_PROXY": "127.0.0.1,localhost", **(env or {})}
        return run_smail(*options, *extra, env=environment)
    return run


def self_signed(name: str = "smail-app") -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    return key, cert


def test_seed_graph_example_with_inline_image_and_attachment(graph, microsoft):
    result = graph(f"/BODY_FILE={EXAMPLES / 'Mail.html'}", f"/INLINE={EXAMPLES / 'logo.png'},{EXAMPLES / 'banner.jpg'}",
                   f"/ATTACH={EXAMPLES / 'Offre2026.pdf'}", "/CC=copie@test.test", "/BCC=cache@test.test",
                   "/REPLY_TO=support@domaine.test", "/PRIORITY=HIGH", "/READ_ACK", "/RECEPTION_ACK",
                   "/HEADER=X-ERP-Document: FAC-032026", "/LOG_LEVEL=INFO")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Message sent to 3 recipients via Microsoft Graph as {SENDER}.\n"
    [sent] = microsoft.sent
    message = sent.message
    assert sent.mailbox == SENDER and sent.save_to_sent is True and not sent.through_draft
    assert message["subject"] == "Démonstration"
    assert message["body"]["contentType"] == "html" and "pièce jointe" in message["body"]["content"]
    assert message["toRecipients"] == [{"emailAddress": {"address": "client@test.test", "name": "Client"}}]
    assert message["ccRecipients"][0]["emailAddress"]["address"] == "copie@test.test"
    assert message["bccRecipients"][0]["emailAddress"]["address"] == "cache@test.test"
    assert message["replyTo"][0]["emailAddress"]["address"] == "support@domaine.test"
    assert message["importance"] == "high"
    assert message["isReadReceiptRequested"] is True and message["isDeliveryReceiptRequested"] is True
    assert message["internetMessageHeaders"] == [{"name": "X-ERP-Document", "value": "FAC-032026"}]
    inline = {a["name"]: a for a in message["attachments"] if a.get("isInline")}
    assert inline["logo.png"]["contentId"] == "logo.png" and "cid:logo.png" in message["body"]["content"]
    assert base64.b64decode(inline["banner.jpg"]["contentBytes"]) == (EXAMPLES / "banner.jpg").read_bytes()
    [pdf] = [a for a in message["attachments"] if not a.get("isInline")]
    assert pdf["contentType"] == "application/pdf"
    assert base64.b64decode(pdf["contentBytes"]) == (EXAMPLES / "Offre2026.pdf").read_bytes()
    assert "Access token obtained" in result.log and "sendMail: 202 (request-id" in result.log


def test_from_addr_other_than_the_mailbox_sets_from(graph, microsoft):
    result = graph("/FROM_ADDR=factures@domaine.test", "/FROM_NAME=Service Factures")
    assert result.exit_code == ExitCode.OK, result.stderr
    [sent] = microsoft.sent
    assert sent.message["from"] == {"emailAddress": {"address": "factures@domaine.test", "name": "Service Factures"}}
    graph()
    assert "from" not in microsoft.sent[1].message  # the mailbox itself: no SendAs needed


def test_ansi_text_body_and_no_headers_property(graph, microsoft):
    result = graph(f"/BODY_FILE={ROOT / 'tests' / 'golden' / 'notepad_ansi.txt'}", "/SAVE_TO_SENT=NO")
    assert result.exit_code == ExitCode.OK, result.stderr
    [sent] = microsoft.sent
    assert sent.message["body"]["contentType"] == "text"
    assert "1 250,00 € — réglée" in sent.message["body"]["content"]
    assert "internetMessageHeaders" not in sent.message and "attachments" not in sent.message
    assert sent.save_to_sent is False


@pytest.mark.parametrize("form", ["pfx", "pem"])
def test_certificate_credential(graph, microsoft, tmp_path, form):
    key, cert = self_signed()
    microsoft.register(App("app-id-cert", certificate=cert, mailboxes={SENDER}))
    if form == "pfx":
        path = tmp_path / "app.pfx"
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            b"smail", key, cert, None, serialization.BestAvailableEncryption(b"Pfx-Passw0rd")))
    else:
        path = tmp_path / "app.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"Pfx-Passw0rd"))
                         + cert.public_bytes(serialization.Encoding.PEM))
    result = graph("/O365_APP_ID=app-id-cert", f"/O365_CERT_FILE={path}", "/O365_CERT_PASSWORD=Pfx-Passw0rd",
                   secret=False)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 1
    assert "Pfx-Passw0rd" not in result.output


def test_certificate_not_registered_exits_4(graph, microsoft, tmp_path):
    _key, registered = self_signed("registered")
    other_key, other = self_signed("other")
    microsoft.register(App("app-id-cert", certificate=registered, mailboxes={SENDER}))
    path = tmp_path / "other.pem"
    path.write_bytes(other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()) + other.public_bytes(serialization.Encoding.PEM))
    result = graph("/O365_APP_ID=app-id-cert", f"/O365_CERT_FILE={path}", secret=False)
    assert result.exit_code == ExitCode.AUTH
    assert "certificate is not registered" in result.stderr and "AADSTS700027" in result.stderr


def test_wrong_pfx_password_exits_4(graph, microsoft, tmp_path):
    key, cert = self_signed()
    path = tmp_path / "app.pfx"
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"x", key, cert, None,
                                                           serialization.BestAvailableEncryption(b"right")))
    result = graph(f"/O365_CERT_FILE={path}", "/O365_CERT_PASSWORD=wrong", secret=False)
    assert result.exit_code == ExitCode.AUTH
    assert "could not be used" in result.stderr


@pytest.mark.parametrize("options, cause", [
    (["/O365_TENANT_ID=no-such-tenant"], "tenant no-such-tenant does not exist"),
    (["/O365_APP_ID=unknown-app"], "application unknown-app is not registered"),
    (["/O365_SECRET=the-secret-id-not-its-value"], "client secret is wrong"),
])
def test_token_refusals_name_the_probable_cause(graph, options, cause):
    result = graph(*options)
    assert result.exit_code == ExitCode.AUTH
    assert cause in result.stderr


def test_expired_secret(graph, microsoft):
    microsoft.tenants[microsoft.tenant]["app-id-1"].secret_expired = True
    result = graph()
    assert result.exit_code == ExitCode.AUTH and "has expired" in result.stderr and "7000222" in result.stderr


def test_mailbox_the_app_may_not_use_exits_4(graph, microsoft):
    result = graph("/GRAPH_SENDER=ceo@domaine.test")
    assert result.exit_code == ExitCode.AUTH
    assert "403 ErrorAccessDenied" in result.stderr and "Mail.Send" in result.stderr
    assert microsoft.sent == []


@pytest.mark.parametrize("status, code, exit_code", [
    (400, "ErrorInvalidRecipients", ExitCode.SEND),
    (403, "ErrorSendAsDenied", ExitCode.SEND),
    (404, "MailboxNotEnabledForRESTAPI", ExitCode.SEND),
    (401, "InvalidAuthenticationToken", ExitCode.AUTH),
])
def test_graph_refusals(graph, microsoft, status, code, exit_code):
    microsoft.fail(r"/sendMail$", status, error={"error": {"code": code, "message": f"{code} text."}})
    result = graph()
    assert result.exit_code == exit_code
    assert f"{status} {code}: {code} text." in result.stderr


def test_429_with_retry_after_is_retried(graph, microsoft):
    microsoft.fail(r"/sendMail$", 429, headers={"Retry-After": "1"})
    result = graph("/RETRY=2")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "next attempt in 1 s" in result.log and len(microsoft.sent) == 1


def test_503_with_http_date_retry_after_then_6(graph, microsoft):
    microsoft.fail(r"/sendMail$", 503, times=3, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    result = graph("/RETRY=3")
    assert result.exit_code == ExitCode.RETRY_EXCEEDED
    assert "after 3 attempts" in result.stderr and "503" in result.stderr
    single = graph()
    assert single.exit_code == ExitCode.OK


def test_single_attempt_429_exits_5(graph, microsoft):
    microsoft.fail(r"/sendMail$", 429, headers={"Retry-After": "1"})
    assert graph().exit_code == ExitCode.SEND


def test_token_endpoint_503_is_retried_despite_msal_cache(graph, microsoft):
    microsoft.fail(r"/oauth2/v2\.0/token$", 503, headers={"Retry-After": "1"},
                   error={"error": "temporarily_unavailable", "error_description": "AADSTS90033: busy"})
    result = graph("/RETRY=2")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 1


def test_read_timeout_after_sending_is_not_retried(graph, microsoft):
    microsoft.stall(r"/sendMail$", 3)
    result = graph("/TIMEOUT=1", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND
    assert "it may have been sent" in result.stderr and "Sent Items" in result.stderr
    assert sum(1 for m, p, _h in microsoft.requests if p.endswith("/sendMail")) == 1


def test_connection_refused_exits_3(graph):
    result = graph("/GRAPH_ENDPOINT=https://127.0.0.1:1", "/O365_AUTHORITY_HOST=https://127.0.0.1:1")
    assert result.exit_code == ExitCode.CONNECT
    assert "Cannot connect to 127.0.0.1:1" in result.stderr


def test_unknown_ca_exits_3(graph, tmp_path):
    other = tmp_path / "other-ca.pem"
    import trustme
    trustme.CA().cert_pem.write_to_path(str(other))
    result = graph(f"/CA_FILE={other}")
    assert result.exit_code == ExitCode.CONNECT
    assert "TLS connection" in result.stderr and "/CA_FILE" in result.stderr


def test_ca_file_wins_over_requests_ca_bundle(graph, microsoft, tmp_path, monkeypatch):
    import trustme
    wrong = tmp_path / "wrong.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong))
    # requests reads these from the process environment and lets them replace a session's verify.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(wrong))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(wrong))
    result = graph()
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 1


def test_proxy_option_is_used(graph):
    result = graph("/PROXY=http://127.0.0.1:1")
    assert result.exit_code == ExitCode.CONNECT
    assert "proxy" in result.stderr.lower()


@pytest.mark.parametrize("headers, text", [
    (["/HEADER=In-Reply-To: <a@b>"], "only custom headers whose name starts with X-"),
    ([f"/HEADER=X-H{i}: v" for i in range(6)], "at most 5 custom headers; 6 were given"),
])
def test_graph_header_rules_exit_2(graph, microsoft, headers, text):
    result = graph(*headers)
    assert result.exit_code == ExitCode.PARAM
    assert text in result.stderr
    assert microsoft.requests == []


def big_file(path: Path, size: int) -> Path:
    block = hashlib.sha256(b"seed").digest() * 2048
    with path.open("wb") as stream:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            stream.write(piece)
            written += len(piece)
    return path


def test_20_mb_attachment_through_upload_session_with_flat_memory(graph, microsoft, tmp_path):
    big = big_file(tmp_path / "archive.zip", 20 * 1024 * 1024 + 123)
    small = tmp_path / "note.txt"
    small.write_text("petite pièce jointe")
    tracemalloc.start()
    try:
        result = graph(f"/ATTACH={big},{small}", f"/BODY_FILE={EXAMPLES / 'Mail.html'}",
                       f"/INLINE={EXAMPLES / 'logo.png'}")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == ExitCode.OK, result.stderr
    [sent] = microsoft.sent
    assert sent.through_draft
    [upload] = sent.uploads
    assert upload["name"] == "archive.zip" and upload["size"] == big.stat().st_size
    assert upload["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert all(end - start + 1 <= 4 * 1024 * 1024 for start, end in upload["chunks"])
    assert {a["name"] for a in sent.message["attachments"]} == {"note.txt", "logo.png"}
    assert microsoft.max_request <= 4_000_000
    puts = [h for m, _p, h in microsoft.requests if m == "PUT"]
    assert puts and not any("Authorization" in h for h in puts)
    assert peak < 16 * 1024 * 1024  # the client and the in-process fake together, for a 20 MB file
    assert "authtoken" not in result.log.replace("authtoken=****", "")


def test_large_inline_image_through_upload_session(graph, microsoft, tmp_path):
    image = big_file(tmp_path / "photo.png", 4 * 1024 * 1024)
    html = tmp_path / "page.html"
    html.write_text('<p><img src="cid:photo.png"></p>', encoding="utf-8")
    result = graph(f"/BODY_FILE={html}", f"/INLINE={image}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [upload] = microsoft.sent[0].uploads
    assert upload["isInline"] is True and upload["contentId"] == "photo.png"


def test_draft_path_without_mail_readwrite(graph, microsoft, tmp_path):
    microsoft.tenants[microsoft.tenant]["app-id-1"].read_write = False
    big = big_file(tmp_path / "big.bin", 5 * 1024 * 1024)
    result = graph(f"/ATTACH={big}")
    assert result.exit_code == ExitCode.AUTH
    assert "Mail.ReadWrite" in result.stderr
    assert microsoft.sent == []


def test_failed_upload_deletes_the_draft(graph, microsoft, tmp_path):
    microsoft.fail(r"/createUploadSession$", 403, error={"error": {"code": "ErrorAccessDenied", "message": "Denied."}})
    big = big_file(tmp_path / "big.bin", 5 * 1024 * 1024)
    result = graph(f"/ATTACH={big}")
    assert result.exit_code == ExitCode.AUTH
    assert "Mail.ReadWrite" in result.stderr
    assert len(microsoft.deleted) == 1 and microsoft.drafts == {}


def test_canary_no_secret_or_token_in_any_output(graph, microsoft, tmp_path):
    big = big_file(tmp_path / "big.bin", 4 * 1024 * 1024)
    error_file = tmp_path / "err.txt"
    ok = graph(f"/ATTACH={big}", "/LOG_LEVEL=DEBUG", f"/ERROR_FILE={error_file}")
    assert ok.exit_code == ExitCode.OK, ok.stderr
    microsoft.fail(r"/sendMail$", 400, error={"error": {"code": "ErrorInvalidRecipients", "message": "Bad."}})
    failed = graph("/LOG_LEVEL=DEBUG", f"/ERROR_FILE={error_file}")
    assert failed.exit_code == ExitCode.SEND
    outputs = ok.output + failed.output + error_file.read_text()
    assert SECRET not in outputs
    for token in microsoft.tokens:
        assert token not in outputs
    for _method, path, _headers in microsoft.requests:
        if "authtoken=" in path:
            assert path.split("authtoken=")[1] not in outputs


def test_xoauth2_token_obtained_with_msal(smtpd, run_smail, microsoft, tls_ca):
    class Tokens(dict):
        def get(self, user, default=None):
            return microsoft.token_for("https://outlook.office365.com")
    handler = RecordingHandler(tokens=Tokens())
    server = smtpd(handler, auth_exclude_mechanism=["CRAM-MD5", "LOGIN", "PLAIN"])
    result = run_smail(*server.options, "/AUTH_TYPE=XOAUTH2", f"/SMTP_USERNAME={SENDER}", "/TO=client@test.test",
                       "/BODY=x", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-id-1",
                       f"/O365_SECRET={SECRET}", f"/O365_AUTHORITY_HOST={microsoft.authority}",
                       f"/CA_FILE={tls_ca.pem}", env={"LANG": "C", "NO_PROXY": "127.0.0.1"})
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.logins == [f"XOAUTH2 {SENDER}"]
    token = microsoft.token_for("https://outlook.office365.com")
    assert token and token not in result.output and SECRET not in result.output


def test_unreadable_certificate_file_exits_8(graph, tmp_path, monkeypatch):
    pem = tmp_path / "app.pem"
    pem.write_text("placeholder")

    original = os.open

    def denied(path, *args, **kwargs):
        if Path(path) == pem:
            raise PermissionError(13, "Permission denied")
        return original(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    result = graph(f"/O365_CERT_FILE={pem}", secret=False)
    assert result.exit_code == ExitCode.FILE_NOT_FOUND
    assert "Permission denied" in result.stderr and "app.pem" in result.stderr


def test_a_private_graph_endpoint_still_asks_for_a_microsoft_graph_token(graph, microsoft):
    result = graph()  # /GRAPH_ENDPOINT is the fake's own https://127.0.0.1:<port>
    assert result.exit_code == ExitCode.OK, result.stderr
    assert microsoft.token_for("https://graph.microsoft.com")
    assert not microsoft.token_for(microsoft.graph)


def test_graph_scope_option_sets_the_scope(graph, microsoft):
    result = graph("/GRAPH_SCOPE=https://graph.microsoft.us/.default")
    assert microsoft.token_for("https://graph.microsoft.us")  # asked for what /GRAPH_SCOPE says
    assert result.exit_code == ExitCode.AUTH  # and the Graph fake (global) refuses its audience
    assert "Invalid audience" in result.stderr


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_answer_to_the_send_request_may_have_been_sent_and_is_not_retried(graph, microsoft, status,
                                                                                 tmp_path):
    microsoft.fail(r"/sendMail$", status)
    result_file = tmp_path / "result.json"
    result = graph("/RETRY=3", "/RETRY_DELAY=0.01", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.SEND
    assert "it may have been sent" in result.stderr
    assert sum(1 for _m, p, _h in microsoft.requests if p.endswith("/sendMail")) == 1
    [receipt] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "may-have-been-sent"


def test_a_504_to_the_drafts_send_keeps_the_draft_and_is_not_retried(graph, microsoft, tmp_path):
    big = big_file(tmp_path / "archive.zip", 5 * 1024 * 1024)
    microsoft.fail(r"/messages/[^/]+/send$", 504)
    result = graph(f"/ATTACH={big}", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND and "it may have been sent" in result.stderr
    assert sum(1 for m, p, _h in microsoft.requests if m == "POST" and p.endswith("/send")) == 1
    assert microsoft.deleted == []  # the draft may have become the sent message: never deleted


def test_a_connection_lost_after_the_drafts_send_request_may_have_been_sent(graph, microsoft, tmp_path):
    # The draft's send has no body: once its request went out over the open TLS connection, a
    # close without an answer (which the TLS layer may report as an SSL error) may have sent it.
    big = big_file(tmp_path / "archive.zip", 5 * 1024 * 1024)
    microsoft.drop(r"/messages/[^/]+/send$", 0)
    result_file = tmp_path / "result.json"
    result = graph(f"/ATTACH={big}", "/RETRY=3", "/RETRY_DELAY=0.01", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.SEND, result.stderr
    assert "it may have been sent" in result.stderr
    assert sum(1 for m, p, _h in microsoft.requests if m == "POST" and p.endswith("/send")) == 1
    assert microsoft.deleted == []
    [receipt] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert receipt["status"] == "may-have-been-sent"


def test_503_to_the_send_request_proves_it_was_not_sent_and_is_retried(graph, microsoft):
    microsoft.fail(r"/sendMail$", 503, headers={"Retry-After": "0"})
    result = graph("/RETRY=2", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(microsoft.sent) == 1


def test_signed_and_encrypted_message_goes_in_mime_form(graph, microsoft, pki, tmp_path):
    client = pki.ca.issue("client", "client@test.test")  # the fixture's /TO
    result = graph("/FROM_ADDR=alice@demo.test", "/BCC=carol@test.test",
                   f"/SIGN_CERT={pki.alice.pfx}", f"/SIGN_CERT_PASSWORD={PASSWORD}",
                   f"/ENCRYPT_TO={client.pem};{pki.carol.pem}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [sent] = microsoft.sent
    sendmail = [r for r in microsoft.requests if r[1].endswith("/sendMail")]
    assert sendmail[0][2]["Content-Type"] == "text/plain"
    assert sent.mime is not None and b"smime-type=enveloped-data" in sent.mime
    assert b"Bcc: carol@test.test\r\n" in sent.mime
    if OPENSSL:
        decrypted = decrypt(sent.mime, pki.carol, tmp_path)
        assert decrypted.returncode == 0
        assert b"Bonjour" in verify(decrypted.stdout, pki, tmp_path)


def test_signed_message_over_graphs_request_limit_exits_5_before_any_request(graph, microsoft, pki, files):
    big = files("big.bin", b"\0" * 3_500_000)
    result = graph("/FROM_ADDR=alice@demo.test", f"/SIGN_CERT={pki.alice.pfx}", f"/SIGN_CERT_PASSWORD={PASSWORD}",
                   f"/ATTACH={big}")
    assert result.exit_code == ExitCode.SEND
    assert "send it by SMTP" in result.stderr
    assert microsoft.sent == [] and not [r for r in microsoft.requests if "/v1.0/" in r[1]]
