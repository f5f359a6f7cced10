"""HTTPS failures -> SMail errors; after a send request, no answer means "may have been sent"."""

from __future__ import annotations

import pytest
import requests

from smail import httpclient
from smail.errors import ConnectError, MaybeSentError, SetupConnectError, TLSError


@pytest.mark.parametrize("value, seconds", [("120", 120.0), ("0", 0.0), ("soon", None), ("", None)])
def test_retry_after_seconds(value, seconds):
    assert httpclient.retry_after({"Retry-After": value} if value else {}) == seconds


def test_retry_after_http_date_in_the_past_is_zero():
    assert httpclient.retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_network_errors():
    where = "graph.example"
    assert isinstance(httpclient.network_error(requests.exceptions.SSLError("bad cert"), where), TLSError)
    assert isinstance(httpclient.network_error(requests.exceptions.ProxyError("407"), where), SetupConnectError)
    timeout = requests.exceptions.ReadTimeout("read timed out")
    assert type(httpclient.network_error(timeout, where)) is ConnectError
    assert isinstance(httpclient.network_error(timeout, where, sent=True), MaybeSentError)
    dropped = requests.exceptions.ConnectionError("Connection aborted")
    assert isinstance(httpclient.network_error(dropped, where, sent=True), MaybeSentError)


def test_a_tls_error_after_the_request_went_out_may_have_been_sent():
    import ssl

    from urllib3.exceptions import MaxRetryError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    def wrapped(cause: Exception) -> requests.exceptions.SSLError:
        return requests.exceptions.SSLError(MaxRetryError(None, "/send", Urllib3SSLError(cause)))

    eof = wrapped(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    assert isinstance(httpclient.network_error(eof, "graph.example", sent=True), MaybeSentError)
    assert isinstance(httpclient.network_error(eof, "graph.example"), TLSError)
    refused = wrapped(ssl.SSLCertVerificationError(1, "certificate verify failed"))
    assert isinstance(httpclient.network_error(refused, "graph.example", sent=True), TLSError)


def test_a_connection_never_made_is_not_maybe_sent():
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    refused = requests.exceptions.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))
    error = httpclient.network_error(refused, "graph.example", sent=True)
    assert type(error) is ConnectError and error.transient
