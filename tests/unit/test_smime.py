"""S/MIME signatures made over a digest: the same SignedData the builder makes over the content."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from smail import smime
from smail.redact import Secret
from tests.smime_certs import PASSWORD, Authority


@pytest.mark.parametrize("elliptic", [False, True], ids=["rsa", "ecdsa"])
def test_signature_over_a_digest_verifies_over_the_content(tmp_path, elliptic):
    ca = Authority(tmp_path)
    identity = ca.issue("signer", "signer@demo.test", elliptic=elliptic)
    signer = smime.load_signer(identity.pfx, Secret(PASSWORD))
    content = b"Content-Type: text/plain\r\n\r\n" + b"ligne\r\n" * 10_000
    signature = smime.signature_of_digest(signer, hashlib.sha256(content).digest())
    assert signature is not None  # the streaming way, not the fallback
    if shutil.which("openssl"):
        (tmp_path / "content").write_bytes(content)
        (tmp_path / "sig.der").write_bytes(signature)
        result = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                                 "-content", tmp_path / "content", "-CAfile", ca.pem, "-out", tmp_path / "out"],
                                capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode()
        tampered = content.replace(b"ligne", b"lignE", 1)
        (tmp_path / "content").write_bytes(tampered)
        result = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "sig.der",
                                 "-content", tmp_path / "content", "-CAfile", ca.pem, "-out", tmp_path / "out"],
                                capture_output=True, timeout=60)
        assert result.returncode != 0


def _signed_by_the_store(tmp_path, *, acquire_error: int = 0):
    """A message signed through a store certificate, its key held by a software signer (as CNG
    holds a non-exportable one): the Windows calls are those of a fake of smail.windows."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from smail.cloud import CertStore
    from tests.unit.test_certstore import FakeStoreAPI, sha1_hex, software_sign

    ca = Authority(tmp_path)
    identity = ca.issue("store", "alice@demo.test")
    key = serialization.load_pem_private_key(identity.key.read_bytes(), None)
    der = x509.load_pem_x509_certificate(identity.pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    api = FakeStoreAPI({CertStore.MACHINE: {sha1_hex(der): (der, software_sign(key))}}, acquire_error=acquire_error)
    return ca, smime.store_signer(sha1_hex(der), CertStore.MACHINE, api=api)


def test_a_store_certificate_signs_through_the_system_and_openssl_verifies(tmp_path):
    from smail.message import load_message
    from smail.settings import MessageSettings

    ca, signer = _signed_by_the_store(tmp_path)
    smime.check_certificate(signer.certificate, signer.path, signing=True)
    message = load_message(MessageSettings(from_addr="alice@demo.test", to=("bob@test.test",), body_text="Bonjour"))
    protection = smime.Protection(signer=signer, recipients=(), any_address=False, encrypt_self=True)
    rendered = smime.protect(message, smime.plan(protection, message))
    data = b"".join(rendered.chunks())
    assert b"multipart/signed" in data
    if shutil.which("openssl"):
        result = subprocess.run(["openssl", "smime", "-verify", "-CAfile", ca.pem, "-out", tmp_path / "out"],
                                input=data, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode()


def test_a_store_key_this_account_may_not_use_exits_4_before_anything(tmp_path):
    from smail import windows
    from smail.errors import AuthError

    with pytest.raises(AuthError) as caught:
        _signed_by_the_store(tmp_path, acquire_error=windows.NTE_PERM)
    assert "Manage Private Keys" in caught.value.message


def test_a_thumbprint_no_store_holds_exits_2():
    from smail.cloud import CertStore
    from smail.errors import ParamError
    from tests.unit.test_certstore import FakeStoreAPI

    with pytest.raises(ParamError) as caught:
        smime.store_signer("00" * 20, CertStore.USER, api=FakeStoreAPI({}))
    assert "/SIGN_CERT_THUMBPRINT" in caught.value.message
