"""Hostile servers and dying networks against the promises: never a secret shown, never twice."""

from __future__ import annotations

import base64
import json
import re
import socket
import time

import pytest


def _echoing_auth_server(mechanism: str):
    """Offers one AUTH mechanism and refuses it with a 535 that echoes the client's answer,
    as some servers' error replies quote the command they refuse."""
    def script(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 smail.test ESMTP\r\n")
        while line := reader.readline():
            words = line.decode("ascii", "replace").split()
            verb = words[0].upper() if words else ""
            if verb == "EHLO":
                conn.sendall(f"250-smail.test\r\n250 AUTH {mechanism}\r\n".encode())
            elif verb == "AUTH" and len(words) == 3:
                conn.sendall(f"535 5.7.8 Authentication credentials invalid: {words[2]}\r\n".encode())
            elif verb == "AUTH":
                conn.sendall(b"334 \r\n")
                answer = reader.readline().decode("ascii", "replace").strip()
                conn.sendall(f"535 5.7.8 Authentication credentials invalid: {answer}\r\n".encode())
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 no\r\n")
    return script


def _decoded_secrets(text: str, secret: str) -> list[str]:
    """Every base64 run of `text` that decodes to bytes holding `secret`."""
    found = []
    for run in re.findall(r"[A-Za-z0-9+/]{8,}={0,2}", text):
        try:
            data = base64.b64decode(run + "=" * (-len(run) % 4))
        except ValueError:
            continue
        if secret.encode() in data:
            found.append(run)
    return found


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "XOAUTH2"])
def test_a_server_echoing_the_auth_answer_never_carries_the_secret_out(scripted, run_smail, files, tmp_path,
                                                                       mechanism):
    secret = "S3cr3t-\\\"'%&<>-é"
    if mechanism == "XOAUTH2":
        credentials = ["/AUTH_TYPE=XOAUTH2", f"/SMTP_TOKEN_FILE={files('token.txt', secret)}"]
    else:
        credentials = [f"/SMTP_PASSWORD={secret}"]
    server = scripted(_echoing_auth_server(mechanism))
    result_file, error_file = tmp_path / "result.json", tmp_path / "error.txt"
    result = run_smail(*server.options, "/SMTP_USERNAME=u@t.test", *credentials, "/TO=x@t.test", "/BODY=hi",
                       f"/RESULT_FILE={result_file}", f"/ERROR_FILE={error_file}")
    assert result.exit_code == 4, result.output
    assert "535 5.7.8 Authentication credentials invalid" in result.stderr
    outputs = result.output + error_file.read_text(encoding="utf-8") + result_file.read_text(encoding="utf-8")
    assert secret not in outputs
    assert _decoded_secrets(outputs, secret) == []
    assert json.loads(result_file.read_text(encoding="utf-8"))["exit_code"] == 4


def test_a_server_sending_continuation_lines_without_end_is_refused_at_once(scripted, run_smail):
    """A greeting that never ends ("220-" lines, as fast as the network goes) used to be kept
    whole in memory until /TIMEOUT: hundreds of megabytes, gigabytes at the default 60 s."""
    def script(conn: socket.socket) -> None:
        block = (b"220-" + b"x" * 8000 + b"\r\n") * 64
        while True:
            conn.sendall(block)

    server = scripted(script)
    started = time.monotonic()
    result = run_smail(*server.options, "/FROM_ADDR=a@t.test", "/TO=x@t.test", "/BODY=hi", "/TIMEOUT=60",
                       log=False)
    assert result.exit_code == 3, result.output
    assert "Reply too long" in result.stderr
    assert time.monotonic() - started < 30
