"""S/MIME end to end: what the SMTP server received, checked by OpenSSL and Python's email parser."""

from __future__ import annotations

import email
import email.policy
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from smail.errors import ExitCode
from tests.smime_certs import PASSWORD

OPENSSL = shutil.which("openssl")
POWERSHELL = shutil.which("powershell") or shutil.which("pwsh")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command verifies what was received")


def _openssl(*args: str | Path, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *map(str, args)], input=data, capture_output=True, timeout=60)


def verify(data: bytes, pki: SimpleNamespace, tmp_path: Path) -> bytes:
    """The signed content, verified by `openssl smime` and `openssl cms` against the test CA."""
    out = tmp_path / "verified.eml"
    for tool in ("smime", "cms"):
        result = _openssl(tool, "-verify", "-CAfile", pki.ca.pem, "-purpose", "smimesign", "-out", out, data=data)
        assert result.returncode == 0, result.stderr.decode()
    return out.read_bytes()


def decrypt(data: bytes, who: SimpleNamespace, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    out = tmp_path / "decrypted.eml"
    result = _openssl("cms", "-decrypt", "-recip", who.pem, "-inkey", who.key, "-out", out, data=data)
    if result.returncode == 0:
        result.stdout = out.read_bytes()
    return result


SIGN = ("/FROM_ADDR=alice@demo.test", "/TO=bob@test.test", "/SUBJECT=Bulletin de paie", "/BODY=Bonjour, voici été.")


def _sign_options(pki: SimpleNamespace) -> tuple[str, ...]:
    return (f"/SIGN_CERT={pki.alice.pfx}", f"/SIGN_CERT_PASSWORD={PASSWORD}")


def test_signed_message_verifies_with_openssl_and_parses(run_smail, smtpd, pki, files, tmp_path):
    server = smtpd()
    attachment = files("Fiche de paie.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 400)
    result = run_smail(*server.options, *SIGN, *_sign_options(pki), f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert PASSWORD not in result.output + result.log
    data = server.handler.received[0].data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/signed"
    assert parsed.get_param("protocol") == "application/pkcs7-signature"
    assert parsed.get_param("micalg") == "sha-256"
    signed, signature = parsed.get_payload()
    assert signed.get_content_type() == "multipart/mixed"
    assert signature.get_content_type() == "application/pkcs7-signature"
    assert [p.get_filename() for p in signed.iter_attachments()] == ["Fiche de paie.pdf"]
    assert next(signed.iter_attachments()).get_content() == attachment.read_bytes()
    # The signed part: 7-bit, CRLF only.
    start = data.index(b"\r\n\r\n--=_SMail_")
    assert data[start:].isascii() and b"\n" not in data[start:].replace(b"\r\n", b"")
    if OPENSSL:
        content = verify(data, pki, tmp_path)
        assert b"multipart/mixed" in content
        certificates = _openssl("pkcs7", "-inform", "DER", "-print_certs", data=signature.get_content())
        assert certificates.stdout.count(b"subject=") == 2  # the signer and its CA


@needs_openssl
def test_pem_bundle_with_password_file(run_smail, smtpd, pki, files, tmp_path):
    server = smtpd()
    password = files("pw.txt", PASSWORD + "\r\n")
    result = run_smail(*server.options, *SIGN, f"/SIGN_CERT={pki.alice.bundle}", f"/SIGN_CERT_PASSWORD_FILE={password}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert b"Bonjour" in verify(server.handler.received[0].data, pki, tmp_path)


@pytest.mark.parametrize("who, expected", [
    ("other", "is for someone.else@demo.test, not for the sender alice@demo.test"),
    ("expired", "expired on"),
    ("no_eku", "not valid for e-mail protection"),
])
def test_unfit_signing_certificate_exits_2_and_sends_nothing(run_smail, smtpd, pki, who, expected):
    server = smtpd()
    result = run_smail(*server.options, *SIGN, f"/SIGN_CERT={getattr(pki, who).pfx}",
                       f"/SIGN_CERT_PASSWORD={PASSWORD}")
    assert result.exit_code == ExitCode.PARAM
    assert expected in result.stderr and "Traceback" not in result.output + result.log
    assert server.handler.received == []


def test_unfit_certificate_in_french(run_smail, pki):
    result = run_smail("/LANG=FR", "/SMTP_SERVER=127.0.0.1", *SIGN, f"/SIGN_CERT={pki.expired.pfx}",
                       f"/SIGN_CERT_PASSWORD={PASSWORD}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "a expiré le" in result.stderr


@needs_openssl
def test_sign_any_address_signs_for_another_address(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    result = run_smail(*server.options, *SIGN, f"/SIGN_CERT={pki.other.pfx}", f"/SIGN_CERT_PASSWORD={PASSWORD}",
                       "/SIGN_ANY_ADDRESS")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert b"Bonjour" in verify(server.handler.received[0].data, pki, tmp_path)


def test_wrong_password_exits_2_without_showing_it(run_smail, pki):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, f"/SIGN_CERT={pki.alice.pfx}",
                       "/SIGN_CERT_PASSWORD=not-the-Password-canary", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "could not be opened" in result.stderr
    assert "not-the-Password-canary" not in result.output + result.log


def test_missing_certificate_file_exits_8(run_smail, tmp_path):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, f"/SIGN_CERT={tmp_path / 'none.pfx'}", "/DRY_RUN")
    assert result.exit_code == ExitCode.FILE_NOT_FOUND


@needs_openssl
def test_signed_then_encrypted_to_every_recipient_and_the_sender(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    result = run_smail(*server.options, *SIGN, "/CC=carol@test.test", *_sign_options(pki),
                       f"/ENCRYPT_TO={pki.bob.pem},{pki.carol.pem}")
    assert result.exit_code == ExitCode.OK, result.stderr
    data = server.handler.received[0].data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.get_content_type() == "application/pkcs7-mime"
    assert parsed.get_param("smime-type") == "enveloped-data"
    printed = _openssl("cms", "-cmsout", "-print", data=data).stdout
    assert b"aes-256-cbc" in printed
    assert printed.count(b"d.issuerAndSerialNumber") == 3  # bob, carol and alice herself
    for who in (pki.bob, pki.carol, pki.alice):
        decrypted = decrypt(data, who, tmp_path)
        assert decrypted.returncode == 0, decrypted.stderr.decode()
        inner = email.message_from_bytes(decrypted.stdout, policy=email.policy.default)
        assert inner.get_content_type() == "multipart/signed"
        assert b"Bonjour" in verify(decrypted.stdout, pki, tmp_path)
    assert decrypt(data, pki.other, tmp_path).returncode != 0


@needs_openssl
def test_encrypt_without_signing_and_without_self(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    result = run_smail(*server.options, *SIGN, f"/ENCRYPT_TO={pki.bob.pem}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.OK, result.stderr
    data = server.handler.received[0].data
    decrypted = decrypt(data, pki.bob, tmp_path)
    assert decrypted.returncode == 0
    assert email.message_from_bytes(decrypted.stdout).get_content_type() == "text/plain"
    assert decrypt(data, pki.alice, tmp_path).returncode != 0


def test_recipient_without_certificate_exits_2_naming_it(run_smail, smtpd, pki):
    server = smtpd()
    result = run_smail(*server.options, *SIGN, "/BCC=nobody@test.test", *_sign_options(pki),
                       f"/ENCRYPT_TO={pki.bob.pem}")
    assert result.exit_code == ExitCode.PARAM
    assert "no certificate for nobody@test.test" in result.stderr
    assert server.handler.received == []


def test_encrypting_needs_the_senders_certificate(run_smail, pki):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, f"/ENCRYPT_TO={pki.bob.pem}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "/ENCRYPT_NO_SELF" in result.stderr


def test_expired_recipient_certificate_exits_2(run_smail, pki):
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=bob@test.test", "/TO=alice@demo.test", "/BODY=x",
                       f"/ENCRYPT_TO={pki.expired.pem}", "/ENCRYPT_NO_SELF", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "expired on" in result.stderr


def test_companion_options_need_their_option(run_smail, pki):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, "/SIGN_ANY_ADDRESS", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM and "/SIGN_ANY_ADDRESS needs /SIGN_CERT" in result.stderr


@needs_openssl
def test_dry_run_saves_the_signed_message(run_smail, pki, tmp_path):
    saved = tmp_path / "signed.eml"
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, *_sign_options(pki), "/DRY_RUN", f"/SAVE_EML={saved}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert b"Bonjour" in verify(saved.read_bytes(), pki, tmp_path)


@needs_openssl
def test_batch_signs_each_row_and_encrypts_to_each_rows_certificate(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    shutil.copy(pki.bob.pem, tmp_path / "bob.cer")
    rows = tmp_path / "rows.csv"
    rows.write_text(f"TO;ENCRYPT_TO;name\nbob@test.test;bob.cer;Bob\ncarol@test.test;{pki.carol.pem};Carol\n"
                    "alice@demo.test;;Alice\n", encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=alice@demo.test", "/SUBJECT=Paie {{ name }}",
                       "/BODY=Bonjour {{ name }}", *_sign_options(pki), f"/BATCH={rows}")
    assert result.exit_code == ExitCode.OK, result.stderr
    bob, carol, alice = (r.data for r in server.handler.received)
    for data, who, name in ((bob, pki.bob, b"Bob"), (carol, pki.carol, b"Carol")):
        decrypted = decrypt(data, who, tmp_path)
        assert decrypted.returncode == 0, decrypted.stderr.decode()
        assert b"Bonjour " + name in verify(decrypted.stdout, pki, tmp_path)
        assert decrypt(data, pki.alice, tmp_path).returncode == 0  # the sender's own copy
    assert decrypt(bob, pki.carol, tmp_path).returncode != 0
    assert email.message_from_bytes(alice).get_content_type() == "multipart/signed"  # no certificate: signed only
    assert b"Bonjour Alice" in verify(alice, pki, tmp_path)


def test_batch_row_without_a_certificate_for_its_recipient_stops_everything(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    rows = tmp_path / "rows.csv"
    rows.write_text(f"TO,ENCRYPT_TO\nbob@test.test,{pki.bob.pem}\nnobody@test.test,{pki.bob.pem}\n", encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=alice@demo.test", "/BODY=x", *_sign_options(pki),
                       f"/BATCH={rows}")
    assert result.exit_code == ExitCode.PARAM
    assert "Row 3" in result.stderr and "nobody@test.test" in result.stderr
    assert server.handler.received == []


def _der_thumbprint(identity: SimpleNamespace) -> tuple[bytes, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(identity.pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return der, hashlib.sha1(der).hexdigest().upper()  # noqa: S324


@pytest.mark.skipif(sys.platform == "win32", reason="the store exists there")
def test_off_windows_an_encrypt_to_thumbprint_exits_2_and_sends_nothing(run_smail, smtpd, pki, tmp_path):
    server = smtpd()
    _der, thumbprint = _der_thumbprint(pki.bob)
    spaced = " ".join(thumbprint[i:i + 2] for i in range(0, 40, 2)).lower()  # as certmgr.msc shows it
    result = run_smail(*server.options, *SIGN, f"/ENCRYPT_TO={spaced}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert thumbprint in result.stderr and "exists only on Windows" in result.stderr
    rows = tmp_path / "rows.csv"
    rows.write_text(f"TO;ENCRYPT_TO\nbob@test.test;{pki.bob.pem}\ncarol@test.test;{thumbprint}\n", encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=alice@demo.test", "/BODY=x", f"/BATCH={rows}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "Row 3" in result.stderr and "exists only on Windows" in result.stderr
    assert server.handler.received == []


@pytest.mark.skipif(sys.platform != "win32" or POWERSHELL is None or OPENSSL is None,
                    reason="needs Windows, PowerShell and openssl")
def test_a_certificate_of_other_people_given_by_thumbprint_encrypts_what_openssl_decrypts(run_smail, smtpd, pki,
                                                                                           tmp_path):
    server = smtpd()
    der, thumbprint = _der_thumbprint(pki.bob)
    cer = tmp_path / "bob.der.cer"
    cer.write_bytes(der)
    subprocess.run([POWERSHELL, "-NoProfile", "-Command", "$ErrorActionPreference = 'Stop'; "
                    f"Import-Certificate -FilePath '{cer}' -CertStoreLocation Cert:\\CurrentUser\\AddressBook | Out-Null"],
                   capture_output=True, text=True, timeout=120, check=True)
    try:
        result = run_smail(*server.options, *SIGN, f"/ENCRYPT_TO={thumbprint}", "/ENCRYPT_NO_SELF")
        assert result.exit_code == ExitCode.OK, result.stderr
        decrypted = decrypt(server.handler.received[0].data, pki.bob, tmp_path)
        assert decrypted.returncode == 0, decrypted.stderr.decode()
        assert b"Bonjour" in decrypted.stdout
    finally:
        subprocess.run([POWERSHELL, "-NoProfile", "-Command",
                        f"Remove-Item -Path Cert:\\CurrentUser\\AddressBook\\{thumbprint}"],
                       capture_output=True, timeout=120)


@needs_openssl
def test_outbox_keeps_the_message_before_signing_and_flush_signs_it(run_smail, smtpd, pki, tmp_path):
    from tests.smtpd import free_port

    outbox = tmp_path / "outbox"
    down = ("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}")
    kept = run_smail(*down, *SIGN, *_sign_options(pki), f"/ENCRYPT_TO={pki.bob.pem}", f"/OUTBOX={outbox}")
    assert kept.exit_code == ExitCode.QUEUED, kept.stderr
    stored = b"".join(p.read_bytes() for p in outbox.rglob("*") if p.is_file())
    assert b"PRIVATE KEY" not in stored and PASSWORD.encode() not in stored
    assert b"BEGIN CERTIFICATE" in stored  # the recipients' certificates, public
    server = smtpd()
    unsigned = run_smail(*server.options, "/FLUSH", f"/OUTBOX={outbox}")
    assert unsigned.exit_code != ExitCode.OK and "never sent unsigned" in unsigned.stderr + unsigned.log
    assert server.handler.received == []
    flushed = run_smail(*server.options, "/FLUSH", f"/OUTBOX={outbox}", *_sign_options(pki))
    assert flushed.exit_code == ExitCode.OK, flushed.stderr
    data = server.handler.received[0].data
    for who in (pki.bob, pki.alice):
        decrypted = decrypt(data, who, tmp_path)
        assert decrypted.returncode == 0, decrypted.stderr.decode()
        assert b"Bonjour" in verify(decrypted.stdout, pki, tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="the store exists there")
def test_off_windows_the_store_options_exit_2(run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SIGN, "/SIGN_CERT_THUMBPRINT=" + "3B" * 20, "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM and "exists only on Windows" in result.stderr



@pytest.mark.skipif(sys.platform != "win32" or POWERSHELL is None or OPENSSL is None,
                    reason="needs Windows, PowerShell and openssl")
def test_a_non_exportable_store_key_signs_a_message_openssl_verifies(run_smail, smtpd, tmp_path):
    server = smtpd()
    cer = tmp_path / "signer.cer"
    create = (
        "$ErrorActionPreference = 'Stop'; "
        "$c = New-SelfSignedCertificate -Subject 'CN=SMail S/MIME test' -CertStoreLocation Cert:\\CurrentUser\\My "
        "-KeyExportPolicy NonExportable -KeyAlgorithm RSA -KeyLength 2048 -KeyUsage DigitalSignature "
        "-Provider 'Microsoft Software Key Storage Provider' -NotAfter (Get-Date).AddDays(60) "
        "-TextExtension @('2.5.29.37={text}1.3.6.1.5.5.7.3.4', '2.5.29.17={text}email=alice@demo.test'); "
        f"Export-Certificate -Cert $c -FilePath '{cer}' | Out-Null; $c.Thumbprint")
    made = subprocess.run([POWERSHELL, "-NoProfile", "-Command", create], capture_output=True, text=True,
                          timeout=120, check=True)
    thumbprint = made.stdout.strip().splitlines()[-1]
    try:
        result = run_smail(*server.options, *SIGN, f"/SIGN_CERT_THUMBPRINT={thumbprint}", "/SIGN_CERT_STORE=USER")
        assert result.exit_code == ExitCode.OK, result.stderr
        data = server.handler.received[0].data
        verified = _openssl("smime", "-verify", "-noverify", "-out", tmp_path / "out.eml", data=data)
        assert verified.returncode == 0, verified.stderr.decode()
    finally:
        subprocess.run([POWERSHELL, "-NoProfile", "-Command",
                        f"Remove-Item -Path Cert:\\CurrentUser\\My\\{thumbprint} -DeleteKey"],
                       capture_output=True, timeout=120)
