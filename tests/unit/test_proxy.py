"""Which proxy SMTP uses (as requests would for https://server), its URL, the CONNECT request,
and the connection to every address of a name in turn within /TIMEOUT."""

from __future__ import annotations

import socket

import pytest

from smail import network, proxy
from smail.network import IPFamily
from smail.proxy import Proxy, ProxyKind
from smail.redact import Secret


@pytest.mark.parametrize("value, kind, host, port, user, password", [
    ("http://proxy.corp:3128", ProxyKind.HTTP, "proxy.corp", 3128, None, None),
    ("HTTP://u:p%40ss@proxy.corp:3128/", ProxyKind.HTTP, "proxy.corp", 3128, "u", "p@ss"),
    ("http://proxy.corp", ProxyKind.HTTP, "proxy.corp", 80, None, None),
    ("socks5://[2001:db8::1]:1080", ProxyKind.SOCKS5, "2001:db8::1", 1080, None, None),
    ("socks5h://user@10.0.0.1", ProxyKind.SOCKS5, "10.0.0.1", 1080, "user", None),
    ("proxy.corp:8080", ProxyKind.HTTP, "proxy.corp", 8080, None, None),  # no scheme: HTTP, as requests reads it
])
def test_parse(value, kind, host, port, user, password):
    parsed = proxy.parse(value)
    assert (parsed.kind, parsed.host, parsed.port, parsed.username) == (kind, host, port, user)
    assert (parsed.password.reveal() if parsed.password else None) == password


@pytest.mark.parametrize("value", ["ftp://p:21", "https://p:3128", "http://", "http://p:3128/path", "p:3128/x",
                                   "http://p:99999", "socks4://p:1080"])
def test_parse_refuses(value):
    with pytest.raises(ValueError):
        proxy.parse(value)


def test_a_proxy_is_shown_without_its_credentials():
    shown = Proxy(kind=ProxyKind.HTTP, host="p", port=8080, username="u", password=Secret("s3cret"))
    assert str(shown) == "http://p:8080"
    assert str(Proxy(kind=ProxyKind.SOCKS5, host="::1", port=1080)) == "socks5://[::1]:1080"
    assert shown.url() == "http://u:s3cret@p:8080"
    assert proxy.password_in("http://u:p%40ss@p:1") == "p@ss"
    assert proxy.password_in("http://p:1") is None


def test_environment_lower_case_wins_and_empty_lower_case_removes():
    assert proxy.environment({"HTTPS_PROXY": "http://a:1", "https_proxy": "http://b:1"}) == {"https_proxy": "http://b:1"}
    assert proxy.environment({"HTTPS_PROXY": "http://a:1", "https_proxy": ""}) == {}
    assert proxy.environment({"No_Proxy": "x", "PATH": "/bin"}) == {"no_proxy": "x"}


@pytest.mark.parametrize("no_proxy, host, port, bypassed", [
    ("*", "smtp.example.com", 587, True),
    ("example.com", "smtp.example.com", 587, True),
    (".example.com", "smtp.example.com", 587, True),
    ("example.com", "example.com", 587, True),
    ("other.com, example.org", "smtp.example.com", 587, False),
    ("smtp.example.com:587", "smtp.example.com", 587, True),
    ("smtp.example.com:25", "smtp.example.com", 587, False),
    ("10.0.0.0/8", "10.1.2.3", 25, True),
    ("10.0.0.0/8", "192.168.1.1", 25, False),
    ("192.168.1.1", "192.168.1.1", 25, True),
    ("2001:db8::/32", "2001:db8::25", 25, True),
    ("", "smtp.example.com", 25, False),
])
def test_no_proxy(no_proxy, host, port, bypassed):
    assert proxy.bypassed(no_proxy, host, port) is bypassed


def test_from_environment_prefers_https_then_all():
    env = {"ALL_PROXY": "socks5://s:1080", "HTTPS_PROXY": "http://h:3128", "HTTP_PROXY": "http://x:1"}
    assert proxy.from_environment(env, "smtp.example.com", 587) == "http://h:3128"
    assert proxy.from_environment({"ALL_PROXY": "socks5://s:1080"}, "smtp.example.com", 587) == "socks5://s:1080"
    assert proxy.from_environment({"HTTP_PROXY": "http://x:1"}, "smtp.example.com", 587) is None
    assert proxy.from_environment({**env, "NO_PROXY": "example.com"}, "smtp.example.com", 587) is None
    assert proxy.from_environment({"HTTPS_PROXY": "proxy.corp:8080"}, "smtp.example.com", 587) == "proxy.corp:8080"


def test_connect_request_with_basic_credentials():
    with_user = Proxy(kind=ProxyKind.HTTP, host="p", port=1, username="ü", password=Secret("pw"))
    request = proxy.connect_request(with_user, "2001:db8::25", 587, user_agent="SMail/1")
    assert request.startswith(b"CONNECT [2001:db8::25]:587 HTTP/1.1\r\nHost: [2001:db8::25]:587\r\n")
    assert b"Proxy-Authorization: Basic w7w6cHc=\r\n" in request and request.endswith(b"\r\n\r\n")
    assert b"Proxy-Authorization" not in proxy.connect_request(Proxy(kind=ProxyKind.HTTP, host="p", port=1),
                                                               "h", 25, user_agent="x")


@pytest.mark.parametrize("head, expected", [
    (b"HTTP/1.1 200 Connection established\r\n\r\n", (200, "200 Connection established")),
    (b"HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n", (407, "407 Proxy Authentication Required")),
    (b"220 smtp.example.com ESMTP\r\n", (0, "220 smtp.example.com ESMTP")),
])
def test_parse_answer(head, expected):
    assert proxy.parse_answer(head) == expected


def test_interleave_alternates_the_families_first_family_first():
    v6a, v6b, v4a = (socket.AF_INET6, 1, 6, "", ("::1", 25)), (socket.AF_INET6, 1, 6, "", ("::2", 25)), \
        (socket.AF_INET, 1, 6, "", ("127.0.0.1", 25))
    assert network.interleave([v6a, v6b, v4a]) == [v6a, v4a, v6b]
    assert network.interleave([]) == []


def test_attempt_timeout_shares_what_is_left():
    assert network.attempt_timeout(60, 2) == 30
    assert network.attempt_timeout(60, 100) == network.MIN_ATTEMPT
    assert network.attempt_timeout(1, 3) == 1


def test_connect_tries_each_address_then_raises_the_last_error():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    asked = []

    def resolve(host, port_, family, kind):
        asked.append(family)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", dead)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
    with network.connect("name", port, 5, family=IPFamily.V4, resolve=resolve) as sock:
        assert sock.getpeername()[1] == port
    assert asked == [socket.AF_INET]
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        network.connect("name", dead, 5, resolve=lambda *a: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                               ("127.0.0.1", dead))])
    with pytest.raises(socket.gaierror):
        network.connect("name", 1, 5, resolve=lambda *a: [])
