"""Secrets never print; retries are for transient errors only."""

from __future__ import annotations

import logging

import pytest

from smail import redact
from smail.errors import ConnectError, ExitCode, HTTPAnswer, RetryExceededError, SendError
from smail.redact import RedactingFilter, Secret
from smail.retry import RetryPolicy, run


def test_secret_never_shows_its_value():
    secret = Secret("hunter2")
    assert "hunter2" not in f"{secret} {secret!r} {[secret]}"
    assert secret.reveal() == "hunter2"


def test_redact_covers_encoded_forms():
    redact.forget_all()
    redact.remember("p@ss w/rd")
    try:
        text = redact.redact("a p@ss w/rd b p%40ss%20w%2Frd c p%40ss+w%2Frd d cEBzcyB3L3Jk")
        assert "p@ss" not in text and "p%40ss" not in text and "cEBzcyB3L3Jk" not in text
    finally:
        redact.forget_all()


@pytest.mark.parametrize("line, masked", [
    ("AUTH PLAIN AGFsaWNlAGh1bnRlcjI=", "AUTH PLAIN ****"),
    ("auth login", "auth login"),
    ("AUTH XOAUTH2 dXNlcj1h", "AUTH XOAUTH2 ****"),
    ("MAIL FROM:<a@b>", "MAIL FROM:<a@b>"),
])
def test_auth_lines_masked_by_structure(line, masked):
    assert redact.mask_auth_command(line) == masked


def test_filter_redacts_third_party_records_and_tracebacks():
    redact.forget_all()
    redact.remember("topsecret")
    record = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, "body=%s", ("client_secret=topsecret",), None)
    try:
        raise ValueError("bad topsecret")
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    redact.forget_all()
    assert "topsecret" not in formatted and "****" in formatted


def test_transient_failures_are_retried_with_doubling_delay():
    calls, sleeps = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectError("refused")
        return "ok"
    assert run(attempt, RetryPolicy(attempts=5, delay=2), sleep=sleeps.append, jitter=lambda: 0) == "ok"
    assert sleeps == [2, 4]


def test_delay_is_capped_and_retry_after_wins():
    sleeps = []

    def attempt():
        raise SendError("throttled", retry_after=7, answer=HTTPAnswer(429))
    with pytest.raises(RetryExceededError) as info:
        run(attempt, RetryPolicy(attempts=3, delay=1000), sleep=sleeps.append, jitter=lambda: 1)
    assert sleeps == [7, 7]
    assert info.value.exit_code == ExitCode.RETRY_EXCEEDED
    assert "after 3 attempts" in info.value.message and "throttled" in info.value.message
    assert RetryPolicy(attempts=10, delay=100).wait_before(5, 0) == 300


def test_permanent_failures_stop_at_once():
    calls = []

    def attempt():
        calls.append(1)
        raise SendError("550 no")
    with pytest.raises(SendError):
        run(attempt, RetryPolicy(attempts=5), sleep=lambda s: None)
    assert calls == [1]


def test_single_attempt_keeps_the_original_exit_code():
    with pytest.raises(ConnectError):
        run(lambda: (_ for _ in ()).throw(ConnectError("x")), RetryPolicy(attempts=1))
