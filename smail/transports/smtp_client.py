"""The smtplib client SMail drives, and everything it relies on inside smtplib, in one place.

smtplib (CPython 3.11 Lib/smtplib.py) connects, says EHLO and starts TLS; SMail sends the
transaction itself. Four things below depend on smtplib's internals, each for a reason:

- `getreply()` is overridden: smtplib reads a reply through a file object with a timeout per
  read, so a server trickling a reply byte by byte could hold a run forever; SMail's reader
  gives the whole reply /TIMEOUT, reading the socket itself.
- `smtplib._MAXLINE` (8192): the longest reply line smtplib accepts; SMail's reader refuses
  longer lines the same way (500 "Line too long.").
- `_host`: smtplib sets it only when its constructor connects, and starttls() and SMTP_SSL use
  it as the TLS server name (SNI, certificate check). SMail connects later, so it sets it.
- `send()` is wrapped for the DEBUG transcript, with AUTH lines masked.
- `_get_socket()` (what `connect()` calls for the TCP connection, and SMTP_SSL's override
  wraps in TLS) is replaced: the socket comes from SMail's opener (every address in turn,
  /IP, or a tunnel through /PROXY), then SMTP_SSL's TLS is applied for the mail server's name.

A reply is bounded as a whole too (REPLY_LIMIT): smtplib keeps every line of a multi-line reply,
so a server sending continuation lines without end would fill the memory until /TIMEOUT.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

from smail import redact, sasl
from smail.hosts import ascii_name
from smail.transports.smtp_replies import AUTH_CHALLENGE, AUTH_SUCCEEDED, BAD_SEQUENCE

transcript = logging.getLogger("smail.smtp")

REPLY_LIMIT = 1024 * 1024  # bytes of one reply, all its lines together


Opener = Callable[[str, int, float], socket.socket]


class Transcript:
    """Logs the dialogue at DEBUG; AUTH lines are masked by structure (never by value)."""

    masking_auth = False
    _host: str  # set by smtplib; SMail sets it too, see new_client()
    opener: Opener | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        """The TCP connection from the opener; TLS at once for implicit TLS (SMTP_SSL)."""
        client: Any = self
        if self.opener is None:
            return super()._get_socket(host, port, timeout)  # type: ignore[misc,no-any-return]
        sock = self.opener(host, port, timeout)
        if isinstance(client, smtplib.SMTP_SSL):
            try:
                return client.context.wrap_socket(sock, server_hostname=self._host)
            except BaseException:
                sock.close()
                raise
        return sock

    def send(self, s: Any) -> None:
        if transcript.isEnabledFor(logging.DEBUG):
            text = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
            for line in text.rstrip("\r\n").split("\r\n"):
                if self.masking_auth:
                    shown = redact.mask_auth_command(line) if line.upper().startswith("AUTH") \
                        else redact.MASK
                else:
                    shown = line
                transcript.debug("C: %s", shown)
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        """smtplib's reply reader, with /TIMEOUT for the whole reply: a server that trickles
        a reply, line by line or byte by byte, cannot hold SMail beyond it. Lines are read
        from the socket itself, each recv() given only the time left."""
        client: Any = self
        timeout = client.timeout if isinstance(client.timeout, (int, float)) else None
        deadline = time.monotonic() + timeout if timeout is not None else None
        lines: list[bytes] = []
        code = -1
        size = 0
        try:
            while True:
                line = self._read_line(client, deadline)
                if not line:
                    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
                if len(line) > smtplib._MAXLINE:  # type: ignore[attr-defined]
                    raise smtplib.SMTPResponseException(500, b"Line too long.")
                size += len(line)
                if size > REPLY_LIMIT:
                    raise smtplib.SMTPResponseException(500, b"Reply too long.")
                lines.append(line[4:].strip(b" \t\r\n"))
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                    break
                if line[3:4] != b"-":
                    break
        except BaseException:
            client.close()
            raise
        finally:
            if client.sock is not None:
                client.sock.settimeout(timeout)
        message = b"\n".join(lines)
        if transcript.isEnabledFor(logging.DEBUG):
            for index, text in enumerate(lines):
                transcript.debug("S: %s%s%s", code, "-" if index < len(lines) - 1 else " ",
                                 text.decode("utf-8", "replace"))
        return code, message


    _buffer = b""
    _buffer_sock: Any = None

    def _read_line(self, client: Any, deadline: float | None) -> bytes:
        """One line, or what came before the connection closed; TimeoutError past `deadline`."""
        sock = client.sock
        if sock is None:
            return b""
        if self._buffer_sock is not sock:  # a new connection, or TLS just started (RFC 3207 4.2)
            self._buffer, self._buffer_sock = b"", sock
        while b"\n" not in self._buffer and len(self._buffer) <= smtplib._MAXLINE:  # type: ignore[attr-defined]
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the reply did not end in time")
                sock.settimeout(left)
            chunk = sock.recv(8192)
            if not chunk:
                break
            self._buffer += chunk
        line, newline, self._buffer = self._buffer.partition(b"\n")
        return line + newline


class _SMTP(Transcript, smtplib.SMTP):
    pass


class _SMTPS(Transcript, smtplib.SMTP_SSL):
    pass


def new_client(server: str, *, timeout: float, context: ssl.SSLContext | None,
               opener: Opener | None = None) -> smtplib.SMTP:
    """An unconnected client for `server`: implicit TLS when a context is given; its TCP
    connection comes from `opener` when one is given."""
    client: smtplib.SMTP
    # A placeholder name: smtplib would otherwise look up this computer's FQDN here.
    if context is not None:
        client = _SMTPS(local_hostname="localhost", timeout=timeout, context=context)
    else:
        client = _SMTP(local_hostname="localhost", timeout=timeout)
    client._host = server  # see the module's docstring
    if opener is not None:
        assert isinstance(client, Transcript)
        client.opener = opener
    return client


def text_of(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply).replace("\n", " ")


def read_reply(client: smtplib.SMTP) -> tuple[int, str]:
    code, text = client.getreply()
    return code, text_of(text)


def ehlo_name(local_address: str | None, *, fqdn: Callable[[], str] = socket.getfqdn) -> str:
    """The EHLO name: this computer's fully qualified name (in IDNA), else the address literal
    of the connection's local address (RFC 5321 section 4.1.3), never a bare short name."""
    name = fqdn()
    if "." in name.strip("."):
        try:
            return ascii_name(name)
        except ValueError:
            pass
    try:
        address = ipaddress.ip_address((local_address or "127.0.0.1").split("%")[0])
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1")
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"


