"""The certificate store and CNG behind small functions: prototypes and layouts checked on every
OS, the decisions of smail.certstore (which store, which advice) against a stand-in of
smail.windows, the client assertion against the public key, and the real calls on Windows."""

from __future__ import annotations

import base64
import ctypes
import datetime
import hashlib
import json
import sys
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.x509.oid import NameOID

from smail import assertion, certstore, i18n, windows
from smail.cloud import CertStore
from smail.converters import thumbprint
from smail.errors import AuthError

POINTER_SIZE = ctypes.sizeof(ctypes.c_void_p)


@pytest.fixture(autouse=True)
def english():
    """These tests call SMail's functions directly: the messages in English, whatever ran before."""
    i18n.activate("en")


def make_certificate(days: float = 365, name: str = "smail-store") -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.DER)


def software_sign(key: rsa.RSAPrivateKey):
    """What NCryptSignHash does with a SHA-256 digest, done by `cryptography`."""
    def sign(digest: bytes, pss: bool) -> bytes:
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss else padding.PKCS1v15()
        return key.sign(digest, scheme, utils.Prehashed(hashes.SHA256()))
    return sign


class FakeStoreAPI:
    """Stands in for smail.windows: stores holding certificates, keys that sign or refuse."""

    def __init__(self, stores: dict[CertStore | tuple[str, CertStore], dict[str, tuple[bytes, object]]],
                 acquire_error: int = 0, open_error: int = 0, missing: frozenset[str] = frozenset()) -> None:
        self.stores = stores  # keyed by CertStore for "MY", by (name, CertStore) for the others
        self.acquire_error = acquire_error
        self.open_error = open_error
        self.missing = missing  # names of stores never created (ERROR_FILE_NOT_FOUND)
        self.opened: list[bool] = []
        self.opened_names: list[tuple[str, CertStore]] = []
        self.handles: dict[int, tuple[str, CertStore]] = {}
        self.closed = 0
        self.freed_contexts = 0
        self.freed_keys = 0

    def open_store(self, *, machine: bool, name: str = "MY") -> int:
        store = CertStore.MACHINE if machine else CertStore.USER
        self.opened.append(machine)
        self.opened_names.append((name, store))
        if self.open_error:
            raise OSError(0, "Access is denied.", None, self.open_error)
        if name in self.missing:
            raise OSError(0, "The system cannot find the file specified.", None, windows.ERROR_FILE_NOT_FOUND)
        handle = len(self.handles) + 1
        self.handles[handle] = (name, store)
        return handle

    def close_store(self, store: int) -> None:
        self.closed += 1

    def find_certificate(self, handle: int, sha1: bytes):
        name, store = self.handles[handle]
        entries = self.stores.get(store if name == "MY" else (name, store), {})
        return entries.get(sha1.hex().upper())

    def certificate_der(self, context) -> bytes:
        return context[0]

    def free_certificate(self, context) -> None:
        self.freed_contexts += 1

    def acquire_key(self, context):
        if self.acquire_error:
            raise OSError(0, "Keyset does not exist", None, self.acquire_error)
        return context[1], True

    def sign_hash(self, key, digest: bytes, *, pss: bool) -> bytes:
        return key(digest, pss)

    def free_key(self, key) -> None:
        self.freed_keys += 1


