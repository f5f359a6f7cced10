"""Attacks on /OUTBOX and /FLUSH: folders that are not SMail's in the outbox, a lock file
deleted under a running flush, tampered copies, odd paths. Each failing test's docstring says
what is expected and what happens today."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, free_port

ROOT = Path(__file__).resolve().parents[2]
BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/BODY=Bonjour")
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


def down() -> list[str]:
    return ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={free_port()}"]


def queue(run_smail: Any, box: Path, count: int) -> None:
    for n in range(count):
        result = run_smail(*down(), *BASIC, f"/SUBJECT=Facture {n}", f"/OUTBOX={box}")
        assert result.exit_code == ExitCode.QUEUED, result.stderr


def entries(box: Path) -> list[Path]:
    return sorted(p for p in box.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in ("failed", "uncertain"))


class SlowHandler(RecordingHandler):
    """Answers each final dot after 0.4 s, so that a flush is caught in the middle."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.4)
        return await super().handle_DATA(server, session, envelope)


def test_a_folder_that_is_not_an_entry_is_left_alone(smtpd, run_smail, tmp_path):
    """BUG. /OUTBOX names a folder that also holds the user's own sub-folder (`photos/`), or
    anything else that is not an entry SMail wrote.
    Expected: /FLUSH sends its entries and leaves `photos/` where it is, untouched.
    Actual: `photos/` is taken for a damaged entry: SMail writes reason.txt and status.json into
    it and moves it to failed/photos (exit 11, "1 moved to failed") - it touched files that are not its own."""
    server = smtpd(RecordingHandler())
    box = tmp_path / "box"
    queue(run_smail, box, 1)
    photos = box / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"\xff\xd8 meow")
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert sorted(p.name for p in photos.iterdir()) == ["cat.jpg"], result.stderr
    assert not (box / "failed" / "photos").exists()
    assert result.exit_code == ExitCode.OK, result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="an open file cannot be deleted on Windows")
def test_a_lock_file_deleted_during_a_flush_never_lets_a_second_flush_send_twice(smtpd, run_smail, tmp_path):
    """BUG. While flush A sends (its .lock locked), someone deletes box/.lock (a clean-up script,
    a sync tool), then flush B starts.
    Expected: every entry delivered exactly once (B waits for A, or finds the lock it holds is
    not the outbox's lock and takes it again).
    Actual: B creates a new .lock, locks it at once and flushes alongside A: 4 of 6 messages are
    delivered twice, and B moves an entry A delivered to uncertain/."""
    handler = SlowHandler()
    server = smtpd(handler)
    box = tmp_path / "box"
    queue(run_smail, box, 6)

    def flush() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "smail", *server.options, "/FLUSH", f"/OUTBOX={box}",
                                 "/TIMEOUT=10"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = flush()
    deadline = time.monotonic() + 10
    while not handler.received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handler.received, "flush A never sent"
    os.unlink(box / ".lock")
    second = flush()
    first.communicate(timeout=300)
    second.communicate(timeout=300)
    counts = Counter(MESSAGE_ID.search(r.data).group(1) for r in list(handler.received))  # type: ignore[union-attr]
    assert len(counts) == 6
    twice = [mid for mid, n in counts.items() if n > 1]
    assert twice == [], f"{len(twice)} messages delivered twice"


def test_a_copy_replaced_by_a_bigger_file_is_not_sent(smtpd, run_smail, tmp_path, files):
    """An attachment's copy in the entry swapped for another file: the entry goes to failed/ with
    a reason, nothing else is attached in its place."""
    handler = RecordingHandler()
    server = smtpd(handler)
    box = tmp_path / "box"
    pdf = files("doc.pdf", b"%PDF" + b"a" * 100)
    result = run_smail(*down(), *BASIC, "/SUBJECT=s", f"/ATTACH={pdf}", f"/OUTBOX={box}")
    assert result.exit_code == ExitCode.QUEUED
    [entry] = entries(box)
    (entry / "files" / "0").write_bytes(b"%PDF" + b"EVIL" * 1000)
    result = run_smail(*server.options, "/FLUSH", f"/OUTBOX={box}")
    assert handler.received == []
    assert result.exit_code not in (ExitCode.OK, ExitCode.INTERNAL), result.stderr
    assert [p.name for p in (box / "failed").iterdir()] == [entry.name]


@pytest.mark.skipif(sys.platform == "win32", reason="non-UTF-8 bytes in a file name are a POSIX thing")
def test_an_outbox_path_with_non_utf8_bytes_round_trips_in_a_real_process(smtpd, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    box = os.fsencode(tmp_path) + b"/bo\xffte"
    env = {**os.environ, "LANG": "C.UTF-8"}
    queued = subprocess.run([sys.executable, "-m", "smail", *down(), *BASIC, "/SUBJECT=s", b"/OUTBOX=" + box,
                             "/TIMEOUT=5"], cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert queued.returncode == ExitCode.QUEUED, queued.stderr
    flushed = subprocess.run([sys.executable, "-m", "smail", *server.options, "/FLUSH", b"/OUTBOX=" + box,
                              b"/RESULT_FILE=" + box + b".json", "/TIMEOUT=5"], cwd=ROOT, env=env,
                             capture_output=True, timeout=120)
    assert flushed.returncode == ExitCode.OK, flushed.stderr
    assert b"Traceback" not in flushed.stderr + queued.stderr
    assert len(handler.received) == 1


@pytest.mark.parametrize("age", ["0S", "0", "-1H", "1e400H"])
def test_odd_outbox_max_age_is_a_parameter_error(run_smail, tmp_path, age):
    result = run_smail(*down(), "/FLUSH", f"/OUTBOX={tmp_path / 'box'}", f"/OUTBOX_MAX_AGE={age}")
    assert result.exit_code == ExitCode.PARAM, result.output[-800:]
