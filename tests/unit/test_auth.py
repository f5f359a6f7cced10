"""msal's error dicts -> the probable cause; temporary ones are retried; certificates checked."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from smail import auth, certificate
from smail.cloud import AppCredentials
from smail.errors import AuthError, ExitCode, IdentityUnavailableError, ParamError
from smail.redact import Secret

APP = AppCredentials(tenant_id="contoso", app_id="app-1", authority_host="https://login.microsoftonline.com",
                     graph_endpoint="https://graph.microsoft.com", graph_scope="https://graph.microsoft.com/.default",
                     smtp_scope="https://outlook.office365.com/.default")


@pytest.mark.parametrize("result, cause", [
    ({"error": "invalid_client", "error_codes": [7000215]}, "the client secret is wrong"),
    ({"error": "invalid_client", "error_description": "AADSTS7000222: expired"}, "has expired"),
    ({"error": "invalid_request", "error_codes": [90002]}, "the tenant contoso does not exist"),
    ({"error": "unauthorized_client", "error_codes": [700016]}, "app-1 is not registered in tenant contoso"),
    ({"error": "invalid_request", "error_codes": [53003]}, "Conditional Access"),
])
def test_refusals_name_the_probable_cause(result, cause):
    error = auth.refusal(result, APP, status=400)
    assert type(error) is AuthError and cause in error.message and error.exit_code == ExitCode.AUTH
    assert not error.transient


@pytest.mark.parametrize("result, status", [({"error": "temporarily_unavailable"}, 400),
                                            ({"error": "x", "error_codes": [90033]}, 400),
                                            ({"error": "server_error"}, 503), ({"error": "throttled"}, 429)])
def test_temporary_refusals_are_retried(result, status):
    error = auth.refusal(result, APP, status=status, retry_after=7)
    assert isinstance(error, IdentityUnavailableError) and error.transient and error.retry_after == 7


def _certificate(tmp_path, password: bytes | None):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smail")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"app", key, cert, None, encryption))
    pem = tmp_path / "app.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
                    + cert.public_bytes(serialization.Encoding.PEM))
    return pfx, pem


def test_certificates_open_with_the_right_password_only(tmp_path):
    pfx, pem = _certificate(tmp_path, b"right")
    assert certificate.load(pfx, Secret("right")) == {"private_key_pfx_path": str(pfx), "passphrase": "right"}
    assert set(certificate.load(pem, Secret("right"))) == {"private_key", "public_certificate", "passphrase"}
    for path in (pfx, pem):
        with pytest.raises(AuthError, match="could not be used"):
            certificate.load(path, Secret("wrong"))
    other = tmp_path / "note.pem"
    other.write_text("not a certificate")
    with pytest.raises(ParamError, match="must hold the certificate and its private key"):
        certificate.load(other, None)
