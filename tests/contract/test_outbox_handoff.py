"""A batch with /OUTBOX hands the rows it cannot deliver now to the outbox, and records them in
its /BATCH_RESULT file. A kill -9 at any instant of that hand-off, followed by /BATCH_RESUME
and /FLUSH in either order, delivers every row exactly once: the resume never sends a row
that the flush sends too, and no row is lost.

The kill comes from inside the real process: a small wrapper around SMail's command line
kills it (SIGKILL) at the chosen system call, so the instant is exact however loaded the
machine is."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, free_port

ROOT = Path(__file__).resolve().parents[2]

# Runs SMail's command line, and kills the process (no clean-up of any kind runs) at the
# KILL_COUNT-th time it reaches the system call named by KILL_AT.
KILLER = r"""
import os, signal, sys

point, count = os.environ["KILL_AT"], int(os.environ["KILL_COUNT"])
reached = 0


def die_at(name):
    global reached
    if name != point:
        return
    reached += 1
    if reached == count:
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)


def wrap_move(move):
    def moved(source, target, *args, **kwargs):
        entry = os.path.basename(os.fsdecode(source)).startswith(".new-")
        if entry:
            die_at("before-entry-appears")
        move(source, target, *args, **kwargs)
        if entry:
            die_at("after-entry-appears")
    return moved


os.rename, os.replace = wrap_move(os.rename), wrap_move(os.replace)
real_write = os.write


def write(fd, data):
    queued = b",queued," in bytes(data)
    if queued:
        die_at("before-queued-line")
    written = real_write(fd, data)
    if queued:
        die_at("after-queued-line")
    return written


os.write = write
from smail.cli import main

sys.exit(main(sys.argv[1:]))
"""

# How the wrapper's kill shows: SIGKILL where there is one, else the exit code it falls back to.
KILLED = -signal.SIGKILL if hasattr(signal, "SIGKILL") else 137

POINTS = ["before-entry-appears", "after-entry-appears", "before-queued-line", "after-queued-line"]
ROWS = 3


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMAIL_")}
    return {**env, "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT), **extra}


def smail(*args: str, killer: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", KILLER] if killer else [sys.executable, "-m", "smail"]
    return subprocess.run([*command, *args, "/TIMEOUT=20"], cwd=ROOT, env=environment(**(killer or {})),
                          capture_output=True, text=True, timeout=300)


def subjects(handler: RecordingHandler) -> Counter[str]:
    found: Counter[str] = Counter()
    for received in list(handler.received):
        parsed = email.message_from_bytes(received.data)
        found[str(make_header(decode_header(parsed["Subject"])))] += 1
    return found


def waiting(box: Path) -> list[str]:
    return sorted(p.name for p in box.iterdir() if p.is_dir() and p.name[:1].isdigit()) if box.is_dir() else []


@pytest.mark.parametrize("order", ["resume-then-flush", "flush-then-resume"])
@pytest.mark.parametrize("point", POINTS)
def test_a_batch_killed_while_handing_a_row_to_the_outbox_delivers_every_row_once(smtpd, tmp_path, point, order):
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,n\n" + "".join(f"client{n}@test.test,{n}\n" for n in range(1, ROWS + 1)), encoding="utf-8")
    box, results = tmp_path / "box", tmp_path / "results.csv"
    batch = ("/FROM_ADDR=albert@demo.test", "/SUBJECT=Row {{ n }}", "/BODY=Bonjour", f"/BATCH={rows}",
             f"/BATCH_RESULT={results}", f"/OUTBOX={box}")
    # The server is down: every row goes to the outbox; the kill lands on the second one.
    killed = smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", *batch,
                   killer={"KILL_AT": point, "KILL_COUNT": "2"})
    assert killed.returncode == KILLED, (killed.returncode, killed.stderr)
    handler = RecordingHandler()
    server = smtpd(handler)
    resume = (*server.options, *batch, "/BATCH_RESUME")
    flush = (*server.options, "/FLUSH", f"/OUTBOX={box}")
    steps = [resume, flush] if order == "resume-then-flush" else [flush, resume, flush]
    for step in steps:
        done = smail(*step)
        assert done.returncode not in (ExitCode.INTERNAL, ExitCode.PARAM), (step, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
    assert subjects(handler) == Counter({f"Row {n}": 1 for n in range(1, ROWS + 1)}), point
    assert waiting(box) == []
    assert not (box / "uncertain").exists() and not (box / "failed").exists()
    again = smail(*resume)  # and it stays so
    assert again.returncode not in (ExitCode.INTERNAL, ExitCode.PARAM), again.stderr
    assert subjects(handler) == Counter({f"Row {n}": 1 for n in range(1, ROWS + 1)})


@pytest.mark.parametrize("point", ["before-queued-line", "after-queued-line"])
def test_a_hidden_entry_left_by_a_killed_batch_is_settled_by_a_later_flush(smtpd, tmp_path, point):
    """No resume comes: a /FLUSH an hour later shows the hidden entry of a row recorded as kept
    (and sends it), and erases the one of a row never recorded (which only its batch sends)."""
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,n\n" + "".join(f"client{n}@test.test,{n}\n" for n in range(1, ROWS + 1)), encoding="utf-8")
    box, results = tmp_path / "box", tmp_path / "results.csv"
    batch = ("/FROM_ADDR=albert@demo.test", "/SUBJECT=Row {{ n }}", "/BODY=Bonjour", f"/BATCH={rows}",
             f"/BATCH_RESULT={results}", f"/OUTBOX={box}")
    killed = smail("/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}", *batch,
                   killer={"KILL_AT": point, "KILL_COUNT": "2"})
    assert killed.returncode == KILLED, (killed.returncode, killed.stderr)
    [hidden] = [p for p in box.iterdir() if p.name.startswith(".new-")]
    handler = RecordingHandler()
    server = smtpd(handler)
    flush = (*server.options, "/FLUSH", f"/OUTBOX={box}")
    fresh = smail(*flush)  # less than an hour old: its batch may still be writing it
    assert fresh.returncode == ExitCode.OK, fresh.stderr
    assert hidden.is_dir() and subjects(handler) == Counter({"Row 1": 1})
    old = time.time() - 2 * 3600
    os.utime(hidden, (old, old))
    later = smail(*flush)
    assert later.returncode == ExitCode.OK, later.stderr
    assert not hidden.exists()
    expected = Counter({"Row 1": 1, "Row 2": 1}) if point == "after-queued-line" else Counter({"Row 1": 1})
    assert subjects(handler) == expected
    resumed = smail(*server.options, *batch, "/BATCH_RESUME")
    assert resumed.returncode not in (ExitCode.INTERNAL, ExitCode.PARAM), resumed.stderr
    smail(*flush)
    assert subjects(handler) == Counter({f"Row {n}": 1 for n in range(1, ROWS + 1)})
