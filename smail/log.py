"""Log handlers: an appended UTF-8 /LOG file; every handler carries the redacting filter.

Each record is appended with one write() on a file opened in append mode, so that several
SMail processes sharing one log never interleave within a line. A log that cannot be written
(disk full, a device) is reported once on stderr and never changes the run's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Final

from smail import files
from smail.errors import reason
from smail.i18n import _
from smail.redact import RedactingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class LogLevel(Enum):
    ERROR = "ERROR"
    INFO = "INFO"
    DEBUG = "DEBUG"


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    path: Path | None = None
    level: LogLevel = LogLevel.INFO


_LEVELS = {LogLevel.ERROR: logging.ERROR, LogLevel.INFO: logging.INFO, LogLevel.DEBUG: logging.DEBUG}


class _SMailHandler(logging.Handler):
    """Marker base so that configure() replaces only its own handlers."""


class _AppendHandler(_SMailHandler):
    """Appends each record with a single write; a failure is said once, never raised."""

    def __init__(self, path: Path, warn: Callable[[str], None]) -> None:
        super().__init__()
        self.path = path
        self.stream = files.open_output(path, append=True)
        self.warn = warn
        self.failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        try:
            line = self.format(record) + "\n"
            files.append(self.stream.fileno(), line.encode("utf-8", errors="backslashreplace"))
        except Exception as exc:  # never logging's "--- Logging error ---" traceback on stderr
            self.failed = True
            self.warn(_("The log file {path} could not be written: {reason}").format(
                path=self.path, reason=reason(exc)))

    def close(self) -> None:
        try:
            self.stream.close()
        except OSError:
            pass
        super().close()


class _NullHandler(logging.NullHandler, _SMailHandler):
    """Keeps Python's last-resort handler from printing library warnings on stderr."""


# The loggers SMail writes to: its own, and those of the libraries it drives (msal, and
# urllib3 beneath requests), whose records a DEBUG log should show. Nothing else is touched:
# never the root logger or the process-wide level, so that a program calling main() keeps its
# own logging, and servers or libraries beside SMail do not start logging at DEBUG.
LOGGERS: Final = ("smail", "msal", "urllib3")

# (logger, its level, whether it propagated) before configure(), restored by shutdown().
_saved: list[tuple[logging.Logger, int, bool]] = []


def configure(settings: LogSettings, *, warn: Callable[[str], None] = lambda text: None) -> Path | None:
    """Install the handlers for one run on SMail's loggers; returns the log path.

    If the /LOG file cannot be opened, the OSError propagates and a null handler stays in
    place, so that nothing falls through to Python's last-resort printing on stderr.
    """
    handler: logging.Handler
    try:
        handler = _NullHandler() if settings.path is None else _AppendHandler(settings.path, warn)
    except (OSError, ValueError):
        configure(LogSettings(level=settings.level))
        raise
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    shutdown()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        _saved.append((logger, logger.level, logger.propagate))
        logger.setLevel(_LEVELS[settings.level])
        # Not propagated: a handler of the calling program would see records before the
        # redacting filter, which sits on SMail's handlers only.
        logger.propagate = False
        logger.addHandler(handler)
    return settings.path


def shutdown() -> None:
    """Remove and close this run's handlers and give each logger back its level (tests, and
    programs, call main() many times in one process)."""
    closed: set[int] = set()
    while _saved:
        logger, level, propagate = _saved.pop()
        for handler in list(logger.handlers):
            if isinstance(handler, _SMailHandler):
                logger.removeHandler(handler)
                if id(handler) not in closed:
                    closed.add(id(handler))
                    handler.close()
        logger.setLevel(level)
        logger.propagate = propagate
