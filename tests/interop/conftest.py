"""The real Postfix (+ Dovecot SASL) of the interop suite, and the real proxies (Squid, Dante),
each started once for all its tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.interop import proxy_servers
from tests.interop import servers as interop


@pytest.fixture(scope="session")
def postfix() -> Iterator[interop.Servers]:
    try:
        started = interop.start()
    except RuntimeError as exc:  # neither root nor sudo: cannot install or start Postfix
        pytest.skip(str(exc))
    yield started
    interop.stop(started.folder)


@pytest.fixture(scope="session")
def squid() -> Iterator[proxy_servers.Proxy]:
    try:
        started = proxy_servers.start_squid()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"Squid could not be installed or started: {exc}")
    yield started
    started.stop()


@pytest.fixture(scope="session")
def dante() -> Iterator[proxy_servers.Proxy]:
    try:
        started = proxy_servers.start_dante()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"Dante could not be installed or started: {exc}")
    yield started
    started.stop()