def sha1_hex(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324


# --- options -----------------------------------------------------------------------------------

@pytest.mark.parametrize("copied", [
    "3b2a9f00112233445566778899aabbccddeeff01",
    "3B 2A 9F 00 11 22 33 44 55 66 77 88 99 AA BB CC DD EE FF 01",
    "\u200e3b 2a 9f 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 01",  # certlm.msc's copy
    "3B:2A:9F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:01\ufeff",
])
def test_thumbprints_as_certlm_copies_them(copied):
    assert thumbprint(copied) == "3B2A9F00112233445566778899AABBCCDDEEFF01"


@pytest.mark.parametrize("bad", ["", "3b2a", "zz" * 20, "3b2a9f00112233445566778899aabbccddeeff0102"])
def test_a_thumbprint_that_is_no_sha1_is_refused(bad):
    with pytest.raises(ValueError, match="40 hexadecimal digits"):
        thumbprint(bad)


@pytest.mark.skipif(sys.platform == "win32", reason="the store exists there")
def test_off_windows_the_store_options_exit_2_with_a_clear_message(run_smail):
    result = run_smail("/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/GRAPH_SENDER=s@test.test",
                       "/TO=a@test.test", "/BODY=x", "/O365_CERT_THUMBPRINT=" + "AB" * 20, "/O365_CERT_STORE=MACHINE")
    assert result.exit_code == 2
    assert "exists only on Windows" in result.stderr and "/O365_CERT_FILE" in result.stderr
    result = run_smail("/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/GRAPH_SENDER=s@test.test",
                       "/TO=a@test.test", "/BODY=x", "/O365_SECRET=x", "/O365_CERT_STORE=USER")
    assert result.exit_code == 2 and "/O365_CERT_STORE needs /O365_CERT_THUMBPRINT" in result.stderr


# --- the assertion ------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["PS256", "RS256"])
def test_the_assertion_is_signed_for_the_certificate_as_msal_builds_it(algorithm):
    key, der = make_certificate()
    jwt = assertion.client_assertion(client_id="app-1", audience="https://login.test/t/oauth2/v2.0/token",
                                     certificate=der, sign=software_sign(key), algorithm=algorithm,
                                     now=lambda: 1_800_000_000.5)
    head, body, signature = jwt.split(".")
    decode = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
    header, claims = json.loads(decode(head)), json.loads(decode(body))
    if algorithm == "PS256":
        assert header == {"alg": "PS256", "typ": "JWT",
                          "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode()}
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    else:
        assert header == {"alg": "RS256", "typ": "JWT",
                          "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode()}  # noqa: S324
        scheme = padding.PKCS1v15()
    assert claims["aud"] == "https://login.test/t/oauth2/v2.0/token"
    assert claims["iss"] == claims["sub"] == "app-1" and claims["jti"]
    assert claims["nbf"] == claims["iat"] == 1_800_000_000 and claims["exp"] == 1_800_000_600
    x509.load_der_x509_certificate(der).public_key().verify(  # type: ignore[union-attr]
        decode(signature), f"{head}.{body}".encode(), scheme, hashes.SHA256())


# --- the store's decisions ---------------------------------------------------------------------

def test_the_users_store_then_the_computers(monkeypatch):
    key, der = make_certificate()
    api = FakeStoreAPI({CertStore.MACHINE: {sha1_hex(der): (der, software_sign(key))}})
    found = certstore.open_signer(sha1_hex(der), None, api=api)
    assert found.store is CertStore.MACHINE and found.where == "Cert:\\LocalMachine\\My" and found.der == der
    assert api.opened[:2] == [False, True]
    assert api.closed == len(api.opened) and api.freed_contexts >= 1 and api.freed_keys >= 1
    api.opened.clear()
    with pytest.raises(AuthError, match="Cert:\\\\CurrentUser\\\\My: check /O365_CERT_THUMBPRINT"):
        certstore.open_signer(sha1_hex(der), CertStore.USER, api=api)
    assert api.opened == [False]


def test_a_missing_certificate_names_both_stores():
    with pytest.raises(AuthError) as caught:
        certstore.find("AB" * 20, None, api=FakeStoreAPI({}))
    assert "Cert:\\CurrentUser\\My / Cert:\\LocalMachine\\My" in caught.value.message
    assert caught.value.exit_code == 4


@pytest.mark.parametrize("code, words", [
    (windows.NTE_PERM, "grant it Read permission on the private key (certlm.msc > the certificate > All Tasks > Manage Private Keys)"),
    (windows.E_ACCESSDENIED, "Manage Private Keys"),
    (windows.NTE_BAD_KEYSET, "Manage Private Keys"),
    (windows.CRYPT_E_NO_KEY_PROPERTY, "has no private key on this computer"),
    (windows.NTE_BAD_PROVIDER, "legacy CryptoAPI provider"),
    (0x80090009, "could not be used: Keyset does not exist"),
])
def test_a_key_that_cannot_sign_says_why_and_which_right_to_grant(code, words, monkeypatch):
    monkeypatch.setenv("USERNAME", "svc-erp")
    key, der = make_certificate()
    api = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(key))}}, acquire_error=code)
    with pytest.raises(AuthError) as caught:
        certstore.open_signer(sha1_hex(der), None, api=api)
    assert words in caught.value.message and caught.value.exit_code == 4
    if "Manage Private Keys" in words:
        assert "svc-erp" in caught.value.message


