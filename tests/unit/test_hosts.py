"""Host and domain names: IDNA 2008 / UTS 46 and the RFC 1035 length rules."""

from __future__ import annotations

import pytest

from smail import hosts


@pytest.mark.parametrize("name, expected", [
    ("straße.de", "xn--strae-oqa.de"),          # IDNA 2008, not the IDNA 2003 "strasse.de"
    ("Exämple.FR", "xn--exmple-cua.fr"),
    ("smtp.example.com.", "smtp.example.com"),
    ("ERP_01.corp.example", "ERP_01.corp.example"),
])
def test_ascii_name(name, expected):
    assert hosts.ascii_name(name) == expected


@pytest.mark.parametrize("name", ["smtp..example.com", "x" * 64 + ".example", ".", "", "-a.example",
                                  "a b.example", "a" * 250 + ".example", "ex\x00ample.com", "例..com"])
def test_invalid_names(name):
    with pytest.raises(ValueError):
        hosts.ascii_name(name)


@pytest.mark.parametrize("value, expected", [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("::1", "::1"),
                                             ("smtp.büro.de", "smtp.xn--bro-hoa.de")])
def test_server_name(value, expected):
    assert hosts.server_name(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("smtp.example.com", ("smtp.example.com", None)),
    ("smtp.example.com:587", ("smtp.example.com", 587)),
    ("192.0.2.25:25", ("192.0.2.25", 25)),
    ("2001:db8::25", ("2001:db8::25", None)),
    ("2001:DB8:0::25", ("2001:db8::25", None)),
    ("[2001:db8::25]", ("2001:db8::25", None)),
    ("[2001:db8::25]:587", ("2001:db8::25", 587)),
    ("::1", ("::1", None)),
])
def test_server_address(value, expected):
    assert hosts.server_address(value) == expected


@pytest.mark.parametrize("value", ["[2001:db8::25", "[2001:db8::25]587", "[smtp.example.com]:25", "host:0",
                                   "host:70000", "host:x", "[::1]:"])
def test_server_address_refuses(value):
    with pytest.raises(ValueError):
        hosts.server_address(value)


def test_with_port_brackets_ipv6():
    assert hosts.with_port("2001:db8::25", 587) == "[2001:db8::25]:587"
    assert hosts.with_port("smtp.example.com", 25) == "smtp.example.com:25"
