"""Hostile bodies, environments and recipient lists against the promises: never a hang, every
failure with its own exit code and cause, never a false refusal of a message that can be sent."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess

import pytest

from smail.errors import ExitCode
from tests.cli.test_hostile_input import smail_process
from tests.cli.test_smime import OPENSSL, decrypt, needs_openssl
from tests.contract.test_graph import graph, microsoft  # noqa: F401 (fixtures)
from tests.smime_certs import PASSWORD
from tests.smtpd import RecordingHandler, read_line, read_message


def _no_crash(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


# -- HTML bodies whose tags never end ------------------------------------------------------------

@pytest.mark.parametrize("unended", ["<a ", "<p\n", '<a b="'])
def test_an_html_body_of_many_unended_tags_is_sent_at_once(smtpd, tmp_path, unended):
    """html.parser, closing on a body whose last tag never ends, tried every later `<` again:
    300 KB of `<a ` held the run for a quarter of an hour at full CPU (a megabyte, hours)
    before the message was built. What never ends is dropped from the text part, as the
    HTML view drops it."""
    handler = RecordingHandler()
    server = smtpd(handler)
    body = tmp_path / "Msg.html"
    html = "<p>Bonjour</p>" + unended * (300_000 // len(unended))
    body.write_text(html, encoding="utf-8")
    proc = smail_process(*server.options, "/FROM_ADDR=a@t.test", "/TO=b@t.test", f"/BODY_FILE={body}", cwd=tmp_path,
                         timeout=120)
    assert proc.returncode == ExitCode.OK, proc.stderr.decode("utf-8", "replace")
    [received] = handler.received
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message.get_body(("plain",)).get_content().strip() == "Bonjour"
    assert message.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html.rstrip("\n")


# -- an environment proxy the HTTPS requests cannot use ------------------------------------------

def _environment(monkeypatch, variables: dict[str, str]) -> dict[str, str]:
    """The proxy variables, for SMail and for requests (which reads the process's own)."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return {"LANG": "C", "NO_PROXY": "", **variables}


@pytest.mark.parametrize("variables", [{"HTTPS_PROXY": "socks5://127.0.0.1:1080"},
                                       {"ALL_PROXY": "socks5h://svc:Pr0xy-S3cret@127.0.0.1:1080"}])
def test_graph_behind_a_socks5_environment_proxy_is_exit_2_not_an_unknown_tenant(graph, microsoft,  # noqa: F811
                                                                                   monkeypatch, variables):
    """requests cannot speak SOCKS5 here: the sign-in failed as "the tenant contoso-tenant-id
    does not exist (check /O365_TENANT_ID)", exit 4, sending the administrator after the
    wrong setting."""
    result = graph(env=_environment(monkeypatch, variables))
    assert result.exit_code == ExitCode.PARAM, result.output
    _no_crash(result.output)
    assert "SOCKS5" in result.stderr and "HTTPS_PROXY or ALL_PROXY" in result.stderr
    assert "tenant" not in result.stderr and "Pr0xy-S3cret" not in result.output
    assert microsoft.sent == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:port", "ftp://127.0.0.1:21",
                                 'http://svc:S3\\"cret@[::1'])
def test_graph_behind_a_malformed_environment_proxy_is_exit_2_naming_the_variable(graph, microsoft,  # noqa: F811
                                                                                   monkeypatch, url):
    result = graph(env=_environment(monkeypatch, {"HTTPS_PROXY": url}))
    assert result.exit_code == ExitCode.PARAM, result.output
    _no_crash(result.output)
    assert "HTTPS_PROXY or ALL_PROXY" in result.stderr and "tenant" not in result.stderr
    assert 'S3\\"cret' not in result.output
    assert microsoft.sent == []


def test_graph_with_the_environment_proxy_bypassed_or_overridden_still_sends(graph, microsoft, monkeypatch):  # noqa: F811
    env = _environment(monkeypatch, {"HTTPS_PROXY": "socks5://127.0.0.1:1080", "NO_PROXY": "127.0.0.1"})
    assert graph(env=env).exit_code == ExitCode.OK
    env = _environment(monkeypatch, {"HTTPS_PROXY": "socks5://127.0.0.1:1080"})
    assert graph("/PROXY=NONE", env=env).exit_code == ExitCode.OK
    assert len(microsoft.sent) == 2


