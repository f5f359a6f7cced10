"""The proxy SMTP goes through, and the tunnel to the mail server across it.

Which proxy: /PROXY=http://...|socks5://... or /PROXY=NONE, else the variables requests reads
for an https:// address (HTTPS_PROXY, then ALL_PROXY; lower case first) unless NO_PROXY names
the server. The tunnel: HTTP CONNECT (RFC 9110 section 9.3.6, Basic authentication, RFC 7617)
written here with small bounded reads, or SOCKS5 (RFC 1928, user/password RFC 1929) through
python-socks; the mail server's name is always resolved by the proxy. TLS (STARTTLS or
implicit) then runs end to end inside the tunnel, verified for the mail server's name.
Failures are ProxyError (exit 3) with what the proxy answered; the credentials never appear
in a message, since a proxy is shown as scheme://host:port only.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Final
from urllib.parse import unquote, urlsplit

from smail.errors import ProxyError
from smail.i18n import _
from smail.redact import Secret


class ProxyKind(Enum):
    HTTP = "http"
    SOCKS5 = "socks5"


class ProxyOff(Enum):
    """/PROXY=NONE: no proxy, whatever the environment says."""

    NONE = "NONE"


_SCHEMES: Final = {"http": ProxyKind.HTTP, "socks5": ProxyKind.SOCKS5, "socks5h": ProxyKind.SOCKS5}
_DEFAULT_PORTS: Final = {ProxyKind.HTTP: 80, ProxyKind.SOCKS5: 1080}  # urllib3's, and RFC 1928's
# The environment variables requests reads for an https:// address, in its order of preference.
ENVIRONMENT_NAMES: Final = ("https_proxy", "all_proxy", "no_proxy")
# The longest CONNECT answer (status line and headers) SMail reads before giving up.
MAX_ANSWER: Final = 16 * 1024


@dataclass(frozen=True, kw_only=True)
class Proxy:
    kind: ProxyKind
    host: str
    port: int
    username: str | None = None
    password: Secret | None = None

    def __str__(self) -> str:
        """scheme://host:port: never the credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind.value}://{host}:{self.port}"

    def with_password(self, password: Secret) -> Proxy:
        return replace(self, password=password)

    def url(self) -> str:
        """The URL with its credentials, for requests (Graph mode); to be kept out of output."""
        from urllib.parse import quote

        if self.username is None:
            return str(self)
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.reveal(), safe="")
        return str(self).replace("://", f"://{userinfo}@", 1)


def password_in(value: str) -> str | None:
    """The password of a proxy URL as given, to be registered as a secret before anything fails."""
    text = value.strip()
    try:
        password = urlsplit(text if "://" in text else f"http://{text}").password
    except ValueError:
        return None
    return unquote(password) if password else None


def parse(value: str) -> Proxy:
    """http://[user[:password]@]host[:port] or socks5://...; ValueError saying what is wrong
    (a text without the credentials)."""
    text = value.strip()
    if "://" not in text:  # `proxy.corp:8080`, as requests and curl read it
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ValueError(_("expected http://host:port or socks5://host:port")) from None
    if scheme == "https":
        raise ValueError(_("a proxy reached over TLS (https://) is not supported: give http://host:port (the connection to the mail server is still encrypted end to end)"))
    if scheme not in _SCHEMES or not host or parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(_("expected http://host:port or socks5://host:port"))
    kind = _SCHEMES[scheme]
    from smail import hosts

    try:
        host = hosts.server_name(host)
    except ValueError:
        raise ValueError(_("expected http://host:port or socks5://host:port")) from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return Proxy(kind=kind, host=host, port=port or _DEFAULT_PORTS[kind], username=username,
                 password=Secret(password) if password else None)


