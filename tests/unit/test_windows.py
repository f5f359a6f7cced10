"""Windows services: fallbacks and pure parts everywhere, the real DPAPI and Credential Manager on Windows."""

from __future__ import annotations

import base64
import codecs
import ctypes
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smail import windows

# smail.windows holds one concern a module, each loading its own DLLs: the fakes replace them in
# every module, and the prototype check reads every module.
WINDOWS_MODULES = [importlib.import_module(f"smail.windows.{info.name}") for info in pkgutil.iter_modules(windows.__path__)]

on_windows = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (DPAPI, Credential Manager)")
off_windows = pytest.mark.skipif(sys.platform == "win32", reason="checks the fallback used off Windows")


# --- code pages -------------------------------------------------------------------------------------

@off_windows
def test_code_pages_off_windows_are_western_european():
    assert windows.ansi_code_page() == "cp1252"
    assert windows.oem_code_page() == "cp850"


@pytest.mark.parametrize("number, expected", [(1252, "cp1252"), (850, "cp850"), (437, "cp437"),
                                              (932, "cp932"), (1251, "cp1251"), (65001, "utf-8")])
def test_code_page_numbers_become_python_codecs(number, expected):
    assert windows.ansi_code_page(lambda: number) == expected
    assert windows.oem_code_page(lambda: number) == expected
    codecs.lookup(expected)


def test_a_code_page_python_lacks_falls_back_to_the_windows_codecs():
    assert windows.ansi_code_page(lambda: 20127) == "mbcs"
    assert windows.oem_code_page(lambda: 20127) == "oem"


@on_windows
def test_real_code_pages_are_usable_codecs():
    codecs.lookup(windows.ansi_code_page())
    codecs.lookup(windows.oem_code_page())


# --- the protected-secret file ----------------------------------------------------------------------

BLOB = bytes(range(256)) * 3


@pytest.mark.parametrize("machine, scope", [(False, b"USER"), (True, b"MACHINE")])
def test_format_writes_a_header_then_base64_lines_with_crlf(machine, scope):
    text = windows.format_protected(BLOB, machine=machine)
    lines = text.split(b"\r\n")
    assert lines[0] == b"SMail-DPAPI/1 " + scope
    assert lines[-1] == b"" and all(0 < len(line) <= 76 for line in lines[1:-1])
    assert base64.b64decode(b"".join(lines[1:])) == BLOB
    assert b"\n" not in text.replace(b"\r\n", b"")


@given(st.binary(min_size=1, max_size=600), st.booleans())
def test_format_parse_round_trip(blob, machine):
    assert windows.parse_protected(windows.format_protected(blob, machine=machine)) == blob


@pytest.mark.parametrize("edit", [
    lambda t: codecs.BOM_UTF8 + t,                                      # saved by Notepad as "UTF-8 with BOM"
    lambda t: t.replace(b"\r\n", b"\n"),                                 # LF line ends
    lambda t: t.replace(b"\r\n", b"  \r\n") + b"\r\n\r\n  \t",           # trailing blanks and lines
    lambda t: t.rstrip(b"\r\n"),                                         # no final line end
    lambda t: t.replace(b"SMail-DPAPI/1 USER", b"smail-dpapi/1   user"),  # retyped header
    lambda t: codecs.BOM_UTF16_LE + t.decode("ascii").encode("utf-16-le"),  # PowerShell 5's `>`
])
def test_parse_tolerates_what_editors_and_shells_do(edit):
    assert windows.parse_protected(edit(windows.format_protected(BLOB, machine=False))) == BLOB


@pytest.mark.parametrize("content", [
    b"", b"hunter2", b"hunter2\r\n", b"  p\xc3\xa4ss w\xc3\xb6rd \n", codecs.BOM_UTF8 + b"secret\r\n",
    b"SMail rocks\r\n", "p\u00e4ss".encode("cp1252"), b"\xff\xfeh\x00i\x00",
    codecs.BOM_UTF16_LE + "\u5bc6".encode("utf-16-le"),
])
def test_an_ordinary_password_file_is_not_a_protected_one(content):
    assert windows.parse_protected(content) is None