def local_address(client: smtplib.SMTP) -> str | None:
    try:
        assert client.sock is not None
        return str(client.sock.getsockname()[0])
    except (OSError, AssertionError):
        return None


def is_loopback(client: smtplib.SMTP) -> bool:
    try:
        assert client.sock is not None
        return ipaddress.ip_address(client.sock.getpeername()[0]).is_loopback
    except (OSError, ValueError, AssertionError):
        return False


def close_quietly(client: Any) -> None:
    try:
        client.close()
    except Exception:  # closing a broken connection must not hide the real error
        pass


def coalesce(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Group small chunks into writes of about `size` bytes (fewer packets, no stalls)."""
    pending: list[bytes] = []
    length = 0
    for chunk in chunks:
        pending.append(chunk)
        length += len(chunk)
        if length >= size:
            yield b"".join(pending)
            pending, length = [], 0
    if pending:
        yield b"".join(pending)


def sasl_exchange(client: smtplib.SMTP, mechanism: str, responder: sasl.Responder) -> None:
    """RFC 4954 exchange with UTF-8 credentials (smtplib.auth() only sends ASCII); the
    transcript masks every line of it. smtplib.SMTPAuthenticationError when refused."""
    def b64(data: bytes) -> str:
        # The encoded answer carries the password or token as it is: a server that echoes
        # it in its reply ("535 ... invalid: AHVzZXI...") must not carry it into the
        # error line, the log or the result file.
        encoded = base64.b64encode(data).decode("ascii")
        redact.remember(encoded)
        return encoded
    initial = responder(None)
    assert isinstance(client, Transcript)
    client.masking_auth = True
    try:
        command = f"AUTH {mechanism}" + (f" {b64(initial)}" if initial is not None else "")
        code, reply = client.docmd(command)
        for _round in range(5):
            if code != AUTH_CHALLENGE:
                break
            try:
                challenge = base64.b64decode(reply, validate=False)
            except ValueError:
                challenge = reply
            code, reply = client.docmd(b64(responder(challenge) or b""))
    finally:
        client.masking_auth = False
    if code not in (AUTH_SUCCEEDED, BAD_SEQUENCE):
        raise smtplib.SMTPAuthenticationError(code, reply)
