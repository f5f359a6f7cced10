"""Shared fixtures: run_smail() runs the whole CLI in-process; a throwaway CA; SMTP servers."""

from __future__ import annotations

import io
import logging
import ssl
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from smail import i18n
from smail.cli import main
from tests.fakes.microsoft import App, FakeMicrosoft
from tests.smtpd import RecordingHandler, ScriptedServer, SMTPServer

# aiosmtpd logs whole command lines, AUTH payloads included. Here it logs warnings only and does
# not propagate: a test server says what a failure needs, not every line of every message (a
# 4 MB attachment is 55,000 lines), and SMail's own log (handlers on SMail's loggers only)
# never holds the server's lines. pytest still shows those warnings in a failing test's report.
logging.getLogger("mail.log").propagate = False
logging.getLogger("mail.log").setLevel(logging.WARNING)

if not i18n.catalogs_present():
    raise pytest.UsageError("The message catalogs are not compiled: run `make catalogs` (make test does it).")

# The Postfix interop suite installs Debian packages and imports `pwd`: on Windows even importing
# it fails, and `-m "not interop"` deselects only after collection, so one import error would
# stop the whole run. It is not collected there at all.
collect_ignore = ["interop"] if sys.platform == "win32" else []


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    log: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr + self.log


RunSmail = Callable[..., Result]


@pytest.fixture
def run_smail(tmp_path: Path) -> RunSmail:
    """Run main() with the given options; a DEBUG log in tmp_path unless /LOG is given."""
    counter = iter(range(1000))

    def run(*args: str, env: dict[str, str] | None = None, log: bool = True) -> Result:
        argv = list(args)
        log_path = tmp_path / f"smail-{next(counter)}.log"
        if log and not any(a.upper().startswith(("/LOG=", "/LOG_FILE=")) for a in argv):
            argv.append(f"/LOG={log_path}")
            if not any(a.upper().startswith("/LOG_LEVEL=") for a in argv):
                argv.append("/LOG_LEVEL=DEBUG")
        if not any(a.upper().startswith("/TIMEOUT=") for a in argv):
            argv.append("/TIMEOUT=10")  # a test that hangs fails fast instead
        environ = {"LANG": "en_US.UTF-8"} if env is None else env
        stdout, stderr = io.StringIO(), io.StringIO()
        code = main(argv, environ, stdout, stderr)
        text = log_path.read_text(encoding="utf-8") if log_path.exists() else ""
        return Result(code, stdout.getvalue(), stderr.getvalue(), text)
    return run


@pytest.fixture
def files(tmp_path: Path) -> Callable[..., Path]:
    """Write a file under tmp_path: files("a.txt", "text") or files("b.bin", b"bytes")."""
    def write(name: str, content: str | bytes = "") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path
    return write


@dataclass
class CA:
    ca: trustme.CA
    pem: Path
    server_cert: trustme.LeafCert

    def server_context(self, *, minimum: ssl.TLSVersion | None = None,
                       maximum: ssl.TLSVersion | None = None,
                       cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        (cert or self.server_cert).configure_cert(context)
        if minimum:
            context.minimum_version = minimum
        if maximum:
            context.maximum_version = maximum
        return context


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    ca = trustme.CA()
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    return CA(ca, pem, ca.issue_cert("127.0.0.1", "localhost"))


@pytest.fixture
def start_microsoft(tls_ca: CA) -> Iterator[Callable[..., FakeMicrosoft]]:
    """Start the HTTPS fake of the identity platform and Graph with the application app-id-1:
    start_microsoft(secret=..., mailboxes={...}); stopped after the test."""
    started: list[FakeMicrosoft] = []

    def start(*, secret: str, mailboxes: set[str]) -> FakeMicrosoft:
        fake = FakeMicrosoft(tls_ca.server_context()).start()
        started.append(fake)
        fake.register(App("app-id-1", secret=secret, mailboxes=mailboxes))
        return fake
    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def smtpd() -> Iterator[Callable[..., SMTPServer]]:
    """Start aiosmtpd servers: smtpd(handler=..., tls_context=..., implicit_tls=...)."""
    started: list[SMTPServer] = []

    def start(handler: RecordingHandler | None = None, **options: Any) -> SMTPServer:
        server = SMTPServer(handler or RecordingHandler(), **options)
        server.start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: Callable[..., None]) -> ScriptedServer:
        server = ScriptedServer(script)
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """S/MIME certificates: alice@demo.test signs; bob and carol receive; unfit ones."""
    from types import SimpleNamespace

    from tests.smime_certs import Authority

    ca = Authority(tmp_path_factory.mktemp("smime"))
    return SimpleNamespace(
        ca=ca, alice=ca.issue("alice", "alice@demo.test"), bob=ca.issue("bob", "bob@test.test"),
        carol=ca.issue("carol", "carol@test.test", in_subject=True),
        other=ca.issue("other", "someone.else@demo.test"),
        expired=ca.issue("expired", "alice@demo.test", expired=True),
        no_eku=ca.issue("noeku", "alice@demo.test", email_protection=False))
