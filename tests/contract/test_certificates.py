"""Certificate credentials against the fake identity platform, which verifies every client
assertion (signature, x5t / x5t#S256, audience, issuer, lifetime): the one built from a key of
the Windows certificate store (signed through smail.windows, here by a software stand-in; on
Windows by CNG with a non-exportable key) and the ones msal builds from a PFX or PEM file.
A certificate about to expire warns; an expired one stops the run before Entra is contacted."""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from smail import assertion, auth, certstore, i18n
from smail.cloud import AppCredentials, CertStore
from smail.errors import AuthError, ExitCode
from smail.tls import TLSSettings
from tests.fakes.microsoft import App, FakeMicrosoft
from tests.unit.test_certstore import FakeStoreAPI, make_certificate, sha1_hex, software_sign

SENDER = "erp@contoso.test"


@pytest.fixture(autouse=True)
def english():
    """These tests call SMail's functions directly: the messages in English, whatever ran before."""
    i18n.activate("en")


@pytest.fixture
def microsoft(tls_ca):
    fake = FakeMicrosoft(tls_ca.server_context()).start()
    yield fake
    fake.stop()


def app_for(microsoft: FakeMicrosoft, thumbprint: str, **overrides) -> AppCredentials:
    fields = dict(tenant_id=microsoft.tenant, app_id="app-store", cert_thumbprint=thumbprint,
                  authority_host=microsoft.authority, graph_endpoint=microsoft.graph,
                  graph_scope="https://graph.microsoft.com/.default",
                  smtp_scope="https://outlook.office365.com/.default")
    fields.update(overrides)
    return AppCredentials(**fields)


def register(microsoft: FakeMicrosoft, der: bytes, app_id: str = "app-store") -> None:
    microsoft.register(App(app_id, certificate=x509.load_der_x509_certificate(der), mailboxes={SENDER}))


def store_token(microsoft, tls_ca, app, api):
    return auth.client_token(app, app.graph_scope, tls_settings=TLSSettings(ca_file=tls_ca.pem), timeout=10,
                             store_signer=lambda thumbprint, store: certstore.open_signer(thumbprint, store, api=api))


def test_a_store_key_signs_an_assertion_the_identity_platform_accepts(microsoft, tls_ca, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    key, der = make_certificate()
    register(microsoft, der)
    api = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(key))}})
    token = store_token(microsoft, tls_ca, app_for(microsoft, sha1_hex(der)), api)
    assert microsoft.tokens[token.reveal()] == ("app-store", "https://graph.microsoft.com")
    assert [p for _m, p, _h in microsoft.requests if p.endswith("/token")] == [f"/{microsoft.tenant}/oauth2/v2.0/token"]
    assert api.freed_keys >= 1 and api.closed == len(api.opened)  # every handle given back


def test_the_fake_refuses_an_assertion_of_another_key_or_audience(microsoft, tls_ca, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    key, der = make_certificate()
    other_key, _other = make_certificate(name="other")
    register(microsoft, der)
    wrong_key = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(other_key))}})
    with pytest.raises(AuthError, match="certificate is not registered.*invalid signature"):
        store_token(microsoft, tls_ca, app_for(microsoft, sha1_hex(der)), wrong_key)
    # An assertion for another audience, or expired, signed by the right key, is refused too.
    app = App("x", certificate=x509.load_der_x509_certificate(der))
    audience = f"{microsoft.base}/{microsoft.tenant}/oauth2/v2.0/token"
    form = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    good = assertion.client_assertion(client_id="x", audience=audience, certificate=der, sign=software_sign(key))
    assert FakeMicrosoft.check_assertion(app, {**form, "client_assertion": good}, audience) is None
    other_audience = assertion.client_assertion(client_id="x", audience="https://elsewhere.test/token",
                                                certificate=der, sign=software_sign(key))
    assert "aud" in FakeMicrosoft.check_assertion(app, {**form, "client_assertion": other_audience}, audience)
    old = assertion.client_assertion(client_id="x", audience=audience, certificate=der, sign=software_sign(key),
                                     now=lambda: 1_000_000_000)
    assert "validity" in FakeMicrosoft.check_assertion(app, {**form, "client_assertion": old}, audience)
    head, body, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "y"}).encode()).rstrip(b"=").decode()
    assert FakeMicrosoft.check_assertion(app, {**form, "client_assertion": f"{head}.{forged}.{signature}"},
                                         audience) == "invalid signature"
    assert FakeMicrosoft.check_assertion(app, {**form, "client_assertion": f"{head}.{body}."}, audience)


