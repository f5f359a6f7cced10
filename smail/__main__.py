"""Entry point for `python -m smail`, the `smail` command and the frozen SMail executable."""

import os
import sys


def run() -> int:
    """main(), then a flush of stdout that cannot change the exit code.

    `SMail /VERSION` alone is answered before the rest of SMail is loaded: scripts and
    inventory tools call it often. Python exits 120 when flushing stdout fails at shutdown
    (closed, or a pipe whose reader left): the outcome's code must stand, so the stream is
    pointed at the null device first.
    """
    if sys.argv[1:2] and len(sys.argv) == 2 and sys.argv[1].lstrip("/-").upper() == "VERSION":
        from smail import version_line

        try:
            print(version_line())
        except (OSError, ValueError, AttributeError):
            pass
        code = 0
    else:
        from smail.cli import main

        code = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
            except (OSError, ValueError):
                pass
    return code


if __name__ == "__main__":
    sys.exit(run())