def test_a_store_that_was_never_created_holds_no_certificate():
    with pytest.raises(AuthError, match="No certificate with the thumbprint"):
        certstore.find("AB" * 20, None, api=FakeStoreAPI({}, open_error=windows.ERROR_FILE_NOT_FOUND))


def test_a_store_that_cannot_be_opened_exits_4():
    with pytest.raises(AuthError, match="could not be opened: Access is denied"):
        certstore.find("AB" * 20, CertStore.MACHINE, api=FakeStoreAPI({}, open_error=5))


def test_an_expired_store_certificate_is_refused_and_one_about_to_expire_warns():
    key, der = make_certificate(days=-1)
    api = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(key))}})
    with pytest.raises(AuthError, match="expired on"):
        certstore.inspect(sha1_hex(der), None, api=api)
    key, der = make_certificate(days=12.5)
    api = FakeStoreAPI({CertStore.USER: {sha1_hex(der): (der, software_sign(key))}})
    warning = certstore.inspect(sha1_hex(der), None, api=api)
    assert warning is not None and "in 12 days" in warning and sha1_hex(der) in warning


def test_not_on_windows_the_store_functions_say_so():
    if sys.platform == "win32":
        pytest.skip("the store exists here")
    with pytest.raises(windows.NotOnWindowsError):
        windows.open_store(machine=False)


# --- ctypes: prototypes and layouts (every OS), real calls (Windows) -------------------------------

def test_store_and_cng_structures_have_the_windows_layout_of_this_bitness():
    assert ctypes.sizeof(windows.CERT_CONTEXT) == {4: 20, 8: 40}[POINTER_SIZE]
    assert windows.CERT_CONTEXT.cbCertEncoded.offset == {4: 8, 8: 16}[POINTER_SIZE]
    assert ctypes.sizeof(windows.BCRYPT_PSS_PADDING_INFO) == {4: 8, 8: 16}[POINTER_SIZE]
    assert ctypes.sizeof(windows.BCRYPT_PKCS1_PADDING_INFO) == POINTER_SIZE


def _namespace(*names: str) -> SimpleNamespace:
    return SimpleNamespace(**{name: SimpleNamespace() for name in names})


