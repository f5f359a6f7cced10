"""The /LOG file: one write per record, secrets masked, a failure said once and never raised."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from pathlib import Path

import pytest

from smail import log, redact
from smail.log import LogLevel, LogSettings


def test_records_are_appended_redacted(tmp_path):
    path = tmp_path / "smail.log"
    path.write_text("previous run\n", encoding="utf-8")
    redact.forget_all()
    redact.remember("Canary-Pw-1")
    log.configure(LogSettings(path=path, level=LogLevel.DEBUG))
    logging.getLogger("smail").info("password %s, file caf\udce9.pdf", "Canary-Pw-1")
    logging.getLogger("msal").debug("Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl")
    log.shutdown()
    redact.forget_all()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("previous run\n")
    assert "Canary-Pw-1" not in text and "eyJ" not in text
    assert "password ****, file caf\\udce9.pdf" in text


@pytest.mark.skipif(sys.platform == "win32", reason="/dev/full is Linux")
def test_a_log_that_cannot_be_written_warns_once(tmp_path):
    warnings: list[str] = []
    log.configure(LogSettings(path=Path("/dev/full")), warn=warnings.append)
    for n in range(3):
        logging.getLogger("smail").info("line %d", n)
    log.shutdown()
    assert len(warnings) == 1 and warnings[0].startswith("The log file /dev/full could not be written")


def _append(path: str, worker: int) -> None:
    log.configure(LogSettings(path=Path(path)))
    for n in range(200):
        logging.getLogger("smail").info("worker %d line %d %s", worker, n, "x" * 300)
    log.shutdown()


def test_processes_sharing_a_log_never_interleave_within_a_line(tmp_path):
    path = tmp_path / "shared.log"
    workers = [multiprocessing.Process(target=_append, args=(str(path), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 800
    assert all(line.endswith("x" * 300) and " INFO    smail: worker " in line for line in lines)
