"""End-to-end demo: start a local SMTP server (aiosmtpd, STARTTLS with a throwaway CA, AUTH),
send the product sheet's "HTML with inline images + attachments" example through SMail,
then show where the delivered message is and its MIME structure.

    make demo
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "demo-output"
USER, PASSWORD = "james@koxo.example", "Secret123"


class Mailbox:
    """Writes each delivered message to demo-output/ as an .eml file."""

    def __init__(self) -> None:
        self.saved: list[Path] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        OUTPUT.mkdir(exist_ok=True)
        path = OUTPUT / f"delivered-{len(self.saved) + 1}.eml"
        path.write_bytes(envelope.original_content)
        self.saved.append(path)
        return "250 2.0.0 Ok: queued as DEMO1"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER \
        and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(part: email.message.Message, depth: int = 0) -> list[str]:
    label = part.get_content_type()
    name = part.get_filename()
    if part.get("Content-ID"):
        label += f"  Content-ID {part['Content-ID']}"
    if name:
        label += f"  \"{name}\""
    lines = ["  " * depth + "- " + label]
    if part.is_multipart():
        for child in part.get_payload():
            lines += tree(child, depth + 1)
    return lines


def main() -> int:
    # aiosmtpd logs (it does not warn) that its own AUTH code sets a deprecated attribute.
    logging.getLogger("mail.log").addFilter(lambda record: "login_data is deprecated" not in record.getMessage())
    ca = trustme.CA()
    workdir = Path(tempfile.mkdtemp(prefix="smail-demo-"))
    ca_file = workdir / "demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=authenticate, auth_require_tls=True,
                            server_hostname="smtp.demo.local")
    controller.start()
    print(f"Local SMTP server listening on 127.0.0.1:{port} (STARTTLS, AUTH).")
    command = [sys.executable, "-m", "smail", "/MODE=SMTP",
               "/SMTP_SERVER=127.0.0.1", f"/SMTP_PORT={port}", "/AUTH_TYPE=SASL", "/SSL_VERSION=TLSV1_2",
               f"/CA_FILE={ca_file}", f"/SMTP_USERNAME={USER}", "/FROM_NAME=KoXo Support",
               f"/FROM_ADDR={USER}", "/TO=client@test.example", "/SUBJECT=Nouvelle offre",
               f"/BODY_FILE={HERE / 'Mail.html'}",
               f"/INLINE={HERE / 'logo.png'},{HERE / 'banner.jpg'}",
               f"/ATTACH={HERE / 'Offre2026.pdf'},{HERE / 'Conditions.pdf'}",
               "/READ_ACK", "/RECEPTION_ACK", f"/LOG={workdir / 'smail.log'}", "/LOG_LEVEL=DEBUG"]
    shown = " ".join(c if " " not in c else f'"{c}"' for c in command[1:])
    print(f"Running: python {shown}  (password given as SMAIL_SMTP_PASSWORD)")
    try:
        completed = subprocess.run(command, env={**os.environ, "SMAIL_SMTP_PASSWORD": PASSWORD},
                                   capture_output=True, text=True, timeout=120)
    finally:
        controller.stop()
    print(f"SMail exit code: {completed.returncode}")
    sys.stdout.write(completed.stdout)
    sys.stderr.write(completed.stderr)
    if completed.returncode != 0 or not mailbox.saved:
        return 1
    path = mailbox.saved[-1]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    print(f"\nDelivered message: {path}")
    print(f"Log (DEBUG, secrets masked): {workdir / 'smail.log'}")
    print(f"Subject: {message['Subject']}   From: {message['From']}   To: {message['To']}")
    print("Structure:")
    print("\n".join(tree(message)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