@pytest.mark.parametrize("content, reason", [
    (b"SMail-DPAPI/1 USER\r\nnot base64!\r\n", "corrupt"),
    (b"SMail-DPAPI/1 USER\r\nAAAA=A\r\n", "corrupt"),
    (b"SMail-DPAPI/1 USER\r\n", "no data"),
    (b"SMail-DPAPI/1 USER\r\n\r\n   \r\n", "no data"),
    (b"SMail-DPAPI/1 GROUP\r\nAAAA\r\n", "unsupported"),
    (b"SMail-DPAPI/1\r\nAAAA\r\n", "unsupported"),
    (b"SMail-DPAPI/2 USER\r\nAAAA\r\n", "unsupported"),
])
def test_a_damaged_protected_file_is_refused(content, reason):
    with pytest.raises(ValueError, match=reason):
        windows.parse_protected(content)


# --- credential blobs -------------------------------------------------------------------------------

@pytest.mark.parametrize("blob, secret", [
    ("p\u00e4ss w\u00f6rd".encode("utf-16-le"), "p\u00e4ss w\u00f6rd"),  # cmdkey /generic, .NET
    ("abcd".encode("utf-16-le") + b"\x00\x00", "abcd"),                # with its NUL terminator
    ("\u5bc6\u7801".encode("utf-16-le"), "\u5bc6\u7801"),              # no NUL byte, but not UTF-8
    (b"abcd", "abcd"),                                                 # UTF-8 (git), not "\u6261\u6463"
    ("\u00e9".encode(), "\u00e9"),                                     # not "\ua9c3"
    (b"odd", "odd"),
    (b"", ""),
])
def test_credential_blobs_are_decoded_as_utf16_or_utf8(blob, secret):
    assert windows.decode_secret(blob) == secret


def test_a_credential_blob_that_is_no_text_is_refused():
    with pytest.raises(UnicodeDecodeError):
        windows.decode_secret(b"\xff\xfe\xff")


# --- off Windows ------------------------------------------------------------------------------------

@off_windows
@pytest.mark.parametrize("call", [
    lambda: windows.protect(b"x"), lambda: windows.protect(b"x", machine=True),
    lambda: windows.unprotect(b"x"),
    lambda: windows.read_credential("SMail"), lambda: windows.write_credential("SMail", "x"),
    lambda: windows.delete_credential("SMail"),
])
def test_windows_only_features_say_so_elsewhere(call):
    with pytest.raises(windows.NotOnWindowsError, match="only available on Windows"):
        call()
    assert issubclass(windows.NotOnWindowsError, OSError)


def test_structures_have_the_windows_layout_of_this_bitness():
    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert ctypes.sizeof(windows.DATA_BLOB) == {4: 8, 8: 16}[pointer]
    assert ctypes.sizeof(windows.CREDENTIALW) == {4: 52, 8: 80}[pointer]
    assert windows.CREDENTIALW.LastWritten.offset == 4 + 4 + 2 * pointer
    assert windows.CREDENTIALW.CredentialBlob.offset == {4: 28, 8: 40}[pointer]
    assert windows.CREDENTIALW.UserName.offset == {4: 48, 8: 72}[pointer]


# --- the ctypes plumbing, against fake DLLs (runs everywhere) ---------------------------------------

