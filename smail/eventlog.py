"""/EVENT_LOG: one entry per run in the Windows Application log, source SMail, so that the
monitoring that reads it (SCOM, Zabbix, Wazuh, Windows Event Forwarding) sees a failed run.

An error entry for a failure, an information entry for a success with ALL; the event ID is
1000 + the exit code, one per exit code (README). The text is the run's one-line message in the
chosen language, secrets masked. Writing it never changes the exit code.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from smail import redact
from smail.errors import ExitCode, ParamError, SMailError, one_of
from smail.i18n import _

log = logging.getLogger("smail")

SOURCE: Final = "SMail"
EVENT_ID_BASE: Final = 1000


class EventLogLevel(Enum):
    NONE = "NONE"
    ERRORS = "ERRORS"
    ALL = "ALL"


@dataclass(frozen=True)
class Entry:
    event_type: int  # EVENTLOG_ERROR_TYPE or EVENTLOG_INFORMATION_TYPE
    event_id: int
    text: str


def event_id(code: ExitCode) -> int:
    return EVENT_ID_BASE + int(code)


def entry(level: EventLogLevel, code: ExitCode, message: str) -> Entry | None:
    """What the run writes to the Event Log at `level`, or None (nothing to write)."""
    from smail.windows import EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE

    failed = code is not ExitCode.OK
    if level is EventLogLevel.NONE or (level is EventLogLevel.ERRORS and not failed):
        return None
    text = _("SMail exit code {code} ({name}): {message}").format(
        code=int(code), name=f"EXIT_{code.name}", message=redact.redact(message))
    return Entry(EVENTLOG_ERROR_TYPE if failed else EVENTLOG_INFORMATION_TYPE, event_id(code), text)


Reporter = Callable[[str, int, int, str], None]


def write(level: EventLogLevel, code: ExitCode, message: str, *, report: Reporter | None = None) -> None:
    """Write the run's entry; a failure to write it is logged and changes nothing else."""
    found = entry(level, code, message)
    if found is None:
        return
    try:
        if report is None:
            from smail import windows

            report = windows.report_event
        report(SOURCE, found.event_type, found.event_id, found.text)
    except Exception as exc:  # the Event Log is a report: it never changes the outcome
        log.warning(_("The entry could not be written to the Windows Event Log: {reason}").format(
            reason=getattr(exc, "strerror", None) or exc))


def level(value: str, *, platform: str = sys.platform) -> EventLogLevel:
    """/EVENT_LOG: NONE, ERRORS or ALL; anything but NONE off Windows is exit 2."""
    key = value.strip().upper()
    if key not in EventLogLevel.__members__:
        raise ParamError.invalid_value("EVENT_LOG", redact.shown(value[:40]), one_of("NONE, ERRORS, ALL"))
    chosen = EventLogLevel[key]
    if chosen is not EventLogLevel.NONE and platform != "win32":
        raise ParamError(_("/EVENT_LOG={value} writes to the Windows Event Log, which exists only on Windows.").format(
            value=chosen.value))
    return chosen


def register(*, platform: str = sys.platform, registrar: Callable[[str], None] | None = None) -> str:
    """/REGISTER_EVENT_SOURCE: make the source SMail known to the Application log (once, as an
    administrator); the sentence to print, or SMailError saying what is wrong."""
    if platform != "win32":
        raise ParamError(_("/REGISTER_EVENT_SOURCE registers SMail in the Windows Event Log, which exists only on Windows."))
    if registrar is None:
        from smail import windows

        registrar = windows.register_event_source
    try:
        registrar(SOURCE)
    except PermissionError:
        raise SMailError(_("Registering the event source {source} needs administrator rights: run SMail /REGISTER_EVENT_SOURCE once from an elevated prompt (Run as administrator). Without it, entries are still written, with a generic description.").format(
            source=SOURCE)) from None
    except OSError as exc:
        raise SMailError(_("The event source {source} could not be registered: {reason}").format(
            source=SOURCE, reason=exc.strerror or exc)) from None
    return _("The event source {source} is registered in the Application log.").format(source=SOURCE)