def test_smtp_xoauth2_token_behind_a_socks5_environment_proxy_is_exit_2(run_smail, microsoft, tls_ca,  # noqa: F811
                                                                        monkeypatch):
    env = _environment(monkeypatch, {"ALL_PROXY": "socks5://127.0.0.1:1080"})
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=1", "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u@t.test",
                       f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-id-1", "/O365_SECRET=s3cret",
                       f"/O365_AUTHORITY_HOST={microsoft.authority}", f"/CA_FILE={tls_ca.pem}",
                       "/FROM_ADDR=u@t.test", "/TO=b@t.test", "/BODY=hi", env=env)
    assert result.exit_code == ExitCode.PARAM, result.output
    assert "SOCKS5" in result.stderr and "tenant" not in result.stderr


def test_the_environment_proxy_refusal_in_french(graph, monkeypatch):  # noqa: F811
    result = graph("/LANG=FR", env=_environment(monkeypatch, {"HTTPS_PROXY": "socks5://127.0.0.1:1080"}))
    assert result.exit_code == ExitCode.PARAM
    assert "Le proxy de l'environnement" in result.stderr


# -- S/MIME: the sender among the recipients ------------------------------------------------------

@needs_openssl
def test_an_encrypted_message_copied_to_its_signing_sender_is_sent_readable_by_both(run_smail, smtpd, pki, tmp_path):
    """The sender in Cc (a copy to the ERP's mailbox) with /SIGN_CERT was refused: "/ENCRYPT_TO
    has no certificate for alice@demo.test", although the sender's certificate is the one the
    message is encrypted to for Sent Items."""
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}",
                       f"/CC={pki.alice.address.upper()}", "/BODY=Bulletin", f"/SIGN_CERT={pki.alice.pfx}",
                       f"/SIGN_CERT_PASSWORD={PASSWORD}", f"/ENCRYPT_TO={pki.bob.pem}")
    assert result.exit_code == ExitCode.OK, result.output
    [received] = server.handler.received
    assert sorted(received.rcpt_tos) == sorted([pki.bob.address, pki.alice.address.upper()])
    for who in (pki.alice, pki.bob):
        assert decrypt(received.data, who, tmp_path).returncode == 0


def test_the_sender_among_the_recipients_without_its_certificate_is_still_refused(run_smail, smtpd, pki):
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}",
                       f"/CC={pki.alice.address}", "/BODY=Bulletin", f"/SIGN_CERT={pki.alice.pfx}",
                       f"/SIGN_CERT_PASSWORD={PASSWORD}", f"/ENCRYPT_TO={pki.bob.pem}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.PARAM, result.output
    assert f"/ENCRYPT_TO has no certificate for {pki.alice.address}" in result.stderr
    assert server.handler.received == []


@needs_openssl
@pytest.mark.parametrize("layout", ["certificate, CA, key", "CA first"])
def test_encrypting_to_a_certificate_file_holding_its_chain_encrypts_to_the_recipient_only(run_smail, smtpd, pki, tmp_path,
                                                                                          layout):
    """A certificate exported with its chain (PEM: the recipient's certificate and its CA) was
    refused: "The certificate ... (CN=SMail Test S/MIME CA) is not valid for e-mail protection"."""
    chain = tmp_path / "bob-chain.pem"
    chain.write_bytes(pki.bob.bundle.read_bytes() if layout == "certificate, CA, key"
                      else pki.ca.pem.read_bytes() + pki.bob.pem.read_bytes())
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}", "/BODY=Bulletin",
                       f"/ENCRYPT_TO={chain}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.OK, result.output
    [received] = server.handler.received
    assert decrypt(received.data, pki.bob, tmp_path).returncode == 0
    assert OPENSSL is not None
    printed = subprocess.run([OPENSSL, "cms", "-cmsout", "-print"], input=received.data, capture_output=True,
                             timeout=60, check=True).stdout.decode()
    assert printed.count("d.ktri:") == 1  # one recipient: bob, not the CA


