"""The transport session protocol, the choice of a transport by its settings, and deliver(): one
message through an open session, retried per /RETRY, reported as a Receipt.

A session sends many messages (one SMTP connection, one Graph token); the single send,
/BATCH and /FLUSH all go through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from smail import retry
from smail.errors import SMailError
from smail.receipt import Receipt
from smail.settings import GraphSettings, SMTPSettings, TransportSettings

if TYPE_CHECKING:
    from smail.message import Message
    from smail.mime import Rendered


Progress = Callable[[str, int, int], None]
# Called just before the end of a message goes out (SMTP's final dot, Graph's send request):
# after it returns, a failure means "may have been sent". Raising aborts the message.
Commit = Callable[[], None]
# Called with the error of a message that failed, before its receipt is made: the receipt holds
# plain facts; a run of many that stops on a failure keeps the error itself as its reason.
Failure = Callable[[SMailError], None]


class Session(Protocol):
    @property
    def where(self) -> str:
        """The server it talks to (host:port, Graph's host), for receipts of failures too."""
        ...

    def send(self, message: Message, rendered: Rendered, *, on_commit: Commit | None = None) -> Receipt:
        """Send one message; the receipt's status is SENT. Raises SMailError."""
        ...

    def close(self) -> None: ...


def _smtp(settings: TransportSettings, progress: Progress | None) -> Session:
    from smail.transports.smtp import SMTPSession

    assert isinstance(settings, SMTPSettings)
    return SMTPSession.from_settings(settings)


def _graph(settings: TransportSettings, progress: Progress | None) -> Session:
    # Imported only here: msal and requests stay out of SMTP-only runs.
    from smail.transports.graph import GraphSession

    assert isinstance(settings, GraphSettings)
    return GraphSession(settings, progress=progress)


_FACTORIES: Final[Mapping[type, Callable[[TransportSettings, Progress | None], Session]]] = {
    SMTPSettings: _smtp, GraphSettings: _graph}


def open_session(settings: TransportSettings, progress: Progress | None = None) -> Session:
    """A session for the transport the settings describe; connects on its first message.
    `progress(name, done, total)` reports long uploads."""
    return _FACTORIES[type(settings)](settings, progress)


def deliver(session: Session, message: Message, rendered: Rendered, policy: retry.RetryPolicy, *,
            on_commit: Commit | None = None, on_failure: Failure | None = None,
            sleep: Callable[[float], None] = time.sleep) -> Receipt:
    """Send one message with retries; a failure is a Receipt too, with its facts."""
    attempts = 0
    started = time.monotonic()

    def attempt() -> Receipt:
        nonlocal attempts
        attempts += 1
        return session.send(message, rendered, on_commit=on_commit)
    try:
        receipt = retry.run(attempt, policy, sleep=sleep)
    except SMailError as err:
        if on_failure is not None:
            on_failure(err)
        return Receipt.from_error(err, message_id=message.message_id, attempts=attempts,
                                  duration=time.monotonic() - started, server=session.where)
    return receipt.with_facts(message_id=message.message_id, attempts=attempts,
                              duration=time.monotonic() - started)


@dataclass
class Job:
    """One message of many (a batch row, an outbox entry), with what identifies it."""

    key: object
    message: Message
    rendered: Rendered
    on_commit: Commit | None = None
    on_failure: Failure | None = None


def ends_session(receipt: Receipt) -> bool:
    """Whether the failure was the session's own (the server unreachable, the login or the TLS
    handshake refused): the next messages would fail the same way, so sending many stops there."""
    return receipt.ends_session


def dropped_on(receipt: Receipt) -> bool:
    """Whether the server closed the connection during this message, before its end: the next
    message may go through a new connection."""
    return receipt.dropped


class Pacer:
    """/RATE: message starts spaced evenly, shared by every worker; nothing when no rate."""

    def __init__(self, per_second: float | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()
        self.next_start: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = self.clock()
            start = now if self.next_start is None else max(now, self.next_start)
            self.next_start = start + self.interval
        if start > now:
            self.sleep(start - now)


def send_many(session: Session, jobs: Iterable[Job], policy: retry.RetryPolicy, *,
              on_done: Callable[[Job, Receipt], None], per_second: float | None = None,
              workers: int = 1, sleep: Callable[[float], None] = time.sleep,
              ends: Callable[[Receipt], bool] = ends_session) -> bool:
    """Send every job through one session, `workers` at a time, paced by `per_second`;
    `on_done` gets each receipt as soon as it is known. Returns False when a failure of the
    session (`ends`) stopped the run before every job was tried."""
    pacer = Pacer(per_second, sleep=sleep)
    source = iter(jobs)
    lock = threading.Lock()
    stopped = threading.Event()
    bugs: list[BaseException] = []

    def work() -> None:
        try:
            while not stopped.is_set():
                with lock:
                    job = next(source, None)
                if job is None:
                    return
                pacer.wait()
                receipt = deliver(session, job.message, job.rendered, policy, on_commit=job.on_commit,
                                  on_failure=job.on_failure, sleep=sleep)
                if ends(receipt):
                    stopped.set()
                with lock:
                    on_done(job, receipt)
        except BaseException as exc:  # a bug (or Ctrl+C) stops every worker, and is raised below
            bugs.append(exc)
            stopped.set()
    if workers <= 1:
        work()
    else:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if bugs:
        raise bugs[0]
    return not stopped.is_set()
