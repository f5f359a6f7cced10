"""Why a /BATCH run stopped before its end, and a bug found on the way: the run's only shared state."""

from __future__ import annotations

import threading

from smail.errors import SMailError


class RunState:
    """The first reason to stop and the first bug, each kept once. The only writer of both,
    under one lock: the job feed, the session's workers and the run all report here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error: SMailError | None = None
        self._crash: Exception | None = None

    @property
    def error(self) -> SMailError | None:
        """Why the batch stopped before its end; None while it goes on."""
        return self._error

    @property
    def crash(self) -> Exception | None:
        """A bug, raised again once the session is closed."""
        return self._crash

    @property
    def going(self) -> bool:
        """Whether rows are still to be taken: no stop, no bug."""
        return self._error is None and self._crash is None

    def stop(self, err: SMailError) -> None:
        """The batch stops on `err`, unless it already stopped: the first reason stands."""
        with self._lock:
            if self._error is None:
                self._error = err

    def crashed(self, exc: Exception) -> None:
        """A bug: the run stops and raises it once the session is closed (the first one)."""
        with self._lock:
            if self._crash is None:
                self._crash = exc
