"""Proxies on 127.0.0.1 for the tests: HTTP CONNECT (Basic auth) and SOCKS5 (RFC 1928, user and
password RFC 1929), each recording what it relayed, plus one that accepts and then stalls."""

from __future__ import annotations

import base64
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class Recorded:
    targets: list[str] = field(default_factory=list)      # host:port asked for, as the client wrote it
    upstream: bytearray = field(default_factory=bytearray)  # client -> server bytes after the handshake
    downstream: bytearray = field(default_factory=bytearray)
    requests: list[bytes] = field(default_factory=list)   # raw CONNECT heads / SOCKS greetings


class _Proxy:
    """A threaded TCP proxy; subclasses implement handshake() -> (host, port) or None."""

    def __init__(self, *, user: str | None = None, password: str | None = None,
                 resolve: dict[str, str] | None = None, family: int = socket.AF_INET) -> None:
        self.user, self.password = user, password
        self.resolve = resolve or {}
        self.record = Recorded()
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self.closed = threading.Event()
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def url(self, scheme: str, *, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}{':' + password if password is not None else ''}@" if user is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            target = self.handshake(client)
            if target is None:
                return
            host, port = target
            self.record.targets.append(f"{host}:{port}")
            try:
                upstream = socket.create_connection((self.resolve.get(host, host), port), timeout=10)
            except OSError:
                self.refuse_upstream(client)
                return
            self.sockets.append(upstream)
            self.accepted(client)
            upstream.settimeout(30)
            pump = threading.Thread(target=self._pump, args=(upstream, client, self.record.downstream), daemon=True)
            pump.start()
            self._pump(client, upstream, self.record.upstream)
            pump.join(30)
        except OSError:
            pass
        finally:
            client.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                record.extend(data)
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def handshake(self, client: socket.socket) -> tuple[str, int] | None:
        raise NotImplementedError

    def accepted(self, client: socket.socket) -> None:
        raise NotImplementedError

    def refuse_upstream(self, client: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        for thread in self.threads:
            thread.join(5)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


class HTTPConnectProxy(_Proxy):
    """CONNECT host:port HTTP/1.1, with Proxy-Authorization: Basic when a user is set."""

    def handshake(self, client: socket.socket) -> tuple[str, int] | None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(1)
            if not chunk:
                return None
            head += chunk
        self.record.requests.append(head)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _s, v in (line.partition(":") for line in lines[1:] if line)}
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return None
        if self.user is not None:
            expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if headers.get("proxy-authorization") != expected:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                return None
        host, _colon, port = target.rpartition(":")
        return host.strip("[]"), int(port)

    def accepted(self, client: socket.socket) -> None:
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def refuse_upstream(self, client: socket.socket) -> None:
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


class SOCKS5Proxy(_Proxy):
    """SOCKS5 CONNECT by name (ATYP 3) or address; user/password when a user is set."""

    def handshake(self, client: socket.socket) -> tuple[str, int] | None:
        version, count = _read_exactly(client, 2)
        methods = _read_exactly(client, count)
        self.record.requests.append(bytes([version, count]) + methods)
        wanted = 2 if self.user is not None else 0
        if version != 5 or wanted not in methods:
            client.sendall(b"\x05\xff")
            return None
        client.sendall(bytes([5, wanted]))
        if wanted == 2:
            _v, ulen = _read_exactly(client, 2)
            user = _read_exactly(client, ulen).decode()
            (plen,) = _read_exactly(client, 1)
            password = _read_exactly(client, plen).decode()
            if (user, password) != (self.user, self.password):
                client.sendall(b"\x01\x01")
                return None
            client.sendall(b"\x01\x00")
        _v, command, _rsv, atyp = _read_exactly(client, 4)
        if atyp == 3:
            (length,) = _read_exactly(client, 1)
            host = _read_exactly(client, length).decode()
            self.record.requests.append(b"name:" + host.encode())
        elif atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, _read_exactly(client, 4))
        else:
            host = socket.inet_ntop(socket.AF_INET6, _read_exactly(client, 16))
        (port,) = struct.unpack("!H", _read_exactly(client, 2))
        if command != 1:
            client.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return None
        return host, port

    def accepted(self, client: socket.socket) -> None:
        client.sendall(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")

    def refuse_upstream(self, client: socket.socket) -> None:
        client.sendall(b"\x05\x05\x00\x01" + bytes(6))  # connection refused


class StallingProxy(_Proxy):
    """Accepts the connection, reads what comes, and never answers."""

    def handshake(self, client: socket.socket) -> tuple[str, int] | None:
        try:
            while not self.closed.wait(0.05):
                try:
                    client.settimeout(0.05)
                    if client.recv(1024) == b"":
                        return None
                except TimeoutError:
                    continue
        except OSError:
            pass
        return None
