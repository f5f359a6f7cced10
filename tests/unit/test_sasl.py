"""SASL answers against the published examples: RFC 4616 (PLAIN), RFC 2195 (CRAM-MD5), and
the XOAUTH2 initial response of Google's and Microsoft's documentation."""

from __future__ import annotations

import base64

from smail import sasl


def test_plain_rfc_4616_example():
    # RFC 4616 section 4: "\0tim\0tanstaaftanstaaf"
    assert sasl.plain("tim", "tanstaaftanstaaf") == b"\0tim\0tanstaaftanstaaf"


def test_plain_utf8_password():
    assert sasl.plain("élodie", "mötdepasse€") == "\0élodie\0mötdepasse€".encode()


def test_cram_md5_rfc_2195_example():
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert sasl.cram_md5("tim", "tanstaaftanstaaf", challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_xoauth2_google_example():
    # Google's "OAuth 2.0 Mechanism" page, base64 of the initial client response
    blob = sasl.xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")
    assert base64.b64encode(blob) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==")


def test_xoauth2_microsoft_example():
    blob = sasl.xoauth2("test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")
    assert base64.b64encode(blob) == (
        b"dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUw"
        b"YmpMQldaV0NjbFJDM0VvQUEBAQ==")


def test_responders_answer_each_round():
    plain = sasl.password_responder("PLAIN", "u", "p")
    assert plain(None) == b"\0u\0p"
    login = sasl.password_responder("LOGIN", "u", "p")
    assert (login(None), login(b"Username:"), login(b"Password:"), login(b"?")) == (None, b"u", b"p", b"")
    cram = sasl.password_responder("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert cram(None) is None and cram(b"<1896.697170952@postoffice.reston.mci.net>").startswith(b"tim b913")


def test_xoauth2_error_challenge_is_answered_with_an_empty_line_and_kept():
    reasons: list[str] = []
    respond = sasl.xoauth2_responder("u@x.test", "tok", reasons)
    assert respond(None) == sasl.xoauth2("u@x.test", "tok")
    assert respond(b"") == sasl.xoauth2("u@x.test", "tok")  # empty 334: the server wants it now
    assert respond(b'{"status":"401"}') == b""
    assert reasons == ['{"status":"401"}']
