"""TCP connections to a server: every address of its name in turn (IPv6 and IPv4 interleaved,
as RFC 8305 section 4 orders them), /IP=4|6 keeping one family, all within /TIMEOUT."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Final

Address = tuple[Any, ...]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
# No address gets less than this, unless less is left: a slow but working first address
# must not lose to a split of the time between many.
MIN_ATTEMPT: Final = 2.0


class IPFamily(Enum):
    """/IP: which address family to connect with (ANY: whichever answers)."""

    ANY = "ANY"
    V4 = "4"
    V6 = "6"

    @property
    def socket_family(self) -> int:
        return {IPFamily.V4: socket.AF_INET, IPFamily.V6: socket.AF_INET6}.get(self, socket.AF_UNSPEC)


def interleave(addresses: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """getaddrinfo's answers with the families alternating, the first family first."""
    if not addresses:
        return []
    first = addresses[0][0]
    same = [a for a in addresses if a[0] == first]
    other = [a for a in addresses if a[0] != first]
    ordered: list[tuple[Any, ...]] = []
    for index in range(max(len(same), len(other))):
        ordered.extend(group[index] for group in (same, other) if index < len(group))
    return ordered


def attempt_timeout(left: float, remaining_addresses: int) -> float:
    """The time one address gets: an even share of what is left, at least MIN_ATTEMPT."""
    return min(left, max(left / max(remaining_addresses, 1), MIN_ATTEMPT))


def connect(host: str, port: int, timeout: float, *, family: IPFamily = IPFamily.ANY,
            resolve: Resolver | None = None,
            clock: Callable[[], float] = time.monotonic) -> socket.socket:
    """A connected socket to host:port; the last address's OSError (or socket.gaierror, or
    TimeoutError when the time ran out) otherwise."""
    deadline = clock() + timeout
    infos = interleave((resolve or socket.getaddrinfo)(host, port, family.socket_family, socket.SOCK_STREAM))
    if not infos:
        raise socket.gaierror(socket.EAI_NONAME, "no address")
    error: OSError | None = None
    for index, (af, kind, proto, _name, address) in enumerate(infos):
        left = deadline - clock()
        if left <= 0:
            break
        sock = socket.socket(af, kind, proto)
        try:
            sock.settimeout(attempt_timeout(left, len(infos) - index))
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    if error is None:
        raise TimeoutError(f"no address of {host} answered in time")
    raise error
