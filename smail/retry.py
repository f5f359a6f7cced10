"""Retry of transient failures: doubling delay with jitter; a server's Retry-After wins.

Only what the server certainly did not accept is replayed: a MaybeSentError is permanent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from smail.errors import RetryExceededError, SMailError
from smail.i18n import _, ngettext

T = TypeVar("T")
MAX_DELAY: Final = 300.0
log = logging.getLogger("smail")


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 1
    delay: float = 5.0

    def wait_before(self, attempt: int, jitter: float) -> float:
        """Seconds to wait before attempt number `attempt` (2, 3, ...): doubling, +0-25 % jitter."""
        base = self.delay * 2.0 ** (attempt - 2)
        return min(MAX_DELAY, base * (1 + 0.25 * jitter))


def run(attempt: Callable[[], T], policy: RetryPolicy, *,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random) -> T:
    """Call `attempt` until it succeeds, a permanent error occurs, or attempts run out."""
    for number in range(1, policy.attempts + 1):
        try:
            return attempt()
        except SMailError as err:
            if not err.transient or policy.attempts == 1:
                raise
            if number == policy.attempts:
                raise RetryExceededError(ngettext(
                    "The message could not be sent after {n} attempt. Last error: {error}",
                    "The message could not be sent after {n} attempts. Last error: {error}",
                    number).format(n=number, error=err.message), last=err, attempts=number) from err
            wait = policy.wait_before(number + 1, jitter())
            if err.retry_after is not None:
                wait = min(max(err.retry_after, 0.0), MAX_DELAY)
            log.warning(_("Attempt {n} failed ({error}); next attempt in {seconds:.0f} s.").format(
                n=number, error=err.message, seconds=wait))
            sleep(wait)
    raise AssertionError("unreachable")
