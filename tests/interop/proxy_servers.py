"""Real third-party proxies for the interop suite, without systemd: Squid (HTTP CONNECT, Basic
authentication through basic_ncsa_auth) and Dante (danted, SOCKS5), each with its own
configuration in a temporary folder, listening on 127.0.0.1 only, stopped by PID.

Installs the Debian packages squid and dante-server when they are missing (as root, or
through sudo); a proxy that cannot be installed or started is a skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SQUID_USER, SQUID_PASSWORD = "smail", "Squ1d-pass"


def _as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise RuntimeError("Installing the proxies needs root or sudo.")


def _which(*names: str) -> str | None:
    for name in names:
        for folder in ("", "/usr/sbin/", "/usr/bin/"):
            path = shutil.which(folder + name) if folder else shutil.which(name)
            if path:
                return path
    return None


def install(packages: tuple[str, ...]) -> None:
    """apt-get install the missing packages (waiting for a lock another install holds)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    command = ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *packages]
    if subprocess.run(_as_root(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
        subprocess.run(_as_root(["apt-get", *lock, "update", "-q"]), check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(_as_root(command), check=True, env=env, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the proxy exited with {process.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the proxy did not listen on port {port} within {timeout:g} s: {_tail(log)}")


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-5:])
    except OSError:
        return "(no log)"


@dataclass
class Proxy:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]
    log: Path
    access_log: Path | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_squid() -> Proxy:
    """Squid on 127.0.0.1:<free port>: CONNECT to any port, Basic authentication required."""
    if not _which("squid"):
        install(("squid",))
    squid = _which("squid")
    helper = Path("/usr/lib/squid/basic_ncsa_auth")
    if not squid or not helper.exists():
        raise RuntimeError("squid or its basic_ncsa_auth helper is not installed")
    folder = Path(tempfile.mkdtemp(prefix="smail-squid-"))
    folder.chmod(0o777)
    hashed = subprocess.run(["openssl", "passwd", "-1", SQUID_PASSWORD], capture_output=True, text=True,
                            check=True).stdout.strip()
    passwords = folder / "passwords"
    passwords.write_text(f"{SQUID_USER}:{hashed}\n")
    passwords.chmod(0o644)
    port = free_port()
    log = folder / "cache.log"
    access = folder / "access.log"
    config = folder / "squid.conf"
    config.write_text(f"""
http_port 127.0.0.1:{port}
pid_filename {folder / "squid.pid"}
cache_log {log}
access_log stdio:{access}
cache deny all
cache_mem 8 MB
coredump_dir {folder}
shutdown_lifetime 1 seconds
dns_v4_first on
auth_param basic program {helper} {passwords}
auth_param basic realm smail-interop
acl authenticated proxy_auth REQUIRED
acl CONNECT method CONNECT
http_access deny !authenticated
http_access allow CONNECT authenticated
http_access deny all
""")
    process = subprocess.Popen(_as_root([squid, "-N", "-d", "1", "-f", str(config)]),
                               stdout=subprocess.DEVNULL, stderr=(folder / "stderr.log").open("wb"))
    proxy = Proxy(port, folder, process, log, access)
    try:
        _wait_for_port(port, process, folder / "stderr.log")
    except RuntimeError:
        proxy.stop()
        raise
    return proxy


def start_dante() -> Proxy:
    """danted on 127.0.0.1:<free port>: SOCKS5 CONNECT from loopback to loopback, no authentication."""
    if not _which("danted", "sockd"):
        install(("dante-server",))
    danted = _which("danted", "sockd")
    if not danted:
        raise RuntimeError("danted is not installed")
    folder = Path(tempfile.mkdtemp(prefix="smail-dante-"))
    folder.chmod(0o777)
    port = free_port()
    log = folder / "danted.log"
    config = folder / "danted.conf"
    config.write_text(f"""
logoutput: {log}
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: connect disconnect error
}}
""")
    process = subprocess.Popen(_as_root([danted, "-f", str(config), "-p", str(folder / "danted.pid"), "-N", "1"]),
                               stdout=subprocess.DEVNULL, stderr=(folder / "stderr.log").open("wb"))
    proxy = Proxy(port, folder, process, log)
    try:
        _wait_for_port(port, process, log)
    except RuntimeError:
        proxy.stop()
        raise
    return proxy
