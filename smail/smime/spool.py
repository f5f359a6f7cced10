"""The content of a protected message as the builders take it: spooled once to a temporary file
mapped read-only (file pages the system can drop, not a copy in memory), and base64 lines."""

from __future__ import annotations

import base64
import mmap
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from smail.mime import BLOCK, CRLF, Rendered, Segment


@contextmanager
def spooled(segments: Iterable[Segment]) -> Iterator[memoryview]:
    """The segments' bytes in a temporary file (deleted on exit), mapped read-only."""
    with tempfile.TemporaryFile(prefix="smail-") as spool:
        for chunk in Rendered(tuple(segments)).chunks():
            spool.write(chunk)
        spool.flush()
        with mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            yield view


def b64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", CRLF)


def b64_blocks(data: bytes) -> list[Segment]:
    """`data` in base64 lines, block by block: no second copy of a large whole."""
    view = memoryview(data)
    return [b64_lines(bytes(view[start:start + BLOCK])) for start in range(0, len(data), BLOCK)]