def test_prototypes_of_the_store_and_cng_functions():
    crypt32 = windows.declare_crypt32_store(_namespace(
        "CertOpenStore", "CertFindCertificateInStore", "CertFreeCertificateContext", "CertCloseStore",
        "CryptAcquireCertificatePrivateKey"))
    ncrypt = windows.declare_ncrypt(_namespace("NCryptSignHash", "NCryptFreeObject"))
    arity = {"CertOpenStore": 5, "CertFindCertificateInStore": 6, "CertFreeCertificateContext": 1,
             "CertCloseStore": 2, "CryptAcquireCertificatePrivateKey": 6}
    for name, count in arity.items():
        assert len(getattr(crypt32, name).argtypes) == count, name
    assert len(ncrypt.NCryptSignHash.argtypes) == 8 and len(ncrypt.NCryptFreeObject.argtypes) == 1
    # Handles are pointer-sized, DWORDs 32 bits, SECURITY_STATUS a 32-bit LONG, on both bitnesses.
    sizes = [ctypes.sizeof(t) for t in ncrypt.NCryptSignHash.argtypes]
    assert sizes == [POINTER_SIZE, POINTER_SIZE, POINTER_SIZE, 4, POINTER_SIZE, 4, POINTER_SIZE, 4]
    assert ctypes.sizeof(ncrypt.NCryptSignHash.restype) == 4
    assert crypt32.CertFindCertificateInStore.restype is ctypes.POINTER(windows.CERT_CONTEXT)
    acquire = [ctypes.sizeof(t) for t in crypt32.CryptAcquireCertificatePrivateKey.argtypes]
    assert acquire == [POINTER_SIZE, 4, POINTER_SIZE, POINTER_SIZE, POINTER_SIZE, POINTER_SIZE]
    key_handle = crypt32.CryptAcquireCertificatePrivateKey.argtypes[3]._type_
    assert ctypes.sizeof(key_handle) == POINTER_SIZE  # NCRYPT_KEY_HANDLE is a ULONG_PTR


def test_the_windows_code_survives_off_windows():
    error = OSError(0, "Access is denied.", None, windows.NTE_PERM)
    assert certstore.windows_code(error) == windows.NTE_PERM


on_windows = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (certificate store, CNG)")


@on_windows
def test_the_real_dlls_take_the_prototypes():
    windows.certificates._crypt32_store()
    windows.certificates._ncrypt()


@on_windows
def test_the_real_users_store_opens_and_a_missing_thumbprint_is_none():
    try:
        store = windows.open_store(machine=False)
    except OSError as exc:  # a fresh profile (a new Wine prefix) may have no My store yet
        assert certstore.windows_code(exc) == windows.ERROR_FILE_NOT_FOUND, exc
        with pytest.raises(AuthError, match="No certificate with the thumbprint"):
            certstore.find("00" * 20, CertStore.USER)
        return
    try:
        assert windows.find_certificate(store, b"\x00" * 20) is None
    finally:
        windows.close_store(store)



# --- the ctypes plumbing against stand-ins that follow the Windows calling contract (every OS) ------

class FakeCNG:
    """crypt32's store functions and ncrypt's NCryptSignHash/NCryptFreeObject, called as Windows does."""

    def __init__(self, der: bytes, key: rsa.RSAPrivateKey, *, acquire_status: int = 0) -> None:
        self.der = ctypes.create_string_buffer(der, len(der))
        self.context = windows.CERT_CONTEXT(windows.X509_ASN_ENCODING, ctypes.cast(self.der, ctypes.POINTER(ctypes.c_char)),
                                            len(der), None, None)
        self.sha1 = hashlib.sha1(der).digest()  # noqa: S324
        self.key = key
        self.acquire_status = acquire_status
        self.calls: list[tuple] = []

    def CertOpenStore(self, provider, encoding, prov, flags, name):  # noqa: N802
        self.calls.append(("open", provider, flags, name))
        return 1234

    def CertCloseStore(self, store, flags):  # noqa: N802
        self.calls.append(("close", store))
        return 1

    def CertFindCertificateInStore(self, store, encoding, find_flags, find_type, blob, previous):  # noqa: N802
        wanted = ctypes.string_at(blob._obj.pbData, blob._obj.cbData)
        self.calls.append(("find", find_type, wanted == self.sha1))
        return ctypes.pointer(self.context) if wanted == self.sha1 else ctypes.POINTER(windows.CERT_CONTEXT)()

    def CertFreeCertificateContext(self, context):  # noqa: N802
        self.calls.append(("free cert",))
        return 1

    def CryptAcquireCertificatePrivateKey(self, context, flags, reserved, key, spec, caller_frees):  # noqa: N802
        self.calls.append(("acquire", flags))
        if self.acquire_status:
            return 0
        key._obj.value, spec._obj.value, caller_frees._obj.value = 77, 0xFFFFFFFF, 1
        return 1

    def NCryptSignHash(self, key, padding_info, digest, size, signature, capacity, result, flags):  # noqa: N802
        assert key == 77
        pss = bool(flags & windows.BCRYPT_PAD_PSS)
        self.calls.append(("sign", pss, capacity))
        scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss else padding.PKCS1v15()
        value = self.key.sign(digest[:size], scheme, utils.Prehashed(hashes.SHA256()))
        result._obj.value = len(value)
        if signature:
            ctypes.memmove(signature, value, len(value))
        return 0

    def NCryptFreeObject(self, handle):  # noqa: N802
        self.calls.append(("free key", handle))
        return 0


