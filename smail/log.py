"""Log handlers: an appended UTF-8 /LOG file; every handler carries the redacting filter."""

from __future__ import annotations

import logging
from pathlib import Path

from smail.config import LogSettings
from smail.options import LogLevel
from smail.redact import RedactingFilter

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_LEVELS = {LogLevel.ERROR: logging.ERROR, LogLevel.INFO: logging.INFO, LogLevel.DEBUG: logging.DEBUG}


class _SMailHandler(logging.Handler):
    """Marker base so that configure() replaces only its own handlers."""


class _FileHandler(logging.FileHandler, _SMailHandler):
    pass


class _NullHandler(logging.NullHandler, _SMailHandler):
    """Keeps Python's last-resort handler from printing library warnings on stderr."""


def configure(settings: LogSettings) -> Path | None:
    """Install the handlers for one run; returns the log path.

    If the /LOG file cannot be opened, the OSError propagates and a null handler stays in
    place, so that nothing falls through to Python's last-resort printing on stderr.
    """
    handler: logging.Handler
    try:
        handler = _NullHandler() if settings.path is None else \
            _FileHandler(settings.path, mode="a", encoding="utf-8", delay=False)
    except (OSError, ValueError):
        configure(LogSettings(level=settings.level))
        raise
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    shutdown()
    root = logging.getLogger()
    root.setLevel(_LEVELS[settings.level])
    root.addHandler(handler)
    return settings.path


def shutdown() -> None:
    """Close the handlers of this run (tests call main() many times in one process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _SMailHandler):
            root.removeHandler(handler)
            handler.close()
