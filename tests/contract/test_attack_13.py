"""Hostile proxies, identity endpoints and certificates lists against the promises: never a
hang beyond /TIMEOUT, never a secret shown, never exit 7 from input, never a message sent in
clear when encryption was asked for."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading

import pytest

from smail.errors import ExitCode
from tests.proxies import HTTPConnectProxy, SOCKS5Proxy
from tests.smtpd import RecordingHandler

SEND = ("/FROM_ADDR=a@t.test", "/TO=b@t.test", "/BODY=hi")


def _no_crash(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


# -- proxies ---------------------------------------------------------------------------------------

@pytest.fixture
def proxies():
    started: list[HTTPConnectProxy | SOCKS5Proxy] = []

    def start(kind: type[HTTPConnectProxy] | type[SOCKS5Proxy], **options: str) -> HTTPConnectProxy | SOCKS5Proxy:
        proxy = kind(**options)
        started.append(proxy)
        return proxy
    yield start
    for proxy in started:
        proxy.close()


@pytest.mark.parametrize("password", ["Pa/ss\\\"'%é", "P@ss#1/é", "Secr3t%2F'\""])
@pytest.mark.parametrize("template", ["http://user:{password}@proxy.test:bad", "user:{password}@proxy.test:bad",
                                      "socks5://user:{password}@[::1"])
def test_a_malformed_proxy_url_never_shows_its_password(run_smail, tmp_path, template, password):
    """A password holding `/`, `@` or `#`, or a URL without its scheme, used to be shown whole
    (or in part) in the exit 2 message naming the malformed value."""
    result_file, error_file = tmp_path / "result.json", tmp_path / "error.txt"
    url = template.format(password=password)
    for env, args in ((None, (f"/PROXY={url}",)), ({"LANG": "en_US.UTF-8", "HTTPS_PROXY": url}, ())):
        result = run_smail("/SMTP_SERVER=127.0.0.1", *SEND, *args, f"/RESULT_FILE={result_file}",
                           f"/ERROR_FILE={error_file}", env=env)
        assert result.exit_code == ExitCode.PARAM, result.output
        outputs = result.output + error_file.read_text(encoding="utf-8") + result_file.read_text(encoding="utf-8")
        _no_crash(outputs)
        for piece in {password, *password.replace("@", "/").split("/")} - {""}:
            if len(piece) >= 3:
                assert piece not in outputs, (piece, outputs)
        assert "proxy" in result.stderr.lower()


@pytest.mark.parametrize("user, password", [("usér", "pass"), ("user", "pässwörd"), ("u" * 300, "pass"),
                                            ("user", "p" * 300)])
def test_a_socks5_credential_that_cannot_be_sent_is_exit_2_before_connecting(run_smail, proxies, tmp_path,
                                                                           user, password):
    """python-socks writes RFC 1929 credentials in ASCII, 255 bytes at most: a non-ASCII one was
    reported as "the server name could not be resolved" (exit 3), a long one was exit 7."""
    proxy = proxies(SOCKS5Proxy, user=user, password=password)
    error_file = tmp_path / "error.txt"
    for lang, expected in (("EN", "SOCKS5"), ("FR", "SOCKS5")):
        result = run_smail("/SMTP_SERVER=127.0.0.1", *SEND, f"/PROXY=socks5://{user}@127.0.0.1:{proxy.port}",
                           f"/PROXY_PASSWORD={password}", f"/ERROR_FILE={error_file}", f"/LANG={lang}")
        assert result.exit_code == ExitCode.PARAM, result.output
        _no_crash(result.output)
        assert expected in result.stderr and "ASCII" in result.stderr
        assert password not in result.output + error_file.read_text(encoding="utf-8")
    assert proxy.record.requests == []  # nothing reached the proxy


def _socks5_answering(reply: bytes):
    """A SOCKS5 proxy that takes the greeting and the request, then answers `reply`."""
    def script(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(b"\x05\x00")
        conn.recv(512)
        conn.sendall(reply)
        conn.recv(64)
    return script


@pytest.mark.parametrize("reply", [
    b"\x05\x00\x00\x03\x02\xff\xfe\x00\x19",   # success, bound to a name that is not UTF-8
    b"\x05\x00\x00\x03\x03\xc3\x28\xa0\x00\x19",
])
def test_a_socks5_reply_python_socks_cannot_read_is_a_proxy_failure(scripted, run_smail, reply):
    server = scripted(_socks5_answering(reply))
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SEND, f"/PROXY=socks5://127.0.0.1:{server.port}")
    assert result.exit_code == ExitCode.CONNECT, result.output
    _no_crash(result.output)
    assert "something other than SOCKS5" in result.stderr
    assert "could not be resolved" not in result.stderr


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_a_proxy_asking_for_credentials_says_how_to_give_them(run_smail, proxies, scheme):
    """The hint "a password: /PROXY=..." was itself masked as if it were a password."""
    proxy = proxies(HTTPConnectProxy if scheme == "http" else SOCKS5Proxy, user="svc", password="pw")
    result = run_smail("/SMTP_SERVER=127.0.0.1", *SEND, f"/PROXY={scheme}://127.0.0.1:{proxy.port}")
    assert result.exit_code == ExitCode.CONNECT, result.output
    assert f"/PROXY={scheme}://user@host:port" in result.stderr
    assert "****" not in result.stderr


# -- identity endpoints that never finish their answer --------------------------------------------

class _EndlessAnswer:
    """An HTTP endpoint whose answer never ends: its head, then a byte at a time (`trickle`),
    or as fast as the network goes (`flood`), until the test is over (a trickle stops after a
    minute, so that a run that does not stop at its /TIMEOUT fails instead of hanging)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.done = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _address = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                if self.how == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 100000000\r\n\r\n{")
                    for _tick in range(300):  # a minute at most, then the answer is cut short
                        if self.done.wait(0.2):
                            break
                        conn.sendall(b" ")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
                    block = b"1," * 65536
                    while not self.done.is_set():
                        conn.sendall(block)
            except OSError:
                pass

    def close(self) -> None:
        self.done.set()
        self.listener.close()


@pytest.mark.parametrize("how, expected", [("trickle", "did not answer in time"), ("flood", "longer than 64 MB")])
def test_an_identity_endpoint_whose_answer_never_ends_is_exit_3_within_the_timeout(run_smail, monkeypatch, tmp_path,
                                                                                  how, expected):
    """requests times each read only: an answer trickled a byte at a time held the run for ever
    (and one without end filled the memory), whatever /TIMEOUT said."""
    endpoint = _EndlessAnswer(how)
    try:
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", f"http://127.0.0.1:{endpoint.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        result_file = tmp_path / "result.json"
        result = run_smail("/MODE=GRAPH", "/O365_AUTH=MANAGED_IDENTITY", "/GRAPH_SENDER=erp@contoso.test",
                           "/TO=b@t.test", "/BODY=hi", "/TIMEOUT=2", f"/RESULT_FILE={result_file}")
    finally:
        endpoint.close()
    assert result.exit_code == ExitCode.CONNECT, result.output
    _no_crash(result.output)
    assert expected in result.stderr
    assert json.loads(result_file.read_text(encoding="utf-8"))["exit_code"] == ExitCode.CONNECT


# -- S/MIME: a list of certificates that lists none -----------------------------------------------

def test_a_batch_encrypt_to_cell_naming_no_file_is_refused_not_sent_in_clear(run_smail, smtpd, pki, tmp_path):
    """A cell holding only `;` (or `,`) used to replace the command line's /ENCRYPT_TO with
    nothing: the row went out unencrypted while the others were encrypted."""
    server = smtpd(RecordingHandler())
    rows = tmp_path / "rows.csv"
    rows.write_text(f"TO,ENCRYPT_TO\n{pki.bob.address},{pki.bob.pem}\n{pki.bob.address},;\n", encoding="utf-8")
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", "/BODY=Bulletin", f"/BATCH={rows}",
                       f"/ENCRYPT_TO={pki.bob.pem}", "/ENCRYPT_NO_SELF")
    assert result.exit_code == ExitCode.PARAM, result.output
    assert "Row 3, column ENCRYPT_TO" in result.stderr
    assert server.handler.received == []