def check_credentials(found: Proxy) -> Proxy:
    """`found`, or ValueError when it is a SOCKS5 proxy whose user name or password cannot be
    sent: RFC 1929 gives each at most 255 bytes, and python-socks writes them in ASCII."""
    if found.kind is ProxyKind.SOCKS5:
        for value in (found.username, found.password.reveal() if found.password else None):
            if value is not None and (not value.isascii() or len(value) > 255):
                raise ValueError(_("The user name and the password of the SOCKS5 proxy {proxy} must be ASCII characters, at most 255 each.").format(
                    proxy=found))
    return found


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables as requests reads them (urllib's getproxies_environment): any case,
    the lower-case name winning, an empty lower-case one removing the variable."""
    found: dict[str, str] = {}
    for name, value in environ.items():
        if name.lower() in ENVIRONMENT_NAMES and value:
            found[name.lower()] = value
    for name, value in environ.items():
        if name in ENVIRONMENT_NAMES:
            if value:
                found[name] = value
            else:
                found.pop(name, None)
    return found


def bypassed(no_proxy: str, host: str, port: int) -> bool:
    """Whether NO_PROXY names `host`, as requests decides it (should_bypass_proxies, then
    urllib's proxy_bypass_environment): `*`; an address in a CIDR block or equal to an entry;
    a name equal to an entry or ending with it (`.example.com` and `example.com` alike),
    with or without `:port`."""
    entries = [entry.strip().lower() for entry in no_proxy.replace(" ", "").split(",") if entry.strip()]
    host = host.lower().strip("[]")
    if "*" in entries:
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    with_port = f"{host}:{port}"
    for entry in entries:
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        bare = entry.strip("[]").lstrip(".")
        if host == bare or with_port == entry or host.endswith(entry) or with_port.endswith(entry) \
                or host.endswith("." + bare):
            return True
    return False


def from_environment(environ: Mapping[str, str], host: str, port: int) -> str | None:
    """The proxy URL requests would use for https://host:port, or None (none, or NO_PROXY)."""
    variables = environment(environ)
    url = variables.get("https_proxy") or variables.get("all_proxy")
    if not url or bypassed(variables.get("no_proxy", ""), host, port):
        return None
    return url


# -- the tunnel ---------------------------------------------------------------------------------

Connector = Callable[[str, int, float], socket.socket]


def open_tunnel(proxy: Proxy, host: str, port: int, *, timeout: float,
                connect: Connector) -> socket.socket:
    """A socket connected to host:port through `proxy`, within `timeout` seconds in all;
    ProxyError (exit 3) with the proxy's answer otherwise."""
    if proxy.kind is ProxyKind.HTTP:
        return _http_tunnel(proxy, host, port, timeout=timeout, connect=connect)
    return _socks5_tunnel(proxy, host, port, timeout=timeout)


def _target(host: str, port: int) -> str:
    from smail.hosts import with_port

    return with_port(host, port)


def connect_request(proxy: Proxy, host: str, port: int, *, user_agent: str) -> bytes:
    """The CONNECT request for host:port, with Basic credentials when the proxy has a user."""
    target = _target(host, port)
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: {user_agent}"]
    if proxy.username is not None:
        credentials = f"{proxy.username}:{proxy.password.reveal() if proxy.password else ''}"
        lines.append("Proxy-Authorization: Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_answer(head: bytes) -> tuple[int, str]:
    """(status, "407 Proxy Authentication Required") of an HTTP answer's head; (0, text) when
    it is not HTTP."""
    line = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1").strip()
    words = line.split(" ", 2)
    if len(words) >= 2 and words[0].startswith("HTTP/") and words[1].isascii() and words[1].isdigit() \
            and len(words[1]) == 3:
        return int(words[1]), " ".join(words[1:])
    return 0, line[:200]


def _read_head(sock: socket.socket, deadline: float) -> bytes:
    """The answer up to its blank line, one byte at a time: what follows it is the mail
    server's (its greeting may come in the same packet) and must stay in the socket."""
    head = bytearray()
    while not head.endswith(b"\r\n\r\n") and not head.endswith(b"\n\n"):
        if len(head) >= MAX_ANSWER:
            raise ValueError("the answer is too long")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return bytes(head)


def _http_tunnel(proxy: Proxy, host: str, port: int, *, timeout: float, connect: Connector) -> socket.socket:
    from smail import __version__

    deadline = time.monotonic() + timeout
    where = _target(host, port)
    sock = _connect_to_proxy(proxy, timeout, connect)
    try:
        try:
            sock.sendall(connect_request(proxy, host, port, user_agent=f"SMail/{__version__}"))
            head = _read_head(sock, deadline)
        except ValueError:
            raise ProxyError(_("The proxy {proxy} answered the request for {where} with something other than HTTP.").format(
                proxy=proxy, where=where), temporary=False) from None
        except OSError as exc:
            raise _unreachable(proxy, exc, timeout=timeout, where=where) from None
        status, answer = parse_answer(head)
        if status == 200:
            sock.settimeout(timeout)
            return sock
        if not head:
            raise ProxyError(_("The proxy {proxy} closed the connection instead of answering the request for {where}.").format(
                proxy=proxy, where=where), temporary=True)
        if status == 0:
            raise ProxyError(_("The proxy {proxy} answered the request for {where} with something other than HTTP: {answer}").format(
                proxy=proxy, where=where, answer=answer), temporary=False)
        if status == 407:
            hint = (_("the proxy's user name or password is wrong") if proxy.username is not None
                    else _("the proxy asks for a user name and a password; give them with /PROXY=http://user@host:port and /PROXY_PASSWORD"))
            raise ProxyError(_("The proxy {proxy} refused the connection to {where}: {answer} ({hint}).").format(
                proxy=proxy, where=where, answer=answer, hint=hint), temporary=False)
        # 502, 503, 504: the proxy could not reach the mail server now; 403 and the other
        # 4xx: its rules forbid it, which another attempt does not change.
        raise ProxyError(_("The proxy {proxy} refused the connection to {where}: {answer}").format(
            proxy=proxy, where=where, answer=answer), temporary=status >= 500)
    except BaseException:
        sock.close()
        raise


def _connect_to_proxy(proxy: Proxy, timeout: float, connect: Connector) -> socket.socket:
    try:
        return connect(proxy.host, proxy.port, timeout)
    except socket.gaierror as exc:
        raise ProxyError(_("The proxy's name {host} could not be resolved: {reason}").format(
            host=proxy.host, reason=exc.strerror), temporary=exc.errno == socket.EAI_AGAIN) from None
    except OSError as exc:
        raise _unreachable(proxy, exc, timeout=timeout) from None


def _unreachable(proxy: Proxy, exc: OSError, *, timeout: float, where: str | None = None) -> ProxyError:
    """A proxy that did not answer in time or whose connection failed (temporary): while SMail
    connected to it (`where` None), or once asked for the tunnel to `where`."""
    if isinstance(exc, TimeoutError):
        text = _("The proxy {proxy} did not answer within {seconds:g} s.") if where is None \
            else _("The proxy {proxy} did not answer the request for {where} within {seconds:g} s.")
    elif where is None:
        text = _("Cannot connect to the proxy {proxy}: {reason}")
    else:
        text = _("The connection to the proxy {proxy} was lost: {reason}")
    return ProxyError(text.format(proxy=proxy, where=where, seconds=timeout, reason=exc.strerror or exc),
                      temporary=True)


# RFC 1928 section 6: the failure codes of a SOCKS5 reply, and whether another attempt may help.
SOCKS5_REPLIES: Final = {
    0x01: ("general SOCKS server failure", True),
    0x02: ("connection not allowed by ruleset", False),
    0x03: ("network unreachable", True),
    0x04: ("host unreachable", True),
    0x05: ("connection refused", True),
    0x06: ("TTL expired", True),
    0x07: ("command not supported", False),
    0x08: ("address type not supported", False),
}


def _socks5_tunnel(proxy: Proxy, host: str, port: int, *, timeout: float) -> socket.socket:
    """python-socks' SOCKS5 client, given the whole `timeout`: it times each read, so a proxy
    that trickles its answer is cut off by running it in a thread joined at the deadline."""
    from python_socks import ProxyConnectionError, ProxyTimeoutError, ProxyType
    from python_socks import ProxyError as SocksError
    from python_socks.sync import Proxy as SocksProxy

    client = SocksProxy(ProxyType.SOCKS5, proxy.host, proxy.port, username=proxy.username,
                        password=proxy.password.reveal() if proxy.password else None, rdns=True)
    where = _target(host, port)
    result: list[socket.socket | BaseException] = []

    def run() -> None:
        try:
            result.append(client.connect(host, port, timeout=timeout))
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)

    worker = threading.Thread(target=run, name="smail-socks5", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        raise ProxyError(_("The proxy {proxy} did not answer the request for {where} within {seconds:g} s.").format(
            proxy=proxy, where=where, seconds=timeout), temporary=True)
    outcome = result[0]
    if isinstance(outcome, socket.socket):
        outcome.settimeout(timeout)
        return outcome
    if isinstance(outcome, ProxyTimeoutError):
        raise ProxyError(_("The proxy {proxy} did not answer the request for {where} within {seconds:g} s.").format(
            proxy=proxy, where=where, seconds=timeout), temporary=True) from None
    if isinstance(outcome, ProxyConnectionError):
        cause = outcome.__cause__
        if isinstance(cause, socket.gaierror):
            raise ProxyError(_("The proxy's name {host} could not be resolved: {reason}").format(
                host=proxy.host, reason=cause.strerror), temporary=cause.errno == socket.EAI_AGAIN) from None
        if isinstance(cause, TimeoutError):
            raise ProxyError(_("The proxy {proxy} did not answer within {seconds:g} s.").format(
                proxy=proxy, seconds=timeout), temporary=True) from None
        raise ProxyError(_("Cannot connect to the proxy {proxy}: {reason}").format(
            proxy=proxy, reason=getattr(cause, "strerror", None) or outcome.strerror or outcome), temporary=True) from None
    if isinstance(outcome, SocksError):
        code = outcome.error_code
        text = str(outcome)
        if code in SOCKS5_REPLIES:
            description, temporary = SOCKS5_REPLIES[code]
            answer = f"0x{code:02X} {description}"
        else:
            answer, temporary = text, False
        if "authentication" in text.lower():
            if proxy.username is None:
                hint = _("the proxy asks for a user name and a password; give them with /PROXY=socks5://user@host:port and /PROXY_PASSWORD")
            else:
                hint = _("the proxy's user name or password is wrong")
            raise ProxyError(_("The proxy {proxy} refused the connection to {where}: {answer} ({hint}).").format(
                proxy=proxy, where=where, answer=text, hint=hint), temporary=False) from None
        raise ProxyError(_("The proxy {proxy} refused the connection to {where}: {answer}").format(
            proxy=proxy, where=where, answer=answer), temporary=temporary) from None
    if isinstance(outcome, ValueError):  # a reply python-socks cannot read (a bound name not in UTF-8)
        raise ProxyError(_("The proxy {proxy} answered the request for {where} with something other than SOCKS5.").format(
            proxy=proxy, where=where), temporary=False) from None
    if isinstance(outcome, OSError):
        raise ProxyError(_("The connection to the proxy {proxy} was lost: {reason}").format(
            proxy=proxy, reason=outcome.strerror or outcome), temporary=True) from None
    raise outcome
