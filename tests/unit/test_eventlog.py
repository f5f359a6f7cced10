"""/EVENT_LOG and /REGISTER_EVENT_SOURCE: what is written, with which type and event ID, the
Windows calls behind it (prototypes, arguments) with fakes on every OS, and the real Event Log
read back with Get-WinEvent on Windows."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from smail import eventlog, redact, windows
from smail.errors import ExitCode, ParamError, SMailError
from smail.eventlog import EventLogLevel

on_windows = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows (the Event Log)")
off_windows = pytest.mark.skipif(sys.platform == "win32", reason="checks the refusal off Windows")


def test_one_event_id_per_exit_code():
    ids = {eventlog.event_id(code) for code in ExitCode}
    assert len(ids) == len(ExitCode)
    assert eventlog.event_id(ExitCode.OK) == 1000 and eventlog.event_id(ExitCode.CONNECT) == 1003


@pytest.mark.parametrize("level, code, written", [
    (EventLogLevel.NONE, ExitCode.CONNECT, False),
    (EventLogLevel.ERRORS, ExitCode.OK, False),
    (EventLogLevel.ERRORS, ExitCode.CONNECT, True),
    (EventLogLevel.ALL, ExitCode.OK, True),
    (EventLogLevel.ALL, ExitCode.PARTIAL, True),
])
def test_what_each_level_writes(level, code, written):
    found = eventlog.entry(level, code, "the message")
    assert (found is not None) is written
    if found is not None:
        assert found.event_id == 1000 + int(code)
        assert found.event_type == (windows.EVENTLOG_INFORMATION_TYPE if code is ExitCode.OK
                                    else windows.EVENTLOG_ERROR_TYPE)
        assert found.text == f"SMail exit code {int(code)} (EXIT_{code.name}): the message"


def test_the_entry_never_holds_a_secret():
    redact.forget_all()
    redact.remember("hunter2-secret")
    try:
        found = eventlog.entry(EventLogLevel.ERRORS, ExitCode.AUTH, "refused hunter2-secret")
    finally:
        redact.forget_all()
    assert found is not None and "hunter2" not in found.text and "****" in found.text


def test_a_failure_to_write_changes_nothing(caplog):
    def broken(*args):
        raise OSError(5, "Access is denied")
    eventlog.write(EventLogLevel.ALL, ExitCode.OK, "sent", report=broken)  # no exception
    assert "could not be written to the Windows Event Log: Access is denied" in caplog.text


def test_write_calls_the_reporter_with_source_type_id_and_text():
    calls = []
    eventlog.write(EventLogLevel.ERRORS, ExitCode.SEND, "refused", report=lambda *a: calls.append(a))
    assert calls == [("SMail", windows.EVENTLOG_ERROR_TYPE, 1005, "SMail exit code 5 (EXIT_SEND): refused")]
    eventlog.write(EventLogLevel.ERRORS, ExitCode.OK, "sent", report=lambda *a: calls.append(a))
    assert len(calls) == 1


def test_level_off_windows_is_exit_2_but_none():
    assert eventlog.level("none", platform="linux") is EventLogLevel.NONE
    with pytest.raises(ParamError, match="only on Windows"):
        eventlog.level("ERRORS", platform="linux")
    assert eventlog.level(" all ", platform="win32") is EventLogLevel.ALL
    with pytest.raises(ParamError, match="NONE, ERRORS, ALL"):
        eventlog.level("SOME", platform="win32")


def test_register_says_plainly_when_not_elevated():
    with pytest.raises(ParamError):
        eventlog.register(platform="darwin")

    def denied(source):
        raise PermissionError(13, "Access is denied")
    with pytest.raises(SMailError, match="administrator") as caught:
        eventlog.register(platform="win32", registrar=denied)
    assert caught.value.exit_code == ExitCode.ERROR
    registered = []
    assert "registered" in eventlog.register(platform="win32", registrar=registered.append)
    assert registered == ["SMail"]


# --- the Windows calls, with fakes ------------------------------------------------------------------

def _function():
    return SimpleNamespace(argtypes=None, restype=None)


def test_event_log_prototypes():
    advapi32 = SimpleNamespace(RegisterEventSourceW=_function(), ReportEventW=_function(),
                               DeregisterEventSource=_function())
    windows.declare_event_log(advapi32)
    import ctypes
    assert advapi32.RegisterEventSourceW.restype is ctypes.c_void_p
    assert advapi32.RegisterEventSourceW.argtypes == [ctypes.c_wchar_p, ctypes.c_wchar_p]
    report = advapi32.ReportEventW.argtypes
    assert len(report) == 9 and report[1] is ctypes.c_uint16 and report[3] is ctypes.c_uint32
    assert report[5] is ctypes.c_uint16 and report[7] == ctypes.POINTER(ctypes.c_wchar_p)
    assert advapi32.DeregisterEventSource.argtypes == [ctypes.c_void_p]


def test_event_strings_are_an_lpcwstr_array():
    strings = windows.event_strings("Échec\0 de connexion", "x" * 40000)
    assert len(strings) == 2 and strings[0] == "Échec de connexion" and len(strings[1]) == 31839


def test_report_event_registers_reports_and_deregisters():
    calls = []

    class Fake:
        def RegisterEventSourceW(self, server, source):
            calls.append(("register", server, source))
            return 1234

        def ReportEventW(self, handle, kind, category, event_id, sid, count, size, strings, data):
            calls.append(("report", handle, kind, category, event_id, sid, count, size, strings[0], data))
            return 1

        def DeregisterEventSource(self, handle):
            calls.append(("deregister", handle))
            return 1
    windows.report_event("SMail", windows.EVENTLOG_ERROR_TYPE, 1003, "Connexion refusée", advapi32=Fake())
    assert calls == [("register", None, "SMail"),
                     ("report", 1234, 1, 0, 1003, None, 1, 0, "Connexion refusée", None),
                     ("deregister", 1234)]


def test_register_event_source_writes_the_key_values():
    written = []

    @contextmanager
    def create(root, path, reserved, access):
        written.append((root, path, access))
        yield "key"
    registry = SimpleNamespace(HKEY_LOCAL_MACHINE="HKLM", KEY_SET_VALUE=2, CreateKeyEx=create,
                               SetValueEx=lambda key, name, reserved, kind, value: written.append((name, kind, value)),
                               DeleteKey=lambda root, path: written.append(("delete", root, path)))
    windows.register_event_source("SMail", registry=registry)
    windows.unregister_event_source("SMail", registry=registry)
    assert written == [
        ("HKLM", r"SYSTEM\CurrentControlSet\Services\EventLog\Application\SMail", 2),
        ("EventMessageFile", windows.REG_EXPAND_SZ, windows.EVENT_MESSAGE_FILE),
        ("TypesSupported", windows.REG_DWORD, 7),
        ("delete", "HKLM", r"SYSTEM\CurrentControlSet\Services\EventLog\Application\SMail"),
    ]


@off_windows
def test_the_real_calls_refuse_off_windows():
    with pytest.raises(windows.NotOnWindowsError):
        windows.report_event("SMail", 1, 1000, "x")
    with pytest.raises(windows.NotOnWindowsError):
        windows.register_event_source("SMail")


@off_windows
def test_cli_refuses_the_event_log_off_windows(run_smail):
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=x", "/EVENT_LOG=ERRORS")
    assert result.exit_code == ExitCode.PARAM and "only on Windows" in result.stderr
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=x", "/DRY_RUN",
                       env={"LANG": "C", "SMAIL_EVENT_LOG": "ALL"})
    assert result.exit_code == ExitCode.PARAM
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=x", "/DRY_RUN",
                       "/EVENT_LOG=NONE")
    assert result.exit_code == 0
    result = run_smail("/REGISTER_EVENT_SOURCE")
    assert result.exit_code == ExitCode.PARAM and "only on Windows" in result.stderr


# --- the real Event Log -----------------------------------------------------------------------------

def _read_back(source: str, timeout: float = 30) -> list[str]:
    """Id|Level|first insertion string of the newest entry of `source`, by Get-WinEvent."""
    script = ("[Console]::OutputEncoding = [Text.Encoding]::UTF8; "
              f"Get-WinEvent -FilterHashtable @{{LogName='Application'; ProviderName='{source}'}} -MaxEvents 1 "
              "-ErrorAction SilentlyContinue | ForEach-Object { '{0}|{1}|{2}' -f $_.Id, $_.Level, $_.Properties[0].Value }")
    powershell = shutil.which("powershell") or shutil.which("pwsh")
    if powershell is None:
        pytest.skip("no PowerShell to read the Event Log back (Get-WinEvent)")
    deadline = time.monotonic() + timeout
    while True:
        completed = subprocess.run([powershell, "-NoProfile", "-NonInteractive", "-Command", script],
                                   capture_output=True, timeout=60)
        text = completed.stdout.decode("utf-8", "replace").strip()
        if text or time.monotonic() > deadline:
            return text.split("|", 2) if text else []
        time.sleep(0.5)


@pytest.fixture
def test_source():
    source = f"SMail-test-{uuid.uuid4().hex[:8]}"
    try:
        windows.register_event_source(source)
    except PermissionError:
        pytest.skip("registering an event source needs administrator rights")
    yield source
    windows.unregister_event_source(source)


@on_windows
def test_an_entry_is_written_and_read_back(test_source):
    text = "SMail exit code 3 (EXIT_CONNECT): Connexion refusée par smtp.example.com:587"
    windows.report_event(test_source, windows.EVENTLOG_ERROR_TYPE, 1003, text)
    assert _read_back(test_source) == ["1003", "2", text]  # Level 2 is Error


@on_windows
def test_a_failed_run_writes_its_entry_and_keeps_its_exit_code(test_source, run_smail, monkeypatch):
    from tests.smtpd import free_port

    monkeypatch.setattr(eventlog, "SOURCE", test_source)
    result = run_smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", "/FROM_ADDR=a@b.test", "/TO=c@d.test",
                       "/BODY=x", "/EVENT_LOG=ERRORS", "/SMTP_USERNAME=u", "/SMTP_PASSWORD=Ev3ntL0g-secret",
                       "/TIMEOUT=5")
    assert result.exit_code == ExitCode.CONNECT
    event_id, level, text = _read_back(test_source)
    assert (event_id, level) == ("1003", "2")
    assert text.startswith("SMail exit code 3 (EXIT_CONNECT): ") and "Ev3ntL0g-secret" not in text