def test_rs256_with_the_sha1_thumbprint_is_accepted_too(microsoft):
    key, der = make_certificate()
    app = App("x", certificate=x509.load_der_x509_certificate(der))
    audience = f"{microsoft.base}/{microsoft.tenant}/oauth2/v2.0/token"
    jwt = assertion.client_assertion(client_id="x", audience=audience, certificate=der, sign=software_sign(key),
                                     algorithm="RS256")
    form = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": jwt}
    assert FakeMicrosoft.check_assertion(app, form, audience) is None


def test_an_expired_store_certificate_contacts_nobody(microsoft, tls_ca):
    key, der = make_certificate(days=-2)
    api = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(key))}})
    with pytest.raises(AuthError, match="expired on"):
        store_token(microsoft, tls_ca, app_for(microsoft, sha1_hex(der)), api)
    assert microsoft.requests == []


# --- certificate files: expiry -------------------------------------------------------------------

def write_credential(tmp_path: Path, form: str, days: float) -> tuple[Path, bytes]:
    key, der = make_certificate(days=days)
    cert = x509.load_der_x509_certificate(der)
    if form == "pfx":
        path = tmp_path / "app.pfx"
        path.write_bytes(pkcs12.serialize_key_and_certificates(b"app", key, cert, None,
                                                               serialization.NoEncryption()))
    else:
        path = tmp_path / "app.pem"
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    return path, der


def graph_options(microsoft, tls_ca, path: Path) -> list[str]:
    return ["/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-store",
            f"/O365_CERT_FILE={path}", f"/GRAPH_SENDER={SENDER}", "/TO=client@test.test", "/BODY=x",
            f"/O365_AUTHORITY_HOST={microsoft.authority}", f"/GRAPH_ENDPOINT={microsoft.graph}",
            f"/CA_FILE={tls_ca.pem}"]


@pytest.mark.parametrize("form", ["pfx", "pem"])
@pytest.mark.parametrize("lang, words", [("EN", "expires on"), ("FR", "expire le")])
def test_a_certificate_file_about_to_expire_warns_on_stderr_and_in_the_log(microsoft, tls_ca, run_smail,
                                                                           tmp_path, form, lang, words):
    path, der = write_credential(tmp_path, form, days=9.5)
    register(microsoft, der)
    result = run_smail(*graph_options(microsoft, tls_ca, path), f"/LANG={lang}",
                       env={"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"})
    assert result.exit_code == ExitCode.OK, result.stderr
    expiry = x509.load_der_x509_certificate(der).not_valid_after_utc.strftime("%Y-%m-%d")
    [warning] = result.stderr.splitlines()
    assert words in warning and expiry in warning and str(path) in warning and " 9 " in warning
    assert "WARNING" in result.log and expiry in result.log
    assert len(microsoft.sent) == 1


@pytest.mark.parametrize("form", ["pfx", "pem"])
def test_an_expired_certificate_file_exits_4_before_entra_is_contacted(microsoft, tls_ca, run_smail, tmp_path, form):
    path, der = write_credential(tmp_path, form, days=-3)
    register(microsoft, der)
    for extra in ([], ["/DRY_RUN"]):
        result = run_smail(*graph_options(microsoft, tls_ca, path), *extra,
                           env={"LANG": "C", "NO_PROXY": "127.0.0.1,localhost"})
        assert result.exit_code == ExitCode.AUTH, result.stderr
        expiry = x509.load_der_x509_certificate(der).not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
        assert f"expired on {expiry}" in result.stderr
    assert microsoft.requests == []


