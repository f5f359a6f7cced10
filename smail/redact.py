"""Secrets as a type, and the filter that keeps their values out of every output."""

from __future__ import annotations

import base64
import logging
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field

MASK = "****"
_registry: set[str] = set()


@dataclass(frozen=True)
class Secret:
    """A password, client secret or token: never shown by str() or repr()."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK})"


def _variants(value: str) -> set[str]:
    """The forms under which a secret may travel: raw, URL-encoded, base64."""
    try:  # a value from argv may hold undecodable bytes (lone surrogates)
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = value.encode("utf-8", "surrogatepass")
    forms = {value, urllib.parse.quote(data, safe=""), urllib.parse.quote_plus(data)}
    forms.add(base64.b64encode(data).decode("ascii"))
    return {form for form in forms if len(form) >= 3}


def remember(*values: str | Secret | None) -> None:
    """Register secret values (options, token file content, tokens obtained at run time)."""
    for value in values:
        text = value.reveal() if isinstance(value, Secret) else value
        if text and text.strip():
            _registry.update(_variants(text))
            _registry.update(_variants(text.strip()))


def forget_all() -> None:
    """Empty the registry (between runs of main() in one process)."""
    _registry.clear()


# Defence in depth for values SMail never saw before they were logged (a token in a
# library's debug line, a pre-authenticated upload URL): masked by their shape.
_SHAPES = (
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), MASK),
    (re.compile(r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|client_assertion|"
                r"authtoken|password)[\"']?\s*[=:]\s*[\"']?)[^\"'&\s,}]+"), r"\1" + MASK),
)


def shown(text: str) -> str:
    r"""`text` with its control characters written `\xNN`: one line, nothing a terminal or a
    log reader would interpret (a value echoed in an error cannot forge a log line)."""
    if text.isprintable():
        return text
    return "".join(f"\\x{ord(ch):02x}" if unicodedata.category(ch) == "Cc" else ch for ch in text)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ****, longest first, then by shape."""
    for value in sorted(_registry, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact_data(data: object) -> object:
    """`data` (the JSON document of a receipt, an outbox entry) with every string redacted,
    keys included: masking must come before encoding, since JSON or CSV escaping changes a
    secret holding a backslash or a quote into text that no longer contains it."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(key): redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(item) for item in data]
    return data


_AUTH_LINE = re.compile(r"^(AUTH\s+\S+)(\s+.*)?$", re.IGNORECASE | re.DOTALL)


def mask_auth_command(line: str) -> str:
    """`AUTH PLAIN dXNlcg...` -> `AUTH PLAIN ****`: masks by structure, not by value."""
    match = _AUTH_LINE.match(line.strip())
    if not match:
        return line
    return match.group(1) + (" " + MASK if match.group(2) else "")


class RedactingFilter(logging.Filter):
    """Sits on every handler, so it also sees records of msal, urllib3 and requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a library's malformed log call must not break the run
            text = f"{record.msg!s} {record.args!r}"
        record.msg = shown(redact(text))
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