@pytest.mark.parametrize("value", [";", ",", " , ; "])
def test_encrypt_to_naming_no_file_is_refused_not_sent_in_clear(run_smail, smtpd, pki, value):
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}", "/BODY=Bulletin",
                       f"/ENCRYPT_TO={value}")
    assert result.exit_code == ExitCode.PARAM, result.output
    assert "/ENCRYPT_TO names no certificate" in result.stderr
    assert server.handler.received == []


def test_encrypt_to_left_empty_still_means_not_encrypted(run_smail, smtpd, pki):
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, f"/FROM_ADDR={pki.alice.address}", f"/TO={pki.bob.address}", "/BODY=hi",
                       "/ENCRYPT_TO=")
    assert result.exit_code == ExitCode.OK, result.output
    assert len(server.handler.received) == 1


# -- HTML bodies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("html", ["<p>Bonjour<![ x [ y</p>", "<![ ", "<![if !mso]>a<![endif]><![ z"])
def test_an_html_body_with_a_broken_marked_section_is_sent_with_its_text_part(run_smail, smtpd, tmp_path, html):
    """`<![` followed by no name made html.parser raise while SMail wrote the plain-text
    alternative: exit 7, nothing sent. The odd markup is kept as text."""
    handler = RecordingHandler()
    server = smtpd(handler)
    body = tmp_path / "Msg.html"
    body.write_text(html, encoding="utf-8")
    result = run_smail(*server.options, "/FROM_ADDR=a@t.test", "/TO=b@t.test", f"/BODY_FILE={body}")
    assert result.exit_code == ExitCode.OK, result.output
    _no_crash(result.output)
    [received] = handler.received


    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message.get_body(("html",)).get_content().rstrip("\r\n") == html
    assert message.get_body(("plain",)) is not None
