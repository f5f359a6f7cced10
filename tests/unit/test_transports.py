"""deliver() and send_many(): retries, never twice, pacing, workers, stop on a session failure."""

from __future__ import annotations

import threading

from smail.errors import AuthError, ConnectError, MaybeSentError, SendError, SMTPReply
from smail.receipt import Receipt, Status
from smail.retry import RetryPolicy
from smail.transports import Job, Pacer, deliver, send_many


class FakeSession:
    """Answers each message with the next scripted outcome (a Receipt or an error)."""

    where = "fake.test:25"

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[object] = []
        self.lock = threading.Lock()

    def send(self, message, rendered, *, on_commit=None):
        with self.lock:
            outcome = self.outcomes.pop(0) if self.outcomes else Receipt(status=Status.SENT)
            self.sent.append(message)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


class Message:
    def __init__(self, message_id: str) -> None:
        self.message_id = message_id


def test_deliver_retries_transient_failures_and_counts_attempts():
    session = FakeSession(SendError("busy", reply=SMTPReply(451, "later", "MAIL FROM")), Receipt(status=Status.SENT))
    receipt = deliver(session, Message("<1@x>"), None, RetryPolicy(attempts=3, delay=1), sleep=lambda s: None)
    assert (receipt.status, receipt.attempts, receipt.message_id) == (Status.SENT, 2, "<1@x>")


def test_deliver_never_retries_a_message_that_may_have_been_sent():
    session = FakeSession(MaybeSentError("no answer after the dot"))
    receipt = deliver(session, Message("<1@x>"), None, RetryPolicy(attempts=5, delay=1), sleep=lambda s: None)
    assert (receipt.status, receipt.attempts, len(session.sent)) == (Status.MAYBE_SENT, 1, 1)


def jobs(count: int) -> list[Job]:
    return [Job(key=n, message=Message(f"<{n}@x>"), rendered=None) for n in range(count)]


def test_send_many_goes_on_after_a_refused_message():
    session = FakeSession(Receipt(status=Status.SENT), SendError("no", reply=SMTPReply(550, "no", "RCPT TO")))
    done: list[tuple[object, Status]] = []
    finished = send_many(session, jobs(4), RetryPolicy(), on_done=lambda job, r: done.append((job.key, r.status)))
    assert finished and done == [(0, Status.SENT), (1, Status.REFUSED), (2, Status.SENT), (3, Status.SENT)]


def test_send_many_stops_when_the_session_fails():
    session = FakeSession(Receipt(status=Status.SENT), AuthError("535 refused", reply=SMTPReply(535, "no", "AUTH")))
    done: list[object] = []
    finished = send_many(session, jobs(5), RetryPolicy(), on_done=lambda job, r: done.append(job.key))
    assert not finished and done == [0, 1] and len(session.sent) == 2
    assert not send_many(FakeSession(ConnectError("refused")), jobs(3), RetryPolicy(), on_done=lambda j, r: None)


def test_pacer_spaces_starts_evenly():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
    pacer = Pacer(2.0, clock=lambda: now[0], sleep=sleep)  # 2 messages a second
    for _ in range(4):
        pacer.wait()
    assert slept == [0.5, 0.5, 0.5]
    assert not Pacer(None).interval


def test_workers_send_every_job_once():
    session = FakeSession()
    done: list[object] = []
    send_many(session, jobs(50), RetryPolicy(), on_done=lambda job, r: done.append(job.key), workers=4)
    assert sorted(done) == list(range(50)) and len(session.sent) == 50


def test_a_bug_in_one_worker_stops_them_all_and_is_raised():
    class Broken(FakeSession):
        def send(self, message, rendered, *, on_commit=None):
            if message.message_id == "<3@x>":
                raise ZeroDivisionError("a bug")
            return super().send(message, rendered, on_commit=on_commit)
    done: list[object] = []
    try:
        send_many(Broken(), jobs(40), RetryPolicy(), on_done=lambda job, r: done.append(job.key), workers=4)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the bug was swallowed")
    assert 3 not in done and len(done) < 40
