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
