"""SMTPTransport against real SMTP servers on 127.0.0.1: what the server received, the exit
code and the message the user reads."""

from __future__ import annotations

import email
import email.policy
import re
import ssl
import time

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, free_port, talk

ALL_MECHANISMS = {"CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"}
BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")


def only(*mechanisms: str) -> list[str]:
    return sorted(ALL_MECHANISMS - set(mechanisms))


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_plain_send_delivers_the_exact_message_with_bcc_only_in_the_envelope(smtpd, run_smail, files, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    body = files("Msg.txt", "Bonjour,\n.ligne qui commence par un point\nfin\n")
    eml = tmp_path / "saved.eml"
    result = run_smail(*server.options, "/FROM_NAME=Albert", "/FROM_ADDR=albert@demo.test",
                       "/TO=client@test.test", "/CC=Copie <cc@test.test>", "/BCC=hidden@test.test",
                       "/SUBJECT=Hello", f"/BODY_FILE={body}", f"/SAVE_EML={eml}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stdout == f"Message sent to 3 recipients via 127.0.0.1:{server.port_number} (no TLS), queued as 4F2A1.\n"
    [received] = handler.received
    assert received.mail_from == "albert@demo.test"
    assert received.rcpt_tos == ["client@test.test", "cc@test.test", "hidden@test.test"]
    assert received.data == eml.read_bytes()  # /SAVE_EML holds exactly the bytes sent
    message = parse(received.data)
    assert "hidden" not in received.data.decode()
    assert message["Bcc"] is None
    assert message.get_content().replace("\r\n", "\n") == "Bonjour,\n.ligne qui commence par un point\nfin\n"
    assert "C: <" in result.log and "S: 250 2.0.0 Ok: queued as 4F2A1" in result.log


def test_starttls_with_ca_file_and_tls12(smtpd, run_smail, tls_ca):
    handler = RecordingHandler()
    server = smtpd(handler, tls_context=tls_ca.server_context(), require_starttls=True)
    result = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2", f"/CA_FILE={tls_ca.pem}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "(TLSv1.3)" in result.stdout or "(TLSv1.2)" in result.stdout
    assert len(handler.received) == 1
    assert "TLS established with" in result.log


def test_implicit_tls(smtpd, run_smail, tls_ca):
    handler = RecordingHandler()
    server = smtpd(handler, implicit_tls=tls_ca.server_context())
    result = run_smail(*server.options, *BASIC, "/SSL_MODE=IMPLICIT", f"/CA_FILE={tls_ca.pem}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "TLSv1." in result.stdout
    assert len(handler.received) == 1


@pytest.mark.parametrize("server_max, asked, outcome", [
    (ssl.TLSVersion.TLSv1_2, "TLSV1_2", "TLSv1.2"),
    (ssl.TLSVersion.TLSv1_3, "TLSV1_3", "TLSv1.3"),
    (ssl.TLSVersion.TLSv1_2, "TLSV1_3", None),
])
def test_minimum_tls_version(smtpd, run_smail, tls_ca, server_max, asked, outcome):
    handler = RecordingHandler()
    context = tls_ca.server_context(maximum=server_max)
    server = smtpd(handler, tls_context=context)
    result = run_smail(*server.options, *BASIC, f"/SSL_VERSION={asked}", f"/CA_FILE={tls_ca.pem}")
    if outcome:
        assert result.exit_code == ExitCode.OK, result.stderr
        assert f"({outcome})" in result.stdout
    else:
        assert result.exit_code == ExitCode.CONNECT
        assert "TLS handshake" in result.stderr
        assert handler.received == []


def test_tls13_only_server_accepts_a_tls12_minimum(smtpd, run_smail, tls_ca):
    server = smtpd(RecordingHandler(), tls_context=tls_ca.server_context(minimum=ssl.TLSVersion.TLSv1_3))
    result = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2", f"/CA_FILE={tls_ca.pem}")
    assert result.exit_code == ExitCode.OK
    assert "(TLSv1.3)" in result.stdout


def test_certificate_for_another_host_name_exits_3(smtpd, run_smail, tls_ca):
    other = tls_ca.ca.issue_cert("mail.other.test")
    handler = RecordingHandler()
    server = smtpd(handler, tls_context=tls_ca.server_context(cert=other))
    result = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2", f"/CA_FILE={tls_ca.pem}")
    assert result.exit_code == ExitCode.CONNECT
    assert "certificate of 127.0.0.1" in result.stderr and "could not be verified" in result.stderr
    assert handler.received == []


def test_a_failure_of_the_os_verifier_itself_is_a_certificate_error(smtpd, run_smail, tls_ca, monkeypatch):
    """On Windows the verifier's own call may fail (Wine 8: E_INVALIDARG): exit 3, said as a TLS
    certificate failure, never as "Cannot connect"; nothing is sent."""
    import importlib

    api = importlib.import_module("truststore._api")  # truststore's own name is its SSLContext

    namespace = {"__name__": "truststore._windows"}
    exec("def verify(sock, server_hostname):\n    raise OSError(22, 'Invalid parameter.', None, -2147024809)",
         namespace)
    monkeypatch.setattr(api, "_verify_peercerts", namespace["verify"])
    handler = RecordingHandler()
    server = smtpd(handler, tls_context=tls_ca.server_context(), require_starttls=True)
    result = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2", f"/CA_FILE={tls_ca.pem}")
    assert result.exit_code == ExitCode.CONNECT
    assert "could not be verified: the system's certificate verifier failed: Invalid parameter" in result.stderr
    assert "Cannot connect" not in result.stderr
    assert handler.received == []


def test_unknown_ca_exits_3_and_ssl_no_verify_accepts_it_with_a_warning(smtpd, run_smail, tls_ca):
    handler = RecordingHandler()
    server = smtpd(handler, tls_context=tls_ca.server_context())
    refused = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2")
    assert refused.exit_code == ExitCode.CONNECT
    assert "/CA_FILE" in refused.stderr
    accepted = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2", "/SSL_NO_VERIFY")
    assert accepted.exit_code == ExitCode.OK
    assert "WARNING" in accepted.log and "not verified" in accepted.log
    assert len(handler.received) == 1


def test_server_without_starttls_never_gets_the_message_in_clear(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/SSL_VERSION=TLSV1_2")
    assert result.exit_code == ExitCode.CONNECT
    assert "does not offer STARTTLS" in result.stderr
    assert handler.received == []
    assert "c: mail from" not in result.log.lower()  # the envelope never went out in clear


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_sasl_mechanisms_and_password_never_shown(smtpd, run_smail, tls_ca, mechanism):
    handler = RecordingHandler(passwords={"james@koxo.test": "Sécret123!"})
    server = smtpd(handler, tls_context=tls_ca.server_context(), auth_exclude_mechanism=only(mechanism))
    result = run_smail(*server.options, *BASIC, "/AUTH_TYPE=SASL", "/SSL_VERSION=TLSV1_2",
                       f"/CA_FILE={tls_ca.pem}", "/SMTP_USERNAME=james@koxo.test",
                       "/SMTP_PASSWORD=Sécret123!")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.logins == [f"{mechanism} james@koxo.test"]
    assert f"C: AUTH {mechanism}" in result.log
    assert "Sécret123!" not in result.output
    assert f"with {mechanism}" in result.log


def test_strongest_mechanism_is_chosen(smtpd, run_smail):
    handler = RecordingHandler(passwords={"u": "p4ss"})
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u", "/SMTP_PASSWORD=p4ss")
    assert result.exit_code == ExitCode.OK
    assert handler.logins == ["CRAM-MD5 u"]


def test_plain_auth_line_is_masked_by_structure(smtpd, run_smail):
    handler = RecordingHandler(passwords={"u": "p4ss"})
    server = smtpd(handler, auth_exclude_mechanism=only("PLAIN"))
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u", "/SMTP_PASSWORD=p4ss")
    assert result.exit_code == ExitCode.OK
    assert "C: AUTH PLAIN ****" in result.log
    assert "AHUAcDRzcw" not in result.log  # base64 of \0u\0p4ss


def test_wrong_password_exits_4(smtpd, run_smail):
    handler = RecordingHandler(passwords={"u": "right"})
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/AUTH_TYPE=SASL", "/SMTP_USERNAME=u",
                       "/SMTP_PASSWORD=hunter2", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.AUTH
    assert "refused the authentication of u" in result.stderr and "535" in result.stderr
    assert "hunter2" not in result.output
    assert handler.received == []
    assert len(handler.logins) == 1  # a permanent failure is never retried


def test_no_common_mechanism_lists_what_the_server_offers(smtpd, run_smail):
    server = smtpd(RecordingHandler(), auth_exclude_mechanism=only("XOAUTH2"))
    result = run_smail(*server.options, *BASIC, "/AUTH_TYPE=SASL", "/SMTP_USERNAME=u", "/SMTP_PASSWORD=p")
    assert result.exit_code == ExitCode.AUTH
    assert "offers none of CRAM-MD5, PLAIN, LOGIN; it offers: XOAUTH2" in result.stderr


def test_xoauth2_with_token_file(smtpd, run_smail, files):
    token = "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA"
    handler = RecordingHandler(tokens={"user@domaine.test": token})
    server = smtpd(handler, auth_exclude_mechanism=only("XOAUTH2", "LOGIN"))
    token_file = files("token.txt", f"  {token}\r\n")
    result = run_smail(*server.options, *BASIC, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=user@domaine.test",
                       f"/SMTP_TOKEN_FILE={token_file}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.logins == ["XOAUTH2 user@domaine.test"]
    assert "C: AUTH XOAUTH2 ****" in result.log
    assert token not in result.output
    assert "dXNlcj1" not in result.log  # base64 of "user=" starts every XOAUTH2 payload


def test_xoauth2_error_challenge_reports_the_servers_reason(smtpd, run_smail, files):
    handler = RecordingHandler(tokens={"user@domaine.test": "good"}, xoauth2_challenge=True)
    server = smtpd(handler)
    token_file = files("token.txt", "expired-token-value")
    result = run_smail(*server.options, *BASIC, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=user@domaine.test",
                       f"/SMTP_TOKEN_FILE={token_file}")
    assert result.exit_code == ExitCode.AUTH
    assert '"status": "401"' in result.stderr and "535" in result.stderr
    assert "expired-token-value" not in result.output


@pytest.mark.parametrize("dsn", [True, False])
def test_reception_ack_uses_dsn_when_offered(smtpd, run_smail, dsn):
    handler = RecordingHandler(dsn=dsn)
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/RECEPTION_ACK")
    assert result.exit_code == ExitCode.OK, result.stderr
    [received] = handler.received
    assert b"Return-Receipt-To: albert@demo.test" in received.data
    if dsn:
        assert "RET=HDRS" in received.mail_options
        assert received.rcpt_options == ["NOTIFY=SUCCESS,FAILURE"]
    else:
        assert received.rcpt_options == []
        assert "does not offer DSN" in result.log


@pytest.mark.parametrize("offered", [True, False])
def test_smtputf8_local_part(smtpd, run_smail, offered):
    handler = RecordingHandler()
    server = smtpd(handler, enable_SMTPUTF8=offered)
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/TO=jürgen@exämple.test", "/BODY=x")
    if offered:
        assert result.exit_code == ExitCode.OK, result.stderr
        [received] = handler.received
        assert received.rcpt_tos == ["jürgen@xn--exmple-cua.test"]
        assert "SMTPUTF8" in received.mail_options
    else:
        assert result.exit_code == ExitCode.SEND
        assert "SMTPUTF8" in result.stderr
        assert handler.received == []


def test_refused_recipients_are_all_named_and_nothing_is_sent(smtpd, run_smail):
    handler = RecordingHandler(rcpt_replies=["250 OK", "550 5.1.1 <b@test.test>: no such user",
                                             "553 5.7.1 relay denied"])
    server = smtpd(handler)
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test",
                       "/TO=a@test.test,b@test.test", "/CC=c@other.test", "/BODY=x")
    assert result.exit_code == ExitCode.SEND
    assert "refused 2 recipients" in result.stderr
    assert "b@test.test: 550 5.1.1" in result.stderr and "c@other.test: 553 5.7.1 relay denied" in result.stderr
    assert handler.received == []
    assert "C: RSET" in result.log.upper()


def test_451_to_rcpt_then_accept_is_retried(smtpd, run_smail):
    handler = RecordingHandler(rcpt_replies=["451 4.3.0 try again later"])
    server = smtpd(handler)
    once = run_smail(*server.options, *BASIC)
    assert once.exit_code == ExitCode.SEND and "451 4.3.0 try again later" in once.stderr
    handler.rcpt_replies.append("451 4.3.0 try again later")
    retried = run_smail(*server.options, *BASIC, "/RETRY=2", "/RETRY_DELAY=0.01")
    assert retried.exit_code == ExitCode.OK, retried.stderr
    assert len(handler.received) == 1
    assert "Attempt 1 failed" in retried.log


def test_554_after_data_is_permanent_and_not_retried(smtpd, run_smail):
    handler = RecordingHandler(data_reply="554 5.6.0 Message content rejected")
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/RETRY=3", "/RETRY_DELAY=0.01")
    assert result.exit_code == ExitCode.SEND
    assert "554 5.6.0 Message content rejected" in result.stderr
    assert result.log.count("Connecting to") == 1


def test_421_greeting_exits_3_then_6_with_retries(scripted, run_smail):
    server = scripted(lambda conn: conn.sendall(b"421 4.3.2 Too many connections, try later\r\n"))
    once = run_smail(*server.options, *BASIC)
    assert once.exit_code == ExitCode.CONNECT
    assert "421 4.3.2 Too many connections" in once.stderr
    retried = run_smail(*server.options, *BASIC, "/RETRY=3", "/RETRY_DELAY=0.01")
    assert retried.exit_code == ExitCode.RETRY_EXCEEDED
    assert "after 3 attempts" in retried.stderr and "421" in retried.stderr
    assert server.connections == 4


def test_silent_server_times_out_with_exit_3(scripted, run_smail):
    server = scripted(lambda conn: (time.sleep(20), conn.recv(10)))
    started = time.monotonic()
    result = run_smail(*server.options, *BASIC, "/TIMEOUT=1")
    assert time.monotonic() - started < 15  # /TIMEOUT ended it, not the server
    assert result.exit_code == ExitCode.CONNECT
    assert "did not answer within 1 s" in result.stderr


def test_connection_dropped_during_data(scripted, run_smail, files):
    def script(conn):
        conn.sendall(b"220 ready\r\n")
        talk(conn, {"EHLO": "250 ok"}, drop_during_data=True)
    server = scripted(script)
    attachment = files("big.bin", b"x" * 3_000_000)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.CONNECT
    assert "lost while sending" in result.stderr
    retried = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}", "/RETRY=2", "/RETRY_DELAY=0.01")
    assert retried.exit_code == ExitCode.RETRY_EXCEEDED


def test_530_on_mail_is_an_authentication_failure(scripted, run_smail):
    def script(conn):
        conn.sendall(b"220 ready\r\n")
        talk(conn, {"EHLO": "250 ok", "MAIL": "530 5.7.57 Client not authenticated to send mail"})
    server = scripted(script)
    result = run_smail(*server.options, *BASIC)
    assert result.exit_code == ExitCode.AUTH
    assert "530 5.7.57" in result.stderr


def test_closed_port_exits_3(run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", *BASIC)
    assert result.exit_code == ExitCode.CONNECT
    assert "refused the connection" in result.stderr


def test_unknown_host_exits_3(run_smail):
    result = run_smail("/SMTP_SERVER=no-such-host.invalid", *BASIC, "/TIMEOUT=5")
    assert result.exit_code == ExitCode.CONNECT
    assert "could not be resolved" in result.stderr


def test_message_larger_than_server_size_limit(smtpd, run_smail, files):
    handler = RecordingHandler()
    server = smtpd(handler, data_size_limit=1000)
    big = files("big.bin", b"y" * 5000)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={big}")
    assert result.exit_code == ExitCode.SEND
    assert "accepts at most 1000 bytes" in result.stderr
    assert handler.received == []


def test_helo_name(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    assert run_smail(*server.options, *BASIC, "/HELO=erp01.example.test").exit_code == ExitCode.OK
    assert handler.helo_names == ["erp01.example.test"]


def test_auth_default_without_auth_offered_says_so(scripted, run_smail):
    def script(conn):
        conn.sendall(b"220 ready\r\n")
        talk(conn, {"EHLO": "250 ok"})
    server = scripted(script)
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u", "/SMTP_PASSWORD=secretpw")
    assert result.exit_code == ExitCode.AUTH
    assert "does not offer authentication" in result.stderr and "/SSL_VERSION=TLSV1_2" in result.stderr


def test_large_attachment_streams_intact(smtpd, run_smail, files):
    handler = RecordingHandler()
    server = smtpd(handler, data_size_limit=0)
    payload = bytes(range(256)) * 40_000 + b"\r\n.\r\n"
    attachment = files("data.bin", payload)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.OK, result.stderr
    message = parse(handler.received[0].data)
    [part] = list(message.iter_attachments())
    assert part.get_content() == payload


@pytest.mark.parametrize("peer, loopback", [("127.0.0.1", True), ("::1", True), ("192.0.2.10", False)])
def test_auth_without_tls_warns_only_off_loopback(peer, loopback):
    from smail.transports import smtp_client

    class Sock:
        def getpeername(self):
            return (peer, 25)

    class Client:
        sock = Sock()
    assert smtp_client.is_loopback(Client()) is loopback  # False -> "Authenticating without TLS" warning


@pytest.mark.parametrize("fqdn, local, expected", [
    ("erp01.corp.example", "10.0.0.5", "erp01.corp.example"),
    ("büro-pc.example.de", "10.0.0.5", "xn--bro-pc-3ya.example.de"),
    ("erp01", "192.0.2.1", "[192.0.2.1]"),                 # a bare short name: never sent
    ("ERP_01", "192.0.2.1", "[192.0.2.1]"),
    ("", "2001:db8::1", "[IPv6:2001:db8::1]"),
    ("bad..name.example", None, "[127.0.0.1]"),
])
def test_default_ehlo_name_is_a_fqdn_or_an_address_literal(fqdn, local, expected):
    from smail.transports import smtp_client
    assert smtp_client.ehlo_name(local, fqdn=lambda: fqdn) == expected


def test_ehlo_argument_recorded_by_the_server_is_a_fqdn_or_an_address_literal(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC)
    assert result.exit_code == ExitCode.OK, result.stderr
    [name] = handler.helo_names
    assert re.fullmatch(r"\[[0-9.]+\]|\[IPv6:[0-9a-fA-F:]+\]|([A-Za-z0-9-]+\.)+[A-Za-z0-9-]+", name), name
