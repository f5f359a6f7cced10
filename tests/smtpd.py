"""Real SMTP servers on 127.0.0.1 for the tests: aiosmtpd with a recording handler, and a
scripted raw server for the misbehaving cases aiosmtpd cannot produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    rcpt_options: list[str]


@dataclass
class RecordingHandler:
    """Keeps every accepted message; optional scripted refusals."""

    received: list[Received] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)   # consumed one per RCPT
    data_reply: str | None = None
    dsn: bool = False
    passwords: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)     # user -> XOAUTH2 token
    xoauth2_challenge: bool = False
    logins: list[str] = field(default_factory=list)
    helo_names: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.helo_names.append(hostname)
        session.host_name = hostname
        if self.dsn:
            responses.insert(-1, "250-DSN")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_replies:
            reply = self.rcpt_replies.pop(0)
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content),
                                      list(envelope.mail_options), list(envelope.rcpt_options)))
        return "250 2.0.0 Ok: queued as 4F2A1"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append(f"{mechanism} {user}")
            return AuthResult(success=self.passwords.get(user) == password, handled=False)
        return AuthResult(success=False)

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        challenge = b"<1896.697170952@smail.test>"
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=False)
        user, _sp, digest = response.decode().partition(" ")
        password = self.passwords.get(user, "")
        expected = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest()
        self.logins.append(f"CRAM-MD5 {user}")
        return AuthResult(success=hmac.compare_digest(expected, digest), handled=False)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth(b"", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=False)
            blob = answer
        fields = blob.decode().split("\x01")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ") if len(fields) > 1 else ""
        self.logins.append(f"XOAUTH2 {user}")
        ok = blob.endswith(b"\x01\x01") and self.tokens.get(user) == token
        if not ok and self.xoauth2_challenge:
            reason = json.dumps({"status": "401", "schemes": "bearer",
                                 "scope": "https://mail.google.com/"}).encode()
            empty = await server.challenge_auth(reason)
            if empty != b"":
                return AuthResult(success=False, handled=False, message="501 5.5.2 expected an empty response")
        return AuthResult(success=ok, handled=False)


class DSNServer(SMTP):
    """aiosmtpd does not know DSN (RFC 3461): accept and record NOTIFY/RET/ENVID/ORCPT."""

    async def smtp_MAIL(self, arg: str | None) -> None:
        await super().smtp_MAIL(_strip_params(arg, ("RET", "ENVID")))
        if arg and self.envelope is not None:
            self.envelope.mail_options.extend(_dsn_params(arg, ("RET", "ENVID")))

    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(_strip_params(arg, ("NOTIFY", "ORCPT")))
        if arg and self.envelope is not None:
            self.envelope.rcpt_options.extend(_dsn_params(arg, ("NOTIFY", "ORCPT")))


def _dsn_params(arg: str, names: tuple[str, ...]) -> list[str]:
    return [word.upper() for word in arg.split() if word.upper().split("=")[0] in names]


def _strip_params(arg: str | None, names: tuple[str, ...]) -> str | None:
    if arg is None:
        return None
    return " ".join(w for w in arg.split() if w.upper().split("=")[0] not in names)


class SMTPServer(Controller):
    """aiosmtpd on 127.0.0.1:<free port> with the recording handler."""

    def __init__(self, handler: RecordingHandler, *, implicit_tls: ssl.SSLContext | None = None,
                 **smtp_options: Any) -> None:
        self.port_number = free_port()
        smtp_options.setdefault("authenticator", handler.authenticate)
        smtp_options.setdefault("auth_require_tls", False)
        super().__init__(handler, hostname="127.0.0.1", port=self.port_number,
                         ssl_context=implicit_tls, server_hostname="smail.test", **smtp_options)

    def factory(self) -> SMTP:
        return DSNServer(self.handler, **self.SMTP_kwargs)

    @property
    def options(self) -> list[str]:
        return ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={self.port_number}"]


class ScriptedServer:
    """A raw TCP server acting out one misbehaviour per connection (421 greeting, silence,
    a connection dropped during DATA...). `script(conn)` talks to each client."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                try:
                    self.script(conn)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.listener.close()

    @property
    def options(self) -> list[str]:
        return ["/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={self.port}"]


def read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
    return data


def read_message(conn: socket.socket) -> bytes | None:
    """The DATA of one message, up to and including the final dot; None if the line dropped."""
    data = b""
    while not data.endswith(b"\r\n.\r\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def talk(conn: socket.socket, replies: dict[str, str], *, stop_after: str | None = None,
         drop_during_data: bool = False, sink: list[bytes] | None = None) -> None:
    """A minimal SMTP dialogue: reply by command verb; optionally drop the line mid-DATA."""
    while True:
        line = read_line(conn)
        if not line:
            return
        if sink is not None:
            sink.append(line)
        verb = line.split(b" ", 1)[0].strip().upper().decode(errors="replace")
        if verb == "DATA":
            conn.sendall(b"354 go ahead\r\n")
            if drop_during_data:
                conn.recv(100)
                conn.shutdown(socket.SHUT_RDWR)
                return
            if read_message(conn) is None:
                return
            conn.sendall((replies.get("END", "250 OK") + "\r\n").encode())
            continue
        reply = replies.get(verb, "250 OK")
        conn.sendall((reply + "\r\n").encode())
        if verb == "QUIT" or verb == stop_after:
            return