def test_a_certificate_file_holding_only_cas_is_still_refused(run_smail, smtpd, pki):
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}", "/BODY=Bulletin",
                       f"/ENCRYPT_TO={pki.ca.pem}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.PARAM, result.output
    assert "not valid for e-mail protection" in result.stderr
    assert server.handler.received == []


# -- numbers in odd digits ------------------------------------------------------------------------
# str.isdigit() accepts "²", "³" and "¹" (bytes B2, B3, B9 read as Latin-1), which int() refuses.

def _server_offering_size(size: bytes):
    def script(conn: socket.socket) -> None:
        conn.sendall(b"220 ready\r\n")
        while line := read_line(conn):
            verb = line.split()[0].upper() if line.split() else b""
            if verb == b"EHLO":
                conn.sendall(b"250-smail.test\r\n250 SIZE " + size + b"\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                read_message(conn)
                conn.sendall(b"250 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")
    return script


@pytest.mark.parametrize("size", [b"\xb2", b"1\xb3", b"\xb9\xb9\xb9"])
def test_a_size_limit_in_odd_digits_is_no_internal_error(scripted, run_smail, size):
    """`250 SIZE ²` from the server was exit 7, nothing sent; a limit SMail cannot read is none."""
    server = scripted(_server_offering_size(size))
    result = run_smail(*server.options, "/FROM_ADDR=a@t.test", "/TO=b@t.test", "/BODY=hi")
    assert result.exit_code == ExitCode.OK, result.output
    _no_crash(result.output)


@pytest.mark.parametrize("status", [b"\xb2\xb2\xb2", b"2\xb2\xb2", b"\xb900"])
def test_a_proxy_answering_a_status_in_odd_digits_is_a_proxy_failure(scripted, run_smail, status):
    """`HTTP/1.1 ²²² OK` from an HTTP proxy was exit 7."""
    def script(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 " + status + b" OK\r\n\r\n220 ready\r\n")
        conn.recv(64)
    server = scripted(script)
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@t.test", "/TO=b@t.test", "/BODY=hi",
                       f"/PROXY=http://127.0.0.1:{server.port}")
    assert result.exit_code == ExitCode.CONNECT, result.output
    _no_crash(result.output)
    assert "proxy" in result.stderr.lower()


def test_an_identity_error_code_in_odd_digits_is_the_refusal_it_reports(graph, microsoft):  # noqa: F811
    """An identity platform (or what stands for it) answering `"error_codes": ["²"]` was exit 7."""
    microsoft.fail("/token", 401, error={"error": "invalid_client", "error_codes": ["\u00b2", 7000215],
                                         "error_description": "AADSTS7000215: Invalid client secret provided."})
    result = graph()
    assert result.exit_code == ExitCode.AUTH, result.output
    _no_crash(result.output)
    assert microsoft.sent == []


# -- Graph answers that do not hold what they must ------------------------------------------------

@pytest.mark.parametrize("path, answer", [(r"/messages$", {"value": []}), (r"/messages$", {"id": None}),
                                          (r"createUploadSession", {"expirationDateTime": "2026-12-07T12:00:00Z"}),
                                          (r"createUploadSession", {"uploadUrl": 5})])
def test_a_draft_answer_without_its_id_or_upload_url_is_not_sent_and_no_internal_error(graph, microsoft, tmp_path,  # noqa: F811
                                                                                     path, answer):
    """A large message goes through a draft: an answer (a gateway's, one cut short) without the
    draft's id or the upload session's URL was exit 7."""
    big = tmp_path / "archive.zip"
    big.write_bytes(b"\0" * (5 * 1024 * 1024))
    for lang, expected in (("EN", "The answer of Microsoft Graph while"), ("FR", "La réponse de Microsoft Graph pendant")):
        microsoft.fail(path, 201, error=answer)
        result = graph(f"/ATTACH={big}", f"/LANG={lang}")
        assert result.exit_code == ExitCode.SEND, result.output
        _no_crash(result.output)
        assert expected in result.stderr
    assert microsoft.sent == []
