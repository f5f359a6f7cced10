"""SMTP through real proxies to the real Postfix: Squid (HTTP CONNECT with Basic authentication)
and Dante (SOCKS5), with STARTTLS and implicit TLS end to end through the tunnel."""

from __future__ import annotations

import uuid

import pytest

from smail.errors import ExitCode
from tests.interop.proxy_servers import SQUID_PASSWORD, SQUID_USER

pytestmark = pytest.mark.interop


@pytest.fixture
def subject() -> str:
    return f"SMail proxy interop {uuid.uuid4().hex[:12]}"


def message(subject: str) -> list[str]:
    return ["/FROM_ADDR=james@smail.test", "/TO=client@smail.test", f"/SUBJECT={subject}",
            "/BODY=Sent through the proxy."]


def test_squid_connect_with_basic_auth_and_starttls(postfix, squid, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.submission_port}", "/SSL_MODE=STARTTLS",
                       f"/CA_FILE={postfix.ca_file}", "/SMTP_USERNAME=james@smail.test", "/SMTP_PASSWORD=Secret123",
                       f"/PROXY=http://{SQUID_USER}@127.0.0.1:{squid.port}", *message(subject),
                       env={"LANG": "C", "SMAIL_PROXY_PASSWORD": SQUID_PASSWORD})
    assert result.exit_code == ExitCode.OK, result.output
    assert "TLSv1." in result.stdout
    [delivered] = postfix.wait_for(subject.encode(), "client@smail.test")
    assert b"Sent through the proxy." in delivered
    assert SQUID_PASSWORD not in result.output
    assert squid.access_log is not None
    assert f"CONNECT 127.0.0.1:{postfix.submission_port}" in squid.access_log.read_text(errors="replace")


def test_squid_implicit_tls(postfix, squid, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtps_port}", "/SSL_MODE=IMPLICIT",
                       f"/CA_FILE={postfix.ca_file}", "/SMTP_USERNAME=james@smail.test", "/SMTP_PASSWORD=Secret123",
                       f"/PROXY=http://{SQUID_USER}:{SQUID_PASSWORD}@127.0.0.1:{squid.port}", *message(subject))
    assert result.exit_code == ExitCode.OK, result.output
    postfix.wait_for(subject.encode(), "client@smail.test")


def test_squid_refuses_a_wrong_password_with_407(postfix, squid, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}",
                       f"/PROXY=http://{SQUID_USER}@127.0.0.1:{squid.port}", "/PROXY_PASSWORD=not-the-password",
                       *message(subject))
    assert result.exit_code == ExitCode.CONNECT
    assert "407" in result.stderr and "password is wrong" in result.stderr
    assert "not-the-password" not in result.output


def test_dante_socks5_with_starttls(postfix, dante, subject, run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={postfix.smtp_port}", "/SSL_MODE=STARTTLS",
                       f"/CA_FILE={postfix.ca_file}", f"/PROXY=socks5://127.0.0.1:{dante.port}", *message(subject))
    assert result.exit_code == ExitCode.OK, result.output
    [delivered] = postfix.wait_for(subject.encode(), "client@smail.test")
    assert b"Sent through the proxy." in delivered


def test_dante_reports_a_refused_destination(dante, run_smail):
    from tests.interop.proxy_servers import free_port

    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", f"/PROXY=socks5://127.0.0.1:{dante.port}",
                       *message("refused"))
    assert result.exit_code == ExitCode.CONNECT
    assert "The proxy socks5://127.0.0.1:" in result.stderr and "refused the connection" in result.stderr
