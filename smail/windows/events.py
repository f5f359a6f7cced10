"""The Windows Event Log: an entry written under a source, and the source's registry key."""

from __future__ import annotations

import ctypes
import functools
from ctypes import POINTER, c_void_p, c_wchar_p
from typing import Any

from smail.windows.native import _DWORD, _dll, _last_error, _prototype, _require_windows

# winbase.h, winnt.h
EVENTLOG_ERROR_TYPE = 0x0001
EVENTLOG_WARNING_TYPE = 0x0002
EVENTLOG_INFORMATION_TYPE = 0x0004
_WORD = ctypes.c_uint16
_HANDLE = c_void_p
# The key that makes a source known to the Application log, and the message file that .NET's
# EventLog.CreateEventSource and PowerShell's New-EventLog register: its message for every event
# ID is "%1", so that the entry's description is exactly the text SMail writes.
EVENT_LOG_KEY = r"SYSTEM\CurrentControlSet\Services\EventLog\Application"
EVENT_MESSAGE_FILE = r"%SystemRoot%\Microsoft.NET\Framework\v4.0.30319\EventLogMessages.dll"
REG_EXPAND_SZ = 2
REG_DWORD = 4


def declare_event_log(advapi32: Any) -> None:
    """The prototypes of the three Event Log functions SMail calls, on `advapi32`."""
    # HANDLE RegisterEventSourceW(LPCWSTR lpUNCServerName, LPCWSTR lpSourceName)
    _prototype(advapi32.RegisterEventSourceW, _HANDLE, c_wchar_p, c_wchar_p)
    # BOOL ReportEventW(HANDLE, WORD wType, WORD wCategory, DWORD dwEventID, PSID lpUserSid,
    #                   WORD wNumStrings, DWORD dwDataSize, LPCWSTR *lpStrings, LPVOID lpRawData)
    _prototype(advapi32.ReportEventW, ctypes.c_int, _HANDLE, _WORD, _WORD, _DWORD, c_void_p, _WORD, _DWORD,
               POINTER(c_wchar_p), c_void_p)
    # BOOL DeregisterEventSource(HANDLE hEventLog)
    _prototype(advapi32.DeregisterEventSource, ctypes.c_int, _HANDLE)


def event_strings(*texts: str) -> Any:
    """The LPCWSTR array ReportEventW takes: each text cut to the 31,839 characters one insertion
    string may hold (ReportEventW's documentation), NUL characters removed."""
    cleaned = [text.replace("\0", "")[:31839] for text in texts]
    return (c_wchar_p * len(cleaned))(*cleaned)


def report_event(source: str, event_type: int, event_id: int, text: str, *, advapi32: Any = None) -> None:
    """Write one entry to the Application log under `source` (registered or not); OSError with
    Windows' reason when it cannot be written."""
    if advapi32 is None:
        _require_windows("The Windows Event Log")
        advapi32 = _advapi32()
    handle = advapi32.RegisterEventSourceW(None, source)
    if not handle:
        raise _last_error(source)
    try:
        strings = event_strings(text)
        if not advapi32.ReportEventW(handle, event_type, 0, event_id, None, len(strings), 0, strings, None):
            raise _last_error(source)
    finally:
        advapi32.DeregisterEventSource(handle)


def event_source_values(message_file: str = EVENT_MESSAGE_FILE) -> list[tuple[str, int, str | int]]:
    """The values of a source's registry key: where its messages are, and the types it writes."""
    types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE
    return [("EventMessageFile", REG_EXPAND_SZ, message_file), ("TypesSupported", REG_DWORD, types)]


def register_event_source(source: str, *, registry: Any = None) -> None:
    """Create the source's key under the Application log (HKLM: administrators only);
    PermissionError when not elevated."""
    if registry is None:
        _require_windows("The Windows Event Log")
        import winreg as registry
    with registry.CreateKeyEx(registry.HKEY_LOCAL_MACHINE, f"{EVENT_LOG_KEY}\\{source}", 0,
                              registry.KEY_SET_VALUE) as key:
        for name, kind, value in event_source_values():
            registry.SetValueEx(key, name, 0, kind, value)


def unregister_event_source(source: str, *, registry: Any = None) -> None:
    """Remove the source's key; FileNotFoundError when there is none."""
    if registry is None:
        _require_windows("The Windows Event Log")
        import winreg as registry
    registry.DeleteKey(registry.HKEY_LOCAL_MACHINE, f"{EVENT_LOG_KEY}\\{source}")


@functools.cache
def _advapi32() -> Any:
    advapi32 = _dll("advapi32")
    declare_event_log(advapi32)
    return advapi32
