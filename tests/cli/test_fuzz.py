"""Arbitrary command lines never crash: no exit 7, no traceback, whatever the bytes.

On POSIX, bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape); on
Windows, invalid UTF-16 does the same. Both are generated here, in-process (many cases) and
as real processes (raw bytes in argv and in the environment).
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smail.cli import main
from smail.errors import ExitCode
from smail.options import BY_NAME, OPTIONS

ROOT = Path(__file__).resolve().parents[2]
NAMES = [o.name for o in OPTIONS] + ["HELP", "?", "NOPE", "SMTP-SERVER", "to", "Bodyfile", ""]
SPECIAL = ["", "=", '"', "'", "\r\n", "\0", "é", "x" * 5000, "*", "?", "@", "a@b.test", "Name <a@b.test>",
           '"A, B" <a@b.test>', "0", "-1", "99999999999999999999", "YES", "GRAPH", "SMTP", "smtp..example.com",
           "a\x01b@x.test", "rot13", "zlib", "ANSI", "OEM", "@wincred:x", "/dev/zero", ".", "..", "72H", "30/MIN",
           "\udcff\udcfe", "caf\udce9", "\ud800", "https://", "https://x/.default", "=?utf-8?b?QQ==?=",
           "X-Mailer: x", "Subject: x", "a" * 300 + ".example", "[::1]", "127.0.0.1"]


def raw_text(rng: random.Random) -> str:
    """Random bytes as Python sees them in argv: UTF-8 where valid, lone surrogates elsewhere."""
    return os.fsdecode(bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 12)))) \
        if os.name != "nt" else "".join(chr(rng.randrange(1, 0x10000)) for _ in range(rng.randrange(0, 12)))


def contained(name: str, value: str) -> str:
    """A value the fuzzer gives an option that names a file, kept inside the test's folder: the
    suite runs as root in CI, and "/LOG=/CC=" must not write at the root of the disk."""
    option = BY_NAME.get(name.strip().upper().replace("-", "_"))
    if option is None or not option.names_a_file:
        return value
    return "fuzz-" + "".join("_" if ch in "/\\:" else ch for ch in value)


def random_token(rng: random.Random) -> str:
    kind = rng.random()
    name = rng.choice(NAMES) if rng.random() < 0.9 else raw_text(rng)
    value = contained(name, rng.choice(SPECIAL) if rng.random() < 0.5 else raw_text(rng))
    if kind < 0.75:
        return f"{rng.choice(['/', '-', '--'])}{name}={value}"
    if kind < 0.9:
        return f"{rng.choice(['/', '-', '--', '@'])}{name}"
    return value


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([*argv, "/DRY_RUN"], environ or {}, stdout, stderr)
    return code, stderr.getvalue()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths the fuzzer writes (logs, error files) stay here


@pytest.mark.slow  # a third of the suite's time: make test runs it, make test-fast does not
def test_a_hundred_thousand_random_command_lines(capfd):
    rng = random.Random(20261130)
    for case in range(100_000):
        argv = [random_token(rng) for _ in range(rng.randrange(0, 8))]
        variable = rng.choice(NAMES)
        environ = {"SMAIL_" + variable: contained(variable, random_token(rng))} if case % 7 == 0 else {}
        code, stderr = run(argv, environ)
        assert code != ExitCode.INTERNAL and code in set(ExitCode), (argv, environ, stderr)
        assert "Traceback" not in stderr, (argv, stderr)
    captured = capfd.readouterr()  # nothing leaks to the process's own streams ("Logging error")
    assert "Traceback" not in captured.err and "Logging error" not in captured.err


def argv_text(data: bytes) -> str:
    """Bytes as POSIX hands them to Python in argv. (os.fsdecode() refuses bytes that are not
    UTF-8 on Windows, whose argv is UTF-16: its lone surrogates come from VALUE_CHARS there.)"""
    return os.fsdecode(data) if os.name != "nt" else data.decode("utf-8", "surrogateescape")


VALUE_CHARS = st.characters(blacklist_characters="/\\:")
values = st.one_of(st.text(VALUE_CHARS, max_size=40), st.sampled_from(SPECIAL),
                   st.binary(max_size=16).map(argv_text))
token = st.one_of(
    st.builds(lambda p, n, v: f"{p}{n}={contained(n, v)}", st.sampled_from(["/", "-", "--"]), st.sampled_from(NAMES),
              values),
    st.builds(lambda p, n: f"{p}{n}", st.sampled_from(["/", "-", "--", "@"]), st.sampled_from(NAMES)),
    values)


@settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=st.lists(token, max_size=12))
def test_arbitrary_argv_with_a_log_never_crashes(argv):
    code, stderr = run([*argv, "/LOG=fuzz.log", "/LOG_LEVEL=DEBUG"])
    assert code != ExitCode.INTERNAL and code in set(ExitCode), stderr
    assert "Traceback" not in stderr


@pytest.mark.skipif(os.name == "nt", reason="raw bytes in argv and the environment are a POSIX notion")
def test_real_processes_with_raw_bytes_in_argv_and_environment(tmp_path):
    rng = random.Random(7)
    (tmp_path / b"caf\xe9.pdf".decode(errors="surrogateescape")).write_bytes(b"%PDF")
    for _case in range(60):
        argv = [os.fsencode(random_token(rng).replace("\ud800", "?").replace("\0", "")) for _ in range(rng.randrange(0, 6))]
        argv += [b"/ATTACH=*.pdf", b"/SUBJECT=\xff\xfe", b"/DRY_RUN", b"/LOG=run.log", b"/LOG_LEVEL=DEBUG"]
        variable = rng.choice(NAMES)
        env = {b"PATH": os.environb.get(b"PATH", b"/usr/bin"), b"SMAIL_FROM_NAME": b"\xe9t\xe9",
               b"PYTHONPATH": os.fsencode(ROOT),
               b"SMAIL_" + os.fsencode(variable): os.fsencode(
                   contained(variable, random_token(rng)).replace("\ud800", "?").replace("\0", ""))}
        done = subprocess.run([os.fsencode(sys.executable), b"-m", b"smail", *argv], env=env, cwd=tmp_path,
                              capture_output=True, timeout=60)
        assert done.returncode != ExitCode.INTERNAL, (argv, done.stderr)
        assert b"Traceback" not in done.stderr and b"Logging error" not in done.stderr, (argv, done.stderr)
        assert b"No module named" not in done.stderr  # SMail itself ran
