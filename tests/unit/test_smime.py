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


# --- /ENCRYPT_TO naming certificates of the Windows store (Other People) ------------------------------

def _bob_in_the_store(tmp_path, where):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from tests.unit.test_certstore import FakeStoreAPI, sha1_hex

    ca = Authority(tmp_path)
    bob = ca.issue("bob", "bob@test.test")
    der = x509.load_pem_x509_certificate(bob.pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return bob, sha1_hex(der), FakeStoreAPI({where: {sha1_hex(der): (der, None)}})


def test_a_recipient_of_the_other_people_store_is_encrypted_to_and_openssl_decrypts(tmp_path):
    from smail.cloud import CertStore, StoreThumbprint
    from smail.message import load_message
    from smail.settings import MessageSettings

    bob, thumbprint, api = _bob_in_the_store(tmp_path, ("AddressBook", CertStore.USER))
    [recipient] = smime.recipients((StoreThumbprint(thumbprint),), api=api)
    assert recipient.addresses == {"bob@test.test"}
    assert str(recipient.path) == f"{thumbprint} (Cert:\\CurrentUser\\AddressBook)"
    assert api.closed == len(api.opened_names) and api.freed_contexts == 1
    message = load_message(MessageSettings(from_addr="alice@demo.test", to=("bob@test.test",), body_text="Bonjour"))
    protection = smime.Protection(signer=None, recipients=(recipient,), any_address=False, encrypt_self=False)
    data = b"".join(smime.protect(message, smime.plan(protection, message)).chunks())
    assert b"application/pkcs7-mime" in data
    if shutil.which("openssl"):
        result = subprocess.run(["openssl", "cms", "-decrypt", "-recip", bob.pem, "-inkey", bob.key],
                                input=data, capture_output=True, timeout=60)
        assert result.returncode == 0 and b"Bonjour" in result.stdout, result.stderr.decode()


def test_store_recipients_are_looked_for_in_other_people_then_personal(tmp_path):
    from smail.cloud import CertStore, StoreThumbprint

    _bob, thumbprint, api = _bob_in_the_store(tmp_path, CertStore.MACHINE)  # the computer's "My"
    api.missing = frozenset({"AddressBook"})  # a profile whose Other People was never created
    [recipient] = smime.recipients((StoreThumbprint(thumbprint),), api=api)
    assert str(recipient.path).endswith("(Cert:\\LocalMachine\\My)")
    assert api.opened_names == [("AddressBook", CertStore.USER), ("AddressBook", CertStore.MACHINE),
                                ("MY", CertStore.USER), ("MY", CertStore.MACHINE)]


def test_a_recipient_thumbprint_no_store_holds_exits_2_naming_the_stores():
    from smail.cloud import StoreThumbprint
    from smail.errors import ExitCode, ParamError
    from tests.unit.test_certstore import FakeStoreAPI

    with pytest.raises(ParamError) as caught:
        smime.recipients((StoreThumbprint("AB" * 20),), api=FakeStoreAPI({}))
    assert caught.value.exit_code == ExitCode.PARAM
    assert "/ENCRYPT_TO" in caught.value.message and "AB" * 20 in caught.value.message
    assert "Cert:\\CurrentUser\\AddressBook" in caught.value.message and "Cert:\\LocalMachine\\My" in caught.value.message


def test_an_unfit_store_recipient_is_refused_as_a_file_would_be(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from smail.cloud import CertStore, StoreThumbprint
    from smail.errors import ParamError
    from tests.unit.test_certstore import FakeStoreAPI, sha1_hex

    expired = Authority(tmp_path).issue("old", "bob@test.test", expired=True)
    der = x509.load_pem_x509_certificate(expired.pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    api = FakeStoreAPI({("AddressBook", CertStore.USER): {sha1_hex(der): (der, None)}})
    with pytest.raises(ParamError) as caught:
        smime.recipients((StoreThumbprint(sha1_hex(der)),), api=api)
    assert sha1_hex(der) in caught.value.message


def test_encrypt_to_items_are_thumbprints_or_files(tmp_path, monkeypatch):
    from smail.cloud import StoreThumbprint
    from smail.converters import certificate_list

    monkeypatch.setattr("sys.platform", "win32")  # the converter only: no Windows call is made
    thumbprint = "3B2A9F00112233445566778899AABBCCDDEEFF01"
    named_like_one = tmp_path / thumbprint
    named_like_one.write_bytes(b"a file")
    (tmp_path / "bob.cer").write_bytes(b"a file")
    copied = "\u200e3b 2a 9f 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 01"  # certmgr.msc's copy
    assert certificate_list(f"{copied}; bob.cer, ./{thumbprint}", base=tmp_path) == (
        StoreThumbprint(thumbprint), tmp_path / "bob.cer", tmp_path / thumbprint)