class FakeDLLs:
    """Stand-ins for crypt32, kernel32 and advapi32 that follow the Windows calling contract."""

    def __init__(self, fail_with: int = 0, credential_blob: bytes = b"") -> None:
        self.fail_with = fail_with
        self.credential_blob = credential_blob
        self.allocated: list[ctypes.Array[ctypes.c_char]] = []
        self.credentials: list[windows.CREDENTIALW] = []
        self.freed: list[int | None] = []
        self.flags: list[int] = []

    def _dpapi(self, transform):
        def call(blob_in, _description, _entropy, _reserved, _prompt, flags, blob_out):
            self.flags.append(flags)
            if self.fail_with:
                return 0
            data = ctypes.string_at(blob_in._obj.pbData, blob_in._obj.cbData)
            output = ctypes.create_string_buffer(transform(data), len(transform(data)))
            self.allocated.append(output)
            blob_out._obj.cbData = len(output)
            blob_out._obj.pbData = ctypes.cast(output, ctypes.POINTER(ctypes.c_char))
            return 1
        return call

    @property
    def CryptProtectData(self):  # noqa: N802 (the Windows name)
        return self._dpapi(lambda data: b"DPAPI" + data[::-1])

    @property
    def CryptUnprotectData(self):  # noqa: N802
        return self._dpapi(lambda data: data[5:][::-1])

    def LocalFree(self, pointer):  # noqa: N802
        self.freed.append(pointer.value)

    def CredReadW(self, target, kind, flags, pointer):  # noqa: N802
        assert (kind, flags) == (windows.CRED_TYPE_GENERIC, 0)
        if self.fail_with:
            return 0
        data = ctypes.create_string_buffer(self.credential_blob, len(self.credential_blob))
        self.allocated.append(data)
        credential = windows.CREDENTIALW(Type=kind, TargetName=target, CredentialBlobSize=len(data),
                                         CredentialBlob=ctypes.cast(data, ctypes.POINTER(ctypes.c_char)))
        self.credentials.append(credential)
        pointer._obj.contents = credential
        return 1

    def CredFree(self, pointer):  # noqa: N802
        self.freed.append(ctypes.cast(pointer, ctypes.c_void_p).value)

    def CredWriteW(self, credential, flags):  # noqa: N802
        stored = credential._obj
        self.written = (stored.Type, stored.TargetName, stored.Persist, flags,
                        ctypes.string_at(stored.CredentialBlob, stored.CredentialBlobSize))
        return not self.fail_with

    def CredDeleteW(self, target, kind, flags):  # noqa: N802
        self.deleted = (target, kind, flags)
        return not self.fail_with


@pytest.fixture
def fake_windows(monkeypatch):
    def install(**kwargs) -> FakeDLLs:
        fake = FakeDLLs(**kwargs)
        for module in WINDOWS_MODULES:
            for name in ("_require_windows", "_crypt32", "_kernel32", "_advapi32"):
                if hasattr(module, name):
                    monkeypatch.setattr(module, name, (lambda feature: None) if name == "_require_windows"
                                        else (lambda: fake))
        monkeypatch.setattr(ctypes, "get_last_error", lambda: fake.fail_with, raising=False)
        monkeypatch.setattr(ctypes, "FormatError", lambda code: f"Windows says {code}.\r\n", raising=False)
        return fake
    return install


def test_dpapi_plumbing_copies_the_output_and_frees_it(fake_windows):
    fake = fake_windows()
    blob = windows.protect(b"hunter2", machine=True)
    assert blob == b"DPAPI2retnuh"
    assert windows.unprotect(blob) == b"hunter2"
    assert fake.flags == [windows.CRYPTPROTECT_UI_FORBIDDEN | windows.CRYPTPROTECT_LOCAL_MACHINE,
                          windows.CRYPTPROTECT_UI_FORBIDDEN]
    assert fake.freed == [ctypes.addressof(buffer) for buffer in fake.allocated]


def test_dpapi_failure_carries_the_windows_message(fake_windows):
    fake_windows(fail_with=13)
    with pytest.raises(OSError) as caught:
        windows.unprotect(b"someone else's blob")
    assert caught.value.strerror == "Windows says 13."


def test_credential_plumbing_decodes_and_always_frees(fake_windows):
    fake = fake_windows(credential_blob="s\u00e9cret".encode("utf-16-le"))
    assert windows.read_credential("SMail/smtp") == "s\u00e9cret"
    assert fake.freed == [ctypes.addressof(fake.credentials[0])]
    fake.credential_blob = b"\xff\xfe\xff"
    with pytest.raises(OSError, match="neither UTF-16 nor UTF-8"):
        windows.read_credential("SMail/smtp")
    assert fake.freed[1] == ctypes.addressof(fake.credentials[1])


