"""The console and /ERROR_FILE: a report that cannot be written never changes the outcome."""

from __future__ import annotations

import io
import os
import sys

import pytest

from smail import redact
from smail.output import Console, ErrorFile, ErrorFileOnSuccess, encodable


class Closed(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_console_survives_closed_absent_and_broken_streams():
    closed = io.StringIO()
    closed.close()
    for stream in (None, closed, Closed()):
        Console(stream, stream).out("Message sent.")  # no exception


def test_console_masks_secrets_and_undecodable_bytes():
    redact.forget_all()
    redact.remember("Hunter2-secret")
    out = io.StringIO()
    Console(out, None).out("password Hunter2-secret in caf\udce9.pdf")
    assert out.getvalue() == "password **** in caf\ufffd.pdf\n"
    redact.forget_all()


def test_encodable():
    assert encodable("caf\udce9") == "caf\ufffd" and encodable("\ud800x") == "?x"


def test_error_file_written_in_the_chosen_encoding_and_removed_on_success(tmp_path):
    path = tmp_path / "error.txt"
    console = Console(io.StringIO(), io.StringIO())
    ErrorFile(path, encoding="cp850").failure("Échec : serveur injoignable", console)
    assert path.read_bytes() == "Échec : serveur injoignable\n".encode("cp850")
    ErrorFile(path, ErrorFileOnSuccess.EMPTY).success(console)
    assert path.read_bytes() == b""
    ErrorFile(path).success(console)
    assert not path.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are POSIX")
def test_error_file_on_a_fifo_without_reader_is_reported_not_blocking(tmp_path):
    fifo = tmp_path / "error.fifo"
    os.mkfifo(fifo)
    stderr = io.StringIO()
    ErrorFile(fifo).failure("boom", Console(None, stderr))
    assert stderr.getvalue().startswith(f"The error file {fifo} could not be written")
    ErrorFile(fifo).success(Console(None, stderr))
    assert fifo.exists()
