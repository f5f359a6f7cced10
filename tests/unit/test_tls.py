"""The TLS context: the OS verifier, TLS 1.2 floor, /CA_FILE, /SSL_NO_VERIFY, store failures."""

from __future__ import annotations

import ssl

import pytest

from smail import tls
from smail.errors import TLSError
from smail.tls import TLSSettings, TLSVersion


def test_minimum_version_and_os_verifier():
    context = tls.create_context(TLSSettings())
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert type(context).__module__.startswith("truststore")
    assert tls.create_context(TLSSettings(min_version=TLSVersion.TLSV1_3)).minimum_version == ssl.TLSVersion.TLSv1_3


def test_no_verify():
    context = tls.create_context(TLSSettings(verify=False))
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_a_store_that_cannot_be_used_is_exit_3(monkeypatch):
    import truststore

    def broken(*args, **kwargs):
        raise OSError("the certificate store is unreadable")
    monkeypatch.setattr(truststore, "SSLContext", broken)
    with pytest.raises(TLSError, match="certificate store could not be used: the certificate store is unreadable"):
        tls.create_context(TLSSettings())


# --- a failure of the OS verifier itself ------------------------------------------------------------

def _verifier_error() -> OSError:
    """An OSError raised inside truststore, as its Windows verifier raises WinError(E_INVALIDARG)."""
    namespace = {"__name__": "truststore._windows"}
    exec("def verify():\n    raise OSError(22, 'Invalid parameter.', None, -2147024809)", namespace)
    try:
        namespace["verify"]()
    except OSError as exc:
        return exc
    raise AssertionError("unreachable")


def test_an_os_verifier_failure_is_found_through_urllib3s_wrapping():
    import requests
    from urllib3.exceptions import MaxRetryError, ProtocolError

    error = _verifier_error()
    assert tls.verifier_failure(error) is error
    wrapped = requests.exceptions.ConnectionError(
        MaxRetryError(None, "/token", ProtocolError("Connection aborted.", error)))
    assert tls.verifier_failure(wrapped) is error


def test_other_errors_are_not_verifier_failures():
    assert tls.verifier_failure(OSError(22, "Invalid parameter.")) is None  # raised by SMail's own code
    assert tls.verifier_failure(ConnectionResetError(104, "reset")) is None
    assert tls.verifier_failure(ssl.SSLError(1, "handshake failure")) is None


def test_an_os_verifier_failure_is_a_tls_error_naming_verification():
    import requests

    from smail import httpclient

    error = requests.exceptions.ConnectionError(_verifier_error())
    failure = httpclient.network_error(error, "login.microsoftonline.com")
    assert isinstance(failure, TLSError) and failure.exit_code == 3
    assert "could not be verified" in str(failure) and "certificate verifier failed" in str(failure)
    assert "Cannot connect" not in str(failure) and "Invalid parameter" in str(failure)