def test_credential_writes_utf16_for_this_machine_and_deletes(fake_windows):
    fake = fake_windows()
    windows.write_credential("SMail/smtp", "s\u00e9cret")
    assert fake.written == (windows.CRED_TYPE_GENERIC, "SMail/smtp", windows.CRED_PERSIST_LOCAL_MACHINE, 0,
                            "s\u00e9cret".encode("utf-16-le"))
    windows.delete_credential("SMail/smtp")
    assert fake.deleted == ("SMail/smtp", windows.CRED_TYPE_GENERIC, 0)


def test_a_missing_credential_names_the_target(fake_windows):
    fake_windows(fail_with=windows.ERROR_NOT_FOUND)
    with pytest.raises(OSError) as caught:
        windows.read_credential("SMail/missing")
    assert (caught.value.strerror, caught.value.filename) == ("Windows says 1168.", "SMail/missing")


# --- the real thing ---------------------------------------------------------------------------------

ERROR_NO_SUCH_LOGON_SESSION = 1312  # winerror.h


@pytest.fixture
def credential_store():
    """Skip when this logon session has no Credential Manager (WinError 1312), as on some CI
    runner images and service accounts; any other failure is the test's to report."""
    probe = f"SMail-test-probe-{uuid.uuid4()}"
    try:
        windows.write_credential(probe, "probe")
    except OSError as exc:
        if exc.winerror == ERROR_NO_SUCH_LOGON_SESSION:
            pytest.skip(f"this logon session has no Credential Manager: {exc.strerror}")
        raise
    windows.delete_credential(probe)


@on_windows
@pytest.mark.parametrize("machine", [False, True])
def test_dpapi_round_trip(machine):
    secret = "p\u00e4ss \u5bc6\u7801 \U0001F511".encode()
    blob = windows.protect(secret, machine=machine)
    assert secret not in blob
    assert windows.unprotect(blob) == secret


@on_windows
def test_protected_file_round_trip():
    blob = windows.protect(b"hunter2")
    text = windows.format_protected(blob, machine=False)
    assert windows.unprotect(windows.parse_protected(text)) == b"hunter2"


@on_windows
def test_a_tampered_blob_is_refused_with_the_windows_reason():
    blob = bytearray(windows.protect(b"hunter2"))
    blob[-5] ^= 0xFF
    with pytest.raises(OSError) as caught:
        windows.unprotect(bytes(blob))
    assert caught.value.winerror and caught.value.strerror


@on_windows
def test_credential_round_trip(credential_store):
    target = f"SMail-test-{uuid.uuid4()}"
    windows.write_credential(target, "p\u00e4ss \u5bc6\u7801")
    try:
        assert windows.read_credential(target) == "p\u00e4ss \u5bc6\u7801"
    finally:
        windows.delete_credential(target)
    with pytest.raises(OSError) as caught:
        windows.read_credential(target)
    assert caught.value.winerror == windows.ERROR_NOT_FOUND and caught.value.filename == target


@on_windows
@pytest.mark.skipif(shutil.which("cmdkey") is None, reason="no cmdkey.exe here (Wine has none)")
def test_a_credential_stored_by_cmdkey_is_read(credential_store):
    target = f"SMail-test-{uuid.uuid4()}"
    subprocess.run(["cmdkey", f"/generic:{target}", "/user:smail", "/pass:abcd1234"], check=True,
                   capture_output=True)
    try:
        assert windows.read_credential(target) == "abcd1234"
    finally:
        subprocess.run(["cmdkey", f"/delete:{target}"], check=True, capture_output=True)


@on_windows
def test_a_missing_credential_raises_with_the_windows_reason(credential_store):
    with pytest.raises(OSError) as caught:
        windows.read_credential(f"SMail-test-missing-{uuid.uuid4()}")
    assert caught.value.winerror == windows.ERROR_NOT_FOUND and caught.value.strerror


# Every ctypes prototype smail/windows/ declares (found in its sources, so that a new one is
# covered without editing this test), resolved in the real DLLs with its declared types.
PROTOTYPES = re.findall(r"_prototype\((\w+)\.(\w+),", "".join(
    Path(module.__file__).read_text(encoding="utf-8") for module in WINDOWS_MODULES))


