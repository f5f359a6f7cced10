"""IPv6: servers on ::1, address literals with and without brackets and ports, /IP=4|6, a name
with both families, and a proxy asked for an IPv6 literal. Skipped where there is no ::1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from smail.errors import ExitCode
from tests.proxies import HTTPConnectProxy
from tests.smtpd import RecordingHandler


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
MESSAGE = ["/FROM_ADDR=albert@smail.test", "/TO=bob@smail.test", "/BODY=over IPv6"]


def _localhost_has_both_families() -> bool:
    try:
        families = {info[0] for info in socket.getaddrinfo("localhost", 25, 0, socket.SOCK_STREAM)}
    except OSError:
        return False
    return {socket.AF_INET, socket.AF_INET6} <= families


class V6Server:
    def __init__(self) -> None:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            self.port = sock.getsockname()[1]
        self.handler = RecordingHandler()
        self.controller = Controller(self.handler, hostname="::1", port=self.port)
        self.controller.start()


@pytest.fixture
def v6() -> Iterator[V6Server]:
    server = V6Server()
    yield server
    server.controller.stop()


@pytest.mark.parametrize("server_option", ["/SMTP_SERVER=::1", "/SMTP_SERVER=[::1]", "/SMTP_SERVER=0:0:0:0:0:0:0:1"])
def test_ipv6_literal(v6, run_smail, server_option):
    result = run_smail(server_option, f"/SMTP_PORT={v6.port}", *MESSAGE)
    assert result.exit_code == 0, result.output
    assert f"via [::1]:{v6.port}" in result.stdout
    assert len(v6.handler.received) == 1
    helo = v6.handler.helo_names[0]
    assert "." in helo or helo == "[IPv6:::1]"  # RFC 5321 section 4.1.3 address literal


def test_ipv6_literal_with_its_port_in_brackets(v6, run_smail):
    result = run_smail(f"/SMTP_SERVER=[::1]:{v6.port}", *MESSAGE)
    assert result.exit_code == 0, result.output
    assert len(v6.handler.received) == 1


def test_port_twice_must_agree(v6, run_smail):
    result = run_smail(f"/SMTP_SERVER=[::1]:{v6.port}", f"/SMTP_PORT={v6.port + 1}", *MESSAGE)
    assert result.exit_code == ExitCode.PARAM and "/SMTP_PORT" in result.stderr


def test_ip_family_contradicting_a_literal_is_exit_2(run_smail):
    result = run_smail("/SMTP_SERVER=::1", "/IP=4", *MESSAGE)
    assert result.exit_code == ExitCode.PARAM and "/IP=4" in result.stderr
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/IP=6", *MESSAGE)
    assert result.exit_code == ExitCode.PARAM


@pytest.mark.skipif(not _localhost_has_both_families(), reason="localhost does not resolve to both ::1 and 127.0.0.1")
def test_a_name_with_both_families_reaches_the_one_that_listens(v6, run_smail):
    # The server listens on ::1 only: whichever address getaddrinfo gives first, SMail gets there.
    result = run_smail("/SMTP_SERVER=localhost", f"/SMTP_PORT={v6.port}", *MESSAGE)
    assert result.exit_code == 0, result.output
    result = run_smail("/SMTP_SERVER=localhost", f"/SMTP_PORT={v6.port}", "/IP=6", *MESSAGE)
    assert result.exit_code == 0, result.output
    assert len(v6.handler.received) == 2
    # /IP=4 keeps to 127.0.0.1, where nothing listens on that port.
    result = run_smail("/SMTP_SERVER=localhost", f"/SMTP_PORT={v6.port}", "/IP=4", *MESSAGE)
    assert result.exit_code == ExitCode.CONNECT
    assert "refused" in result.stderr


def test_proxy_is_asked_for_the_bracketed_literal(v6, run_smail):
    proxy = HTTPConnectProxy()
    try:
        result = run_smail(f"/SMTP_SERVER=[::1]:{v6.port}", *MESSAGE, f"/PROXY={proxy.url('http')}")
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert proxy.record.requests[0].startswith(f"CONNECT [::1]:{v6.port} HTTP/1.1\r\n".encode())


def test_proxy_reached_over_ipv6(v6, run_smail):
    proxy = HTTPConnectProxy(family=socket.AF_INET6)
    try:
        result = run_smail("/SMTP_SERVER=::1", f"/SMTP_PORT={v6.port}", *MESSAGE, f"/PROXY={proxy.url('http')}")
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert "http://[::1]:" in result.log


def test_a_name_with_a_and_aaaa_tries_each_address_in_turn(v6, run_smail, monkeypatch):
    # dual.smail.test has an A record where nothing listens, then an AAAA where the server is.
    real = socket.getaddrinfo

    def resolve(host, port, family=0, kind=0, *args):
        if host != "dual.smail.test":
            return real(host, port, family, kind, *args)
        both = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]
        return [info for info in both if family in (0, info[0])]
    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    result = run_smail("/SMTP_SERVER=dual.smail.test", f"/SMTP_PORT={v6.port}", *MESSAGE)
    assert result.exit_code == 0, result.output
    result = run_smail("/SMTP_SERVER=dual.smail.test", f"/SMTP_PORT={v6.port}", "/IP=4", *MESSAGE)
    assert result.exit_code == ExitCode.CONNECT and "refused" in result.stderr
    assert len(v6.handler.received) == 1
