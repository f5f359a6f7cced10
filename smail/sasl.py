"""SASL answers for SMTP AUTH (RFC 4954) as plain functions: no socket, no state.

Each mechanism is a responder: called with None for the initial response, then with each
server challenge (already base64-decoded); it returns the bytes to send, or None for "no
initial response".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from enum import Enum
from typing import Final


class AuthType(Enum):
    DEFAULT = "DEFAULT"
    NONE = "NONE"
    SASL = "SASL"
    XOAUTH2 = "XOAUTH2"


# Preferred mechanisms first: CRAM-MD5 never sends the password itself.
PASSWORD_MECHANISMS: Final = ("CRAM-MD5", "PLAIN", "LOGIN")

Responder = Callable[[bytes | None], bytes | None]


def plain(user: str, password: str) -> bytes:
    """RFC 4616 message: empty authorization identity, NUL, user, NUL, password (UTF-8)."""
    return b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")


def cram_md5(user: str, password: str, challenge: bytes) -> bytes:
    """RFC 2195 answer: the user, a space and the hex HMAC-MD5 of the challenge."""
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return user.encode("utf-8") + b" " + digest.encode("ascii")


def xoauth2(user: str, token: str) -> bytes:
    """Google's and Microsoft's XOAUTH2 initial client response."""
    return b"user=" + user.encode("utf-8") + b"\x01auth=Bearer " + token.encode("utf-8") + b"\x01\x01"


def password_responder(mechanism: str, user: str, password: str) -> Responder:
    """The answers of PLAIN, LOGIN or CRAM-MD5 for one exchange."""
    if mechanism == "PLAIN":
        return lambda challenge: plain(user, password) if challenge is None else b""
    if mechanism == "CRAM-MD5":
        return lambda challenge: None if challenge is None else cram_md5(user, password, challenge)
    answers = iter((user.encode("utf-8"), password.encode("utf-8")))  # LOGIN: user, then password
    return lambda challenge: None if challenge is None else next(answers, b"")


def xoauth2_responder(user: str, token: str, reasons: list[str]) -> Responder:
    """XOAUTH2 answers; an error challenge's JSON reason is appended to `reasons`."""
    initial = xoauth2(user, token)

    def respond(challenge: bytes | None) -> bytes | None:
        # After the 334 error challenge the client sends an empty line, so that the server
        # ends the exchange with 535 (Google's XOAUTH2 protocol). An empty 334 means the server
        # ignored the initial response: send it now.
        if challenge is None or not challenge.strip():
            return initial
        reasons.append(challenge.decode("utf-8", "replace"))
        return b""
    return respond
