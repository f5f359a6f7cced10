"""Files as an unattended tool must treat them: regular inputs only, bounded reads, outputs
that never block and never remove what SMail did not write."""

from __future__ import annotations

import codecs
import io
import os
import sys
import threading
from pathlib import Path

import pytest

from smail import files
from smail.errors import FileMissingError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev devices are POSIX")


def test_regular_file_is_read_whole_within_its_bound(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 100)
    assert files.read_bounded(path, limit=100) == b"x" * 100
    with pytest.raises(FileMissingError, match="larger than"):
        files.read_bounded(path, limit=99)


def test_a_folder_is_refused_naming_it(tmp_path):
    with pytest.raises(FileMissingError, match="is a folder, not a file"):
        files.read_bounded(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileMissingError, match="File not found"):
        files.read_bounded(tmp_path / "nope.txt")


@posix_only
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused_at_once(device):
    with pytest.raises(FileMissingError, match="not a regular file"):
        files.read_bounded(Path(device))


@posix_only
def test_a_fifo_without_writer_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(pytest.raises(FileMissingError, files.read_bounded, fifo)))
    worker.start()
    worker.join(5)
    assert not worker.is_alive() and outcome  # it returned: refused, not blocked


@posix_only
def test_output_to_a_fifo_without_reader_fails_instead_of_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        files.open_output(fifo)


@posix_only
def test_remove_output_never_touches_devices_fifos_folders_or_symlink_targets(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    target = tmp_path / "precious.txt"
    target.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    for path in (fifo, tmp_path, link):
        files.remove_output(path)
    files.remove_output(Path("/dev/null"))
    assert fifo.exists() and link.is_symlink() and target.read_text() == "keep" and os.path.exists("/dev/null")
    regular = tmp_path / "error.txt"
    regular.write_text("old error")
    files.remove_output(regular)
    assert not regular.exists()


def test_write_atomically_replaces_the_whole_file(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    files.write_atomically(path, b'{"new": true}')
    assert path.read_bytes() == b'{"new": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


@posix_only
def test_write_atomically_writes_a_device_in_place():
    files.write_atomically(Path("/dev/null"), b"x")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_wildcards_only_star_and_question_mark(tmp_path):
    for name in ("Report[1].pdf", "a.pdf", "b.txt"):
        (tmp_path / name).write_text("x")
    # sorted as paths compare: case first on POSIX, without case on Windows
    expected = ["a.pdf", "Report[1].pdf"] if sys.platform == "win32" else ["Report[1].pdf", "a.pdf"]
    assert [p.name for p in files.expand_wildcards(str(tmp_path / "*.pdf"))] == expected
    assert files.expand_wildcards(str(tmp_path / "Report[1].pdf")) == [tmp_path / "Report[1].pdf"]
    assert [p.name for p in files.expand_wildcards(str(tmp_path / "Report[1]?pdf"))] == ["Report[1].pdf"]


def test_identity_of_two_names_of_one_file(tmp_path, monkeypatch):
    path = tmp_path / "a.txt"
    path.write_text("x")
    monkeypatch.chdir(tmp_path)
    assert files.identity(path) == files.identity(Path("a.txt"))
    assert files.identity(tmp_path / "missing") == files.identity(Path("missing"))


@pytest.mark.parametrize("data, expected", [
    (codecs.BOM_UTF8 + "a;é\n".encode(), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + "a;é\n".encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + "a;é\n".encode("utf-16-be"), "utf-16"),
    ("a;é\n".encode(), "utf-8"),
    ("a;é €\n".encode("cp1252"), "cp1252"),
    (b"a;\x81\x8d\n", "cp1252"),  # bytes Windows-1252 leaves undefined
    (b"", "utf-8"),
])
def test_encoding_is_detected_like_body_files(data, expected):  # a /BATCH file's, too
    stream = io.BytesIO(data)
    assert files.text_encoding(stream)[0] == expected
    assert stream.tell() == 0


def test_decode_text_utf8_then_ansi():
    assert files.decode_text("\ufeffété".encode()) == "été"
    assert files.decode_text("été".encode("cp1252")) == "été"


def test_lock_file_is_exclusive_between_opens_and_released_on_close(tmp_path):
    """The same test runs on Windows (LockFileEx, whose lock is the handle's) and elsewhere (fcntl.flock)."""
    path = tmp_path / ".lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT)
    second = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert files.lock_file(first) is True
        assert files.lock_file(second) is False
        os.close(first)
        first = -1
        assert files.lock_file(second) is True
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)


class FakeByteLocks:
    """windows.lock_byte/unlock_byte as the Windows branches call them, recorded."""

    def __init__(self, answers=()):
        self.calls = []
        self.answers = list(answers)

    def lock_byte(self, fd, offset, *, wait):
        self.calls.append(("lock", offset, wait, os.lseek(fd, 0, os.SEEK_CUR)))
        return self.answers.pop(0) if self.answers else True

    def unlock_byte(self, fd, offset):
        self.calls.append(("unlock", offset, None, os.lseek(fd, 0, os.SEEK_CUR)))


def test_lock_file_windows_branch_locks_a_byte_past_the_end_and_keeps_the_position(monkeypatch, tmp_path):
    from smail import windows

    fake = FakeByteLocks(answers=[True, False])
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(windows, "lock_byte", fake.lock_byte)
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"xyz")
        assert files.lock_file(fd) is True
        assert files.lock_file(fd) is False  # held by another handle: Windows' own answer, no errno guessing
        assert os.lseek(fd, 0, os.SEEK_CUR) == 3  # readers and appenders keep their place
    finally:
        os.close(fd)
    assert fake.calls == [("lock", 1 << 40, False, 3), ("lock", 1 << 40, False, 3)]


def test_append_on_windows_locks_around_the_seek_and_the_write(monkeypatch, tmp_path):
    from smail import windows

    fake = FakeByteLocks()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(windows, "lock_byte", fake.lock_byte)
    monkeypatch.setattr(windows, "unlock_byte", fake.unlock_byte)
    # O_BINARY: on Windows a file opened without it turns each \n written into \r\n.
    fd = os.open(tmp_path / "shared.log", os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0))
    try:
        os.write(fd, b"first\n")
        os.lseek(fd, 0, os.SEEK_SET)
        files.append(fd, b"second\n")
    finally:
        os.close(fd)
    assert (tmp_path / "shared.log").read_bytes() == b"first\nsecond\n"
    assert fake.calls == [("lock", (1 << 40) + 1, True, 0), ("unlock", (1 << 40) + 1, None, 13)]


def test_rename_is_retried_on_windows_while_a_scanner_holds_the_file(monkeypatch, tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_text("x")
    failures = iter([PermissionError(13, "in use"), PermissionError(13, "in use")])
    real = os.rename

    def busy(src, dst):
        error = next(failures, None)
        if error is not None:
            raise error
        real(src, dst)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "rename", busy)
    slept: list[float] = []
    files.rename(source, target, sleep=slept.append)
    assert target.read_text() == "x" and slept == [0.2, 0.2]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_new_files_and_replaced_names_never_write_through_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not ours")
    link = tmp_path / "status.json"
    link.symlink_to(outside)
    with pytest.raises(FileExistsError):
        files.write_new(link, b"new")
    files.replace_name(link, b"{}")
    assert outside.read_bytes() == b"not ours"
    assert not link.is_symlink() and link.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt", "status.json"]  # no temporary left
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "linked").symlink_to(folder)
    assert files.real_folder(folder)
    assert not files.real_folder(tmp_path / "linked") and not files.real_folder(outside)
    assert not files.real_folder(tmp_path / "missing")