def test_the_prototypes_are_found():
    assert ("kernel32", "GetACP") in PROTOTYPES and ("advapi32", "CredReadW") in PROTOTYPES
    assert ("kernel32", "LockFileEx") in PROTOTYPES and len(PROTOTYPES) >= 11


LOADERS = [getattr(module, name) for module in WINDOWS_MODULES for name in dir(module)
           if name.startswith("_") and hasattr(getattr(module, name), "cache_info")]  # the cached DLL loaders


def under_wine() -> bool:
    return sys.platform == "win32" and hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


@on_windows
@pytest.mark.parametrize("dll, name", PROTOTYPES)
def test_every_declared_prototype_exists_in_the_real_dll(dll, name):
    declared = []
    for loader in (loader for loader in LOADERS if dll in loader.__name__):
        try:
            declared.append(getattr(loader(), name).argtypes is not None)
        except AttributeError:
            if under_wine():
                pytest.skip(f"Wine lacks {dll}.{name}")
            raise
    assert any(declared), f"{dll}.{name} has no declared argument types"


@on_windows
def test_the_ui_language_comes_from_the_real_kernel32():
    from smail import i18n

    language = ctypes.windll.kernel32.GetUserDefaultUILanguage()
    assert 0 < language < 0x10000
    expected = {0x0C: "fr", 0x09: "en"}.get(language & 0x3FF)
    assert i18n.windows_ui_language() == expected


@on_windows
def test_the_code_pages_are_windows_own_and_their_text_survives():
    kernel32 = ctypes.WinDLL("kernel32")
    assert windows.ansi_code_page() in (f"cp{kernel32.GetACP()}", "utf-8", "mbcs")
    assert windows.oem_code_page() in (f"cp{kernel32.GetOEMCP()}", "utf-8", "oem")
    for page in (windows.ansi_code_page(), windows.oem_code_page()):
        assert "Facture".encode(page).decode(page) == "Facture"


@on_windows
def test_console_output_in_the_code_page_a_cmd_pipe_reads(tmp_path):
    """A child SMail writes to a pipe in the ANSI code page, as cmd.exe and .bat files read it."""
    result = subprocess.run([sys.executable, "-m", "smail", "/LANG=FR", "/?"], capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": ""})
    assert result.returncode == 0
    text = result.stdout.decode(windows.ansi_code_page())
    assert "Options générales" in text


@on_windows
def test_byte_locks_are_the_handles_and_released(tmp_path):
    path = tmp_path / "locked"
    path.write_bytes(b"data")
    first = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    second = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        assert windows.lock_byte(first, 1 << 40, wait=False) is True
        assert windows.lock_byte(second, 1 << 40, wait=False) is False
        assert windows.lock_byte(second, (1 << 40) + 1, wait=True) is True  # another byte: free
        windows.unlock_byte(first, 1 << 40)
        assert windows.lock_byte(second, 1 << 40, wait=False) is True
        assert os.read(first, 4) == b"data"  # the locked bytes are past the end: readers read on
    finally:
        os.close(first)
        os.close(second)
    with pytest.raises(OSError) as caught:
        windows.unlock_byte(os.open(path, os.O_RDONLY), 5)  # never locked: Windows' own error
    assert caught.value.winerror


def test_overlapped_has_the_windows_layout_of_this_bitness():
    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert ctypes.sizeof(windows.OVERLAPPED) == {4: 20, 8: 32}[pointer]
    assert windows.OVERLAPPED.Offset.offset == 2 * pointer


@pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (the certificate store)")
def test_the_real_stores_of_correspondents_open_and_a_thumbprint_none_holds_is_exit_2():
    """crypt32 opens "AddressBook" (Other People) and "MY" of the user and of the computer, read-only;
    a store never created is passed over; a thumbprint no store holds is exit 2 naming them."""
    from smail import certstore
    from smail.errors import ExitCode, ParamError

    with pytest.raises(ParamError) as caught:
        certstore.find_public("00" * 20)
    assert caught.value.exit_code == ExitCode.PARAM
    assert "No certificate with the thumbprint" in caught.value.message, caught.value.message
    assert "Cert:\\CurrentUser\\AddressBook" in caught.value.message
