"""Secrets that Windows protects: /PROTECT_SECRET, DPAPI files and @wincred:NAME. The round
trips run on Windows; elsewhere each of them exits 2 saying it needs Windows."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from smail import windows
from smail.errors import ExitCode
from tests.smtpd import RecordingHandler

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")
windows_only = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (DPAPI, Credential Manager)")
not_windows = pytest.mark.skipif(sys.platform == "win32", reason="the non-Windows refusal")


@not_windows
def test_protect_secret_needs_windows(run_smail, tmp_path):
    result = run_smail("/PROTECT_SECRET", f"/OUT={tmp_path / 'smtp.secret'}")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr == "/PROTECT_SECRET encrypts with Windows DPAPI, which exists only on Windows.\n"
    assert not (tmp_path / "smtp.secret").exists()


def test_protect_secret_needs_an_output_file(run_smail):
    result = run_smail("/PROTECT_SECRET")
    assert result.exit_code == ExitCode.PARAM and "/PROTECT_SECRET needs /OUT=file" in result.stderr


@not_windows
def test_wincred_and_protected_files_say_they_need_windows(run_smail, files):
    wincred = run_smail("/SMTP_SERVER=127.0.0.1", *BASIC, "/SMTP_USERNAME=u", "/SMTP_PASSWORD=@wincred:SMail-test")
    assert wincred.exit_code == ExitCode.PARAM
    assert "@wincred:SMail-test reads the Windows Credential Manager, which exists only on Windows." in wincred.stderr
    protected = files("smtp.secret", windows.format_protected(b"\x01\x02opaque", machine=False))
    result = run_smail("/SMTP_SERVER=127.0.0.1", *BASIC, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD_FILE={protected}")
    assert result.exit_code == ExitCode.PARAM
    assert "was encrypted by SMail /PROTECT_SECRET on Windows; only Windows can decrypt it." in result.stderr


def test_a_corrupt_protected_file_is_exit_8(run_smail, files):
    corrupt = files("smtp.secret", b"SMail-DPAPI/1 USER\r\n!!!not base64!!!\r\n")
    result = run_smail("/SMTP_SERVER=127.0.0.1", *BASIC, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD_FILE={corrupt}")
    assert result.exit_code == ExitCode.FILE_NOT_FOUND and "cannot be decrypted" in result.stderr


@windows_only
def test_protect_secret_round_trip_logs_in_with_the_password(smtpd, tmp_path):
    handler = RecordingHandler(passwords={"erp@demo.test": "Pässwört-2026"})
    server = smtpd(handler)
    out = tmp_path / "smtp.secret"
    protect = subprocess.run([sys.executable, "-m", "smail", "/PROTECT_SECRET", f"/OUT={out}"],
                             input="Pässwört-2026\n".encode(), capture_output=True, env=dict(os.environ),
                             timeout=60)
    assert protect.returncode == 0, protect.stderr
    stored = out.read_bytes()
    assert "Pässwört-2026".encode() not in stored and "Pässwört-2026".encode("utf-16-le") not in stored
    send = subprocess.run([sys.executable, "-m", "smail", *server.options, *BASIC, "/SMTP_USERNAME=erp@demo.test",
                           f"/SMTP_PASSWORD_FILE={out}"], capture_output=True, env=dict(os.environ), timeout=60)
    assert send.returncode == 0, send.stderr
    assert len(handler.received) == 1


@windows_only
def test_wincred_password_logs_in(smtpd, run_smail):
    handler = RecordingHandler(passwords={"erp@demo.test": "Cred-Secret-1"})
    server = smtpd(handler)
    target = f"SMail-test-{uuid.uuid4().hex}"
    windows.write_credential(target, "Cred-Secret-1")
    try:
        result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=erp@demo.test", f"/SMTP_PASSWORD=@wincred:{target}")
    finally:
        windows.delete_credential(target)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "Cred-Secret-1" not in result.output
