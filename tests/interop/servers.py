"""A real Postfix (with Dovecot SASL) on 127.0.0.1 for the interop suite, without systemd.

    python tests/interop/servers.py start [FOLDER]   install if missing, configure, start
    python tests/interop/servers.py stop FOLDER      stop both by PID

Installs the Debian packages postfix and dovecot-core when they are missing (as root, or
through sudo), writes every configuration file into one temporary folder, listens only on
127.0.0.1, and delivers every message for the domain smail.test into a Maildir there.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGES = ("postfix", "dovecot-core")
USERS = {"james@smail.test": "Secret123", "user@smail.test": "pässwörd"}
DOMAIN = "smail.test"


@dataclass
class Servers:
    folder: str
    smtp_port: int            # plain, STARTTLS offered, AUTH after STARTTLS
    submission_port: int      # STARTTLS required, AUTH required
    smtps_port: int           # implicit TLS, AUTH
    ca_file: str

    @property
    def maildir(self) -> Path:
        return Path(self.folder) / "mail" / "inbox"

    def delivered(self) -> list[bytes]:
        """Messages delivered so far, oldest first."""
        new = self.maildir / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.is_dir() else []
        return [p.read_bytes() for p in files]

    def wait_for(self, marker: bytes, recipient: str, count: int = 1, timeout: float = 30) -> list[bytes]:
        """The `count` messages delivered to `recipient` that contain `marker` (a unique subject)."""
        deadline = time.monotonic() + timeout
        delivered_to = f"X-Original-To: {recipient}".encode()
        while True:
            messages = [m for m in self.delivered() if marker in m and delivered_to in m]
            if len(messages) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if len(messages) != count:
            raise AssertionError(f"Postfix delivered {len(messages)} message(s) containing {marker!r}, "
                                 f"expected {count}; see {self.folder}/postfix.log")
        return messages

    def save(self) -> None:
        (Path(self.folder) / "servers.json").write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, folder: str | Path) -> Servers:
        return cls(**json.loads((Path(folder) / "servers.json").read_text()))


def _as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise RuntimeError("Installing Postfix needs root or sudo.")


def install() -> None:
    """apt-get install the packages that are missing (non-interactive, no service start)."""
    if shutil.which("postfix") and shutil.which("dovecot"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    preseed = "postfix postfix/main_mailer_type select No configuration\n"
    subprocess.run(_as_root(["debconf-set-selections"]), input=preseed, text=True, check=True, env=env)
    subprocess.run(_as_root(["apt-get", "update", "-q"]), check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(_as_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]),
                   check=True, env=env, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def _dovecot_config(folder: Path) -> Path:
    users = folder / "dovecot-users"
    users.write_text("".join(f"{user}:{{PLAIN}}{password}\n" for user, password in USERS.items()),
                     encoding="utf-8")
    users.chmod(0o644)
    run = folder / "dovecot-run"
    run.mkdir()
    config = folder / "dovecot.conf"
    config.write_text(f"""
base_dir = {run}
state_dir = {folder / "dovecot-state"}
log_path = {folder / "dovecot.log"}
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {folder / "auth-postfix"} {{
    mode = 0666
  }}
}}
""", encoding="utf-8")
    (folder / "dovecot-state").mkdir()
    return config


def _postfix_config(folder: Path, servers: Servers, cert: Path, key: Path) -> Path:
    etc = folder / "postfix-etc"
    etc.mkdir()
    nobody = pwd.getpwnam("nobody")
    mail = folder / "mail"
    mail.mkdir()
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    auth = f"-o smtpd_sasl_auth_enable=yes -o smtpd_sasl_type=dovecot -o smtpd_sasl_path={folder / 'auth-postfix'}"
    (etc / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {folder / "spool"}
data_directory = {folder / "data"}
maillog_file = {folder / "postfix.log"}
maillog_file_prefixes = {folder}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.{DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
message_size_limit = 52428800
virtual_mailbox_limit = 0
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_authenticated_header = yes
smtputf8_enable = yes
alias_maps =
alias_database =
""", encoding="utf-8")
    master = Path("/etc/postfix/master.cf").read_text(encoding="utf-8").splitlines()
    # Keep the internal services; replace the public listener by three on loopback.
    lines = [line for line in master if not line.startswith(("smtp      inet", "#"))]
    lines = [line.replace(" y ", " n ") if " unix " in line else line for line in lines]  # no chroot
    lines += [
        f"127.0.0.1:{servers.smtp_port} inet n - n - - smtpd {auth}",
        f"127.0.0.1:{servers.submission_port} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt {auth}"
        " -o smtpd_client_restrictions=permit_sasl_authenticated,reject",
        f"127.0.0.1:{servers.smtps_port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes {auth}",
    ]
    (etc / "master.cf").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return etc


def _wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start(folder: Path | None = None) -> Servers:
    """Install if needed, configure in `folder` (a new temporary one by default) and start."""
    install()
    folder = Path(folder or tempfile.mkdtemp(prefix="smail-interop-"))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca_file, cert, key = _write_certificates(folder)
    servers = Servers(str(folder), free_port(), free_port(), free_port(), str(ca_file))
    dovecot = _dovecot_config(folder)
    etc = _postfix_config(folder, servers, cert, key)
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(_as_root(["dovecot", "-c", str(dovecot)]), check=True, **quiet)
    env = {**os.environ, "MAIL_CONFIG": str(etc)}
    # Postfix wants its queue owned by root and its data folder by its mail owner; `check`
    # then creates the queue's sub-folders with the owners it expects.
    postfix_user = pwd.getpwnam("postfix")
    (folder / "spool").mkdir(mode=0o755)
    (folder / "data").mkdir(mode=0o700)
    os.chown(folder / "data", postfix_user.pw_uid, postfix_user.pw_gid)
    subprocess.run(_as_root(["postfix", "-c", str(etc), "check"]), env=env, **quiet)
    subprocess.run(_as_root(["postfix", "-c", str(etc), "start"]), check=True, env=env, **quiet)
    for port in (servers.smtp_port, servers.submission_port, servers.smtps_port):
        _wait_listening(port)
    servers.save()
    return servers


def _kill(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def stop(folder: str | Path) -> None:
    """Stop Postfix's master and Dovecot by the PIDs they wrote."""
    folder = Path(folder)
    _kill(folder / "spool" / "pid" / "master.pid")
    _kill(folder / "dovecot-run" / "master.pid")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "start":
        print(json.dumps(asdict(start(Path(sys.argv[2]) if len(sys.argv) > 2 else None)), indent=2))
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        stop(sys.argv[2])
    else:
        sys.exit(__doc__)