@pytest.fixture
def fake_cng(monkeypatch):
    def install(**kwargs) -> FakeCNG:
        key, der = make_certificate()
        fake = FakeCNG(der, key, **kwargs)
        monkeypatch.setattr(windows.certificates, "_require_windows", lambda feature: None)
        monkeypatch.setattr(windows.certificates, "_crypt32_store", lambda: fake)
        monkeypatch.setattr(windows.certificates, "_ncrypt", lambda: fake)
        monkeypatch.setattr(ctypes, "get_last_error", lambda: fake.acquire_status or windows.CRYPT_E_NOT_FOUND,
                            raising=False)
        monkeypatch.setattr(ctypes, "FormatError", lambda code: f"Windows says {code:#x}.", raising=False)
        return fake
    return install


@pytest.mark.parametrize("pss", [True, False])
def test_store_plumbing_signs_with_the_key_and_gives_every_handle_back(fake_cng, pss):
    fake = fake_cng()
    found = certstore.open_signer(sha1_hex(bytes(fake.der.raw)), CertStore.MACHINE)
    assert found.der == bytes(fake.der.raw)
    digest = hashlib.sha256(b"signing input").digest()
    signature = found.sign(digest, pss)
    scheme = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss else padding.PKCS1v15()
    fake.key.public_key().verify(signature, digest, scheme, utils.Prehashed(hashes.SHA256()))
    assert ("open", windows.CERT_STORE_PROV_SYSTEM_W, windows.CERT_SYSTEM_STORE_LOCAL_MACHINE
            | windows.CERT_STORE_OPEN_EXISTING_FLAG | windows.CERT_STORE_READONLY_FLAG, "MY") in fake.calls
    assert ("acquire", windows.CRYPT_ACQUIRE_ONLY_NCRYPT_KEY_FLAG | windows.CRYPT_ACQUIRE_SILENT_FLAG) in fake.calls
    kinds = [call[0] for call in fake.calls]
    assert kinds.count("open") == kinds.count("close") and kinds.count("acquire") == kinds.count("free key")
    assert [c for c in fake.calls if c[0] == "sign"][-2:] == [("sign", pss, 0), ("sign", pss, 256)]


def test_store_plumbing_a_missing_certificate_is_none(fake_cng):
    fake_cng()
    store = windows.open_store(machine=False)
    assert windows.find_certificate(store, b"\x01" * 20) is None


def test_store_plumbing_a_key_the_account_may_not_read(fake_cng, monkeypatch):
    monkeypatch.setenv("USERNAME", "svc-erp")
    fake = fake_cng(acquire_status=windows.NTE_PERM)
    with pytest.raises(AuthError) as caught:
        certstore.open_signer(sha1_hex(bytes(fake.der.raw)), CertStore.USER)
    assert "svc-erp may not use the private key" in caught.value.message
    assert "Manage Private Keys" in caught.value.message and f"{windows.NTE_PERM:#x}" in caught.value.message