def test_an_expired_certificate_for_smtp_xoauth2_exits_4_before_connecting(microsoft, tls_ca, run_smail,
                                                                             tmp_path, scripted):
    path, _der = write_credential(tmp_path, "pem", days=-1)
    server = scripted(lambda conn: None)
    result = run_smail(*server.options, "/AUTH_TYPE=XOAUTH2", f"/SMTP_USERNAME={SENDER}", "/TO=a@test.test",
                       "/BODY=x", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-store",
                       f"/O365_CERT_FILE={path}", f"/O365_AUTHORITY_HOST={microsoft.authority}")
    assert result.exit_code == ExitCode.AUTH and "expired on" in result.stderr
    assert microsoft.requests == [] and server.connections == 0


# --- Windows: a non-exportable key of the current user's store, signed by CNG ------------------------

POWERSHELL = shutil.which("powershell") or shutil.which("pwsh")


@pytest.mark.skipif(sys.platform != "win32" or POWERSHELL is None, reason="needs Windows and PowerShell")
def test_a_non_exportable_store_key_sends_through_graph_by_thumbprint(microsoft, tls_ca, run_smail, tmp_path):
    cer = tmp_path / "app.cer"
    create = (
        "$ErrorActionPreference = 'Stop'; "
        "$c = New-SelfSignedCertificate -Subject 'CN=SMail test' -CertStoreLocation Cert:\\CurrentUser\\My "
        "-KeyExportPolicy NonExportable -KeyAlgorithm RSA -KeyLength 2048 "
        "-Provider 'Microsoft Software Key Storage Provider' -NotAfter (Get-Date).AddDays(60); "
        f"Export-Certificate -Cert $c -FilePath '{cer}' | Out-Null; $c.Thumbprint")
    made = subprocess.run([POWERSHELL, "-NoProfile", "-Command", create], capture_output=True, text=True,
                          timeout=120, check=True)
    thumbprint = made.stdout.strip().splitlines()[-1]
    try:
        register(microsoft, cer.read_bytes())
        spaced = "\u200e" + " ".join(thumbprint[i:i + 2].lower() for i in range(0, 40, 2))  # as certlm.msc copies it
        result = run_smail("/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-store",
                           f"/O365_CERT_THUMBPRINT={spaced}", "/O365_CERT_STORE=USER", f"/GRAPH_SENDER={SENDER}",
                           "/TO=client@test.test", "/BODY=x", f"/O365_AUTHORITY_HOST={microsoft.authority}",
                           f"/GRAPH_ENDPOINT={microsoft.graph}", f"/CA_FILE={tls_ca.pem}",
                           env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"})
        assert result.exit_code == ExitCode.OK, result.stderr
        assert len(microsoft.sent) == 1
        missing = run_smail("/MODE=GRAPH", f"/O365_TENANT_ID={microsoft.tenant}", "/O365_APP_ID=app-store",
                            "/O365_CERT_THUMBPRINT=" + "00" * 20, f"/GRAPH_SENDER={SENDER}", "/TO=a@test.test",
                            "/BODY=x", "/DRY_RUN")
        assert missing.exit_code == ExitCode.AUTH and "No certificate with the thumbprint" in missing.stderr
    finally:
        subprocess.run([POWERSHELL, "-NoProfile", "-Command",
                        f"Remove-Item -Path Cert:\\CurrentUser\\My\\{thumbprint} -DeleteKey"],
                       capture_output=True, timeout=120)


def test_expiry_dates_are_in_utc():
    from smail import i18n
    from smail.certificate import check_expiry

    i18n.activate("en")
    now = datetime.datetime(2026, 12, 7, 3, 0, tzinfo=datetime.UTC)
    warning = check_expiry(now + datetime.timedelta(days=1, hours=2), name="x", now=now)
    assert warning == "The certificate x expires on 2026-12-08 05:00 UTC, in 1 day: renew it and register the new one for the application."
    assert check_expiry(now + datetime.timedelta(days=30), name="x", now=now) is None
    with pytest.raises(AuthError, match="expired on 2026-12-07 02:59 UTC"):
        check_expiry(now - datetime.timedelta(minutes=1), name="x", now=now)
