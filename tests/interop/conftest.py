"""The real Postfix (+ Dovecot SASL) of the interop suite, started once for all its tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop import servers as interop


@pytest.fixture(scope="session")
def postfix() -> Iterator[interop.Servers]:
    try:
        started = interop.start()
    except RuntimeError as exc:  # neither root nor sudo: cannot install or start Postfix
        pytest.skip(str(exc))
    yield started
    interop.stop(started.folder)
