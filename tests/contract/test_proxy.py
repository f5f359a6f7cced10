"""SMTP through a proxy: HTTP CONNECT and SOCKS5, with and without authentication, in front of
aiosmtpd, for plain SMTP, STARTTLS and implicit TLS. The mail server's name only resolves at
the proxy, so a delivered message proves both the tunnel and the remote name resolution."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from smail.errors import ExitCode
from tests.proxies import HTTPConnectProxy, SOCKS5Proxy, StallingProxy
from tests.smtpd import RecordingHandler, free_port

MAIL_HOST = "mail.smail.test"  # known to the test proxies only
PROXY_PASSWORD = "Pr0xy-s3cret!"
MESSAGE = ["/FROM_ADDR=albert@smail.test", "/TO=bob@smail.test", "/SUBJECT=Through the proxy",
           "/BODY=Confidential body line"]


@pytest.fixture
def proxies() -> Iterator[list]:
    started: list = []
    yield started
    for proxy in started:
        proxy.close()


def start(proxies: list, kind: type, **options) -> HTTPConnectProxy | SOCKS5Proxy:
    proxy = kind(resolve={MAIL_HOST: "127.0.0.1"}, **options)
    proxies.append(proxy)
    return proxy


def server_options(server) -> list[str]:
    return [f"/SMTP_SERVER={MAIL_HOST}", f"/SMTP_PORT={server.port_number}"]


@pytest.fixture
def mail_cert(tls_ca):
    return tls_ca.ca.issue_cert(MAIL_HOST)


def test_http_connect_plain_smtp_delivers_the_message(smtpd, run_smail, proxies):
    handler = RecordingHandler()
    server = smtpd(handler)
    proxy = start(proxies, HTTPConnectProxy)
    result = run_smail(*server_options(server), *MESSAGE, f"/PROXY={proxy.url('http')}")
    assert result.exit_code == 0, result.output
    assert proxy.record.targets == [f"{MAIL_HOST}:{server.port_number}"]
    [received] = handler.received
    assert b"Confidential body line" in received.data
    assert received.data in bytes(proxy.record.upstream).replace(b"\r\n", b"\n") or \
        b"Confidential body line" in proxy.record.upstream
    assert "through the proxy http://127.0.0.1:" in result.log


def test_http_connect_with_basic_auth_and_starttls_relays_only_ciphertext(smtpd, run_smail, proxies, tls_ca,
                                                                           mail_cert):
    handler = RecordingHandler()
    server = smtpd(handler, tls_context=tls_ca.server_context(cert=mail_cert), require_starttls=True)
    proxy = start(proxies, HTTPConnectProxy, user="proxyuser", password=PROXY_PASSWORD)
    result = run_smail(*server_options(server), *MESSAGE, "/SSL_MODE=STARTTLS", f"/CA_FILE={tls_ca.pem}",
                       f"/PROXY={proxy.url('http', user='proxyuser', password=PROXY_PASSWORD)}")
    assert result.exit_code == 0, result.output
    assert "TLSv1" in result.stdout
    [received] = handler.received
    assert b"Confidential body line" in received.data
    upstream = bytes(proxy.record.upstream)
    assert b"STARTTLS" in upstream
    after = upstream.split(b"STARTTLS", 1)[1]
    assert b"Confidential" not in after and b"MAIL FROM" not in after and b"bob@smail.test" not in after
    assert PROXY_PASSWORD not in result.output
    assert b"Proxy-Authorization: Basic " in proxy.record.requests[0]


def test_socks5_with_auth_and_implicit_tls_resolves_the_name_at_the_proxy(smtpd, run_smail, proxies, tls_ca,
                                                                          mail_cert, files):
    handler = RecordingHandler()
    server = smtpd(handler, implicit_tls=tls_ca.server_context(cert=mail_cert))
    proxy = start(proxies, SOCKS5Proxy, user="proxyuser", password=PROXY_PASSWORD)
    secret = files("proxy-password.txt", PROXY_PASSWORD + "\r\n")
    result = run_smail(*server_options(server), *MESSAGE, "/SSL_MODE=IMPLICIT", f"/CA_FILE={tls_ca.pem}",
                       f"/PROXY={proxy.url('socks5', user='proxyuser')}", f"/PROXY_PASSWORD_FILE={secret}")
    assert result.exit_code == 0, result.output
    assert f"name:{MAIL_HOST}".encode() in proxy.record.requests
    [received] = handler.received
    assert b"Confidential body line" in received.data
    assert b"Confidential" not in proxy.record.upstream and b"EHLO" not in proxy.record.upstream
    assert PROXY_PASSWORD not in result.output


def test_socks5_without_auth_plain_smtp(smtpd, run_smail, proxies):
    handler = RecordingHandler()
    server = smtpd(handler)
    proxy = start(proxies, SOCKS5Proxy)
    result = run_smail(*server_options(server), *MESSAGE, f"/PROXY={proxy.url('socks5h')}")
    assert result.exit_code == 0, result.output
    assert len(handler.received) == 1


def test_the_certificate_is_checked_for_the_mail_server_not_the_proxy(smtpd, run_smail, proxies, tls_ca):
    server = smtpd(RecordingHandler(), tls_context=tls_ca.server_context(), require_starttls=True)  # 127.0.0.1
    proxy = start(proxies, HTTPConnectProxy)
    result = run_smail(*server_options(server), *MESSAGE, "/SSL_MODE=STARTTLS", f"/CA_FILE={tls_ca.pem}",
                       f"/PROXY={proxy.url('http')}")
    assert result.exit_code == ExitCode.CONNECT
    assert "certificate" in result.stderr


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_wrong_proxy_password_is_exit_3_with_the_refusal_and_never_shown(smtpd, run_smail, proxies, scheme):
    handler = RecordingHandler()
    server = smtpd(handler)
    proxy = start(proxies, HTTPConnectProxy if scheme == "http" else SOCKS5Proxy,
                  user="proxyuser", password=PROXY_PASSWORD)
    wrong = "Wr0ng-pr0xy-pass"
    result = run_smail(*server_options(server), *MESSAGE, f"/PROXY={proxy.url(scheme, user='proxyuser')}",
                       "/RETRY=3", "/RETRY_DELAY=0.1", env={"LANG": "C", "SMAIL_PROXY_PASSWORD": wrong})
    assert result.exit_code == ExitCode.CONNECT, result.output  # not retried: exit 3, not 6
    assert ("407 Proxy Authentication Required" if scheme == "http" else "authentication") in result.stderr
    assert "password is wrong" in result.stderr
    assert wrong not in result.output and "proxyuser:" not in result.output
    assert handler.received == []


def test_proxy_asking_for_credentials_says_how_to_give_them(smtpd, run_smail, proxies):
    server = smtpd(RecordingHandler())
    proxy = start(proxies, HTTPConnectProxy, user="proxyuser", password=PROXY_PASSWORD)
    result = run_smail(*server_options(server), *MESSAGE, f"/PROXY={proxy.url('http')}")
    assert result.exit_code == ExitCode.CONNECT
    assert "407" in result.stderr and "/PROXY_PASSWORD" in result.stderr


def test_proxy_that_cannot_reach_the_server_gives_its_answer(run_smail, proxies):
    proxy = start(proxies, HTTPConnectProxy)
    socks = start(proxies, SOCKS5Proxy)
    closed = free_port()
    result = run_smail(f"/SMTP_SERVER={MAIL_HOST}", f"/SMTP_PORT={closed}", *MESSAGE, f"/PROXY={proxy.url('http')}")
    assert result.exit_code == ExitCode.CONNECT
    assert "502 Bad Gateway" in result.stderr
    result = run_smail(f"/SMTP_SERVER={MAIL_HOST}", f"/SMTP_PORT={closed}", *MESSAGE, f"/PROXY={socks.url('socks5')}")
    assert result.exit_code == ExitCode.CONNECT
    assert "0x05 connection refused" in result.stderr


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_stalling_proxy_is_bounded_by_the_timeout(run_smail, proxies, scheme):
    proxy = start(proxies, StallingProxy)
    started = time.monotonic()
    result = run_smail(f"/SMTP_SERVER={MAIL_HOST}", "/SMTP_PORT=25", *MESSAGE, f"/PROXY={proxy.url(scheme)}",
                       "/TIMEOUT=1.5")
    elapsed = time.monotonic() - started
    assert result.exit_code == ExitCode.CONNECT
    assert "did not answer" in result.stderr and "1.5 s" in result.stderr
    assert elapsed < 6


def test_unreachable_proxy_is_exit_3_naming_it(run_smail):
    port = free_port()
    result = run_smail(f"/SMTP_SERVER={MAIL_HOST}", *MESSAGE, f"/PROXY=http://u:{PROXY_PASSWORD}@127.0.0.1:{port}")
    assert result.exit_code == ExitCode.CONNECT
    assert f"http://127.0.0.1:{port}" in result.stderr
    assert PROXY_PASSWORD not in result.output


def test_https_proxy_variable_is_honoured_and_no_proxy_bypasses_it(smtpd, run_smail, proxies):
    handler = RecordingHandler()
    server = smtpd(handler)
    proxy = start(proxies, HTTPConnectProxy, user="u", password=PROXY_PASSWORD)
    env = {"LANG": "C", "HTTPS_PROXY": proxy.url("http", user="u", password=PROXY_PASSWORD)}
    result = run_smail(*server_options(server), *MESSAGE, env=env)
    assert result.exit_code == 0, result.output
    assert PROXY_PASSWORD not in result.output
    # NO_PROXY names the server: direct (127.0.0.1 here), the proxy sees nothing.
    result = run_smail(*server.options, *MESSAGE, env={**env, "NO_PROXY": "localhost,127.0.0.0/8"})
    assert result.exit_code == 0, result.output
    assert len(proxy.record.targets) == 1
    # /PROXY=NONE: the variable is ignored.
    result = run_smail(*server.options, *MESSAGE, "/PROXY=NONE", env=env)
    assert result.exit_code == 0, result.output
    assert len(proxy.record.targets) == 1 and len(handler.received) == 3


def test_all_proxy_socks_variable_serves_smtp(smtpd, run_smail, proxies):
    handler = RecordingHandler()
    server = smtpd(handler)
    proxy = start(proxies, SOCKS5Proxy)
    result = run_smail(*server_options(server), *MESSAGE, env={"LANG": "C", "all_proxy": proxy.url("socks5")})
    assert result.exit_code == 0, result.output
    assert proxy.record.targets == [f"{MAIL_HOST}:{server.port_number}"]


@pytest.mark.parametrize("value, expected", [
    ("ftp://proxy:21", "expected http://host:port"),
    ("https://proxy:3128", "https://"),
    ("http://", "expected http://host:port"),
])
def test_invalid_proxy_is_exit_2(run_smail, value, expected):
    result = run_smail("/SMTP_SERVER=mail.smail.test", *MESSAGE, f"/PROXY={value}")
    assert result.exit_code == ExitCode.PARAM
    assert "/PROXY" in result.stderr and expected in result.stderr


def test_invalid_proxy_never_echoes_its_password(run_smail):
    result = run_smail("/SMTP_SERVER=mail.smail.test", *MESSAGE, f"/PROXY=ftp://u:{PROXY_PASSWORD}@proxy:21")
    assert result.exit_code == ExitCode.PARAM
    assert PROXY_PASSWORD not in result.output


def test_proxy_password_needs_a_user_and_only_one_password(run_smail):
    result = run_smail("/SMTP_SERVER=mail.smail.test", *MESSAGE, "/PROXY=http://proxy:3128",
                       f"/PROXY_PASSWORD={PROXY_PASSWORD}")
    assert result.exit_code == ExitCode.PARAM and "user name" in result.stderr
    result = run_smail("/SMTP_SERVER=mail.smail.test", *MESSAGE, "/PROXY=http://u:x@proxy:3128",
                       f"/PROXY_PASSWORD={PROXY_PASSWORD}")
    assert result.exit_code == ExitCode.PARAM and "not both" in result.stderr
    assert PROXY_PASSWORD not in result.output


def test_graph_refuses_a_socks_proxy(run_smail):
    result = run_smail("/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
                       "/GRAPH_SENDER=u@d.test", "/TO=c@d.test", "/BODY=x", "/PROXY=socks5://127.0.0.1:1080")
    assert result.exit_code == ExitCode.PARAM and "SOCKS5" in result.stderr
