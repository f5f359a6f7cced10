"""The settings each stage receives from the validation: frozen, one class per concern.

The transports get their own settings (a GRAPH run has no SMTP fields to misuse), the message
builder gets the message's, the batch and the outbox theirs; none of them sees the whole Config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from smail.cloud import AppCredentials, CertStore, StoreThumbprint
from smail.eventlog import EventLogLevel
from smail.kinds import Priority
from smail.log import LogSettings
from smail.network import IPFamily
from smail.output import ErrorFileOnSuccess
from smail.proxy import Proxy
from smail.redact import Secret
from smail.sasl import AuthType
from smail.tls import TLSMode, TLSSettings

# A body file is HTML when its name says so; the message, the validation and a batch row agree.
HTML_SUFFIXES: Final = (".htm", ".html")


def is_html(body_file: Path | None) -> bool:
    """Whether /BODY_FILE names an HTML body (sent with a text alternative; /INLINE needs it)."""
    return body_file is not None and body_file.suffix.lower() in HTML_SUFFIXES


@dataclass(frozen=True, kw_only=True)
class MessageSettings:
    """The message as the options describe it, before any file is read."""

    subject: str = ""
    from_name: str | None = None
    from_addr: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    body_file: Path | None = None
    body_text: str | None = None
    body_charset: str | None = None
    attachments: tuple[Path, ...] = ()
    inline: tuple[Path, ...] = ()
    priority: Priority | None = None
    read_ack: bool = False
    reception_ack: bool = False
    headers: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SMIMESettings:
    """/SIGN_CERT and /ENCRYPT_TO: the files, not yet read (smime.prepare reads them)."""

    sign_cert: Path | None = None
    sign_password: Secret | None = None
    sign_thumbprint: str | None = None      # /SIGN_CERT_THUMBPRINT: the Windows store's "My"
    sign_store: CertStore | None = None     # /SIGN_CERT_STORE; None: the user's, then the computer's
    sign_any_address: bool = False
    encrypt_to: tuple[Path | StoreThumbprint, ...] = ()  # files, or certificates of the Windows store
    encrypt_self: bool = True


@dataclass(frozen=True, kw_only=True)
class SMTPSettings:
    server: str
    port: int
    tls_mode: TLSMode  # resolved: STARTTLS, IMPLICIT or NONE
    tls: TLSSettings
    auth: AuthType  # resolved: NONE, SASL or XOAUTH2
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    app: AppCredentials | None = None
    helo: str | None = None
    proxy: Proxy | None = None      # /PROXY, or the environment's, resolved for this server
    ip: IPFamily = IPFamily.ANY     # /IP
    proxy_from_environment: bool = True  # False with /PROXY=NONE (also for the XOAUTH2 token)
    timeout: float


@dataclass(frozen=True, kw_only=True)
class GraphSettings:
    app: AppCredentials
    sender: str
    save_to_sent: bool
    proxy: str | None = None       # /PROXY as requests takes it (credentials included)
    proxy_from_environment: bool = True  # False with /PROXY=NONE
    tls: TLSSettings
    timeout: float


@dataclass(frozen=True, kw_only=True)
class OutputSettings:
    dry_run: bool = False
    save_eml: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Reporting:
    """Where a run reports, read once from the tolerant first pass: a run that fails
    validation is still logged and reported where the user asked."""

    log: LogSettings
    error_file: Path | None = None
    error_file_on_success: ErrorFileOnSuccess = ErrorFileOnSuccess.DELETE
    error_file_encoding: str = "utf-8"
    quiet: bool = False
    result_file: Path | None = None
    event_log: EventLogLevel = EventLogLevel.NONE


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    rows: Path                      # /BATCH
    results: Path | None = None     # /BATCH_RESULT
    resume: bool = False            # /BATCH_RESUME
    resend_uncertain: bool = False  # /RESEND_UNCERTAIN with /BATCH_RESUME
    per_second: float | None = None  # /RATE
    # The command line's message options as given, before the rules that involve several of
    # them (config.settle_message): each row's cells go over them.
    message: MessageSettings = MessageSettings(from_addr="")
    default_sender: str | None = None  # /SMTP_USERNAME or /GRAPH_SENDER, by mode
    receipts: bool = False          # /RESULT_FILE: every row's receipt kept for it
    outputs: tuple[Path, ...] = ()  # /RESULT_FILE, /LOG, /ERROR_FILE: never a /SAVE_EML file


@dataclass(frozen=True, kw_only=True)
class OutboxSettings:
    folder: Path                    # /OUTBOX
    flush: bool = False             # /FLUSH
    resend_uncertain: bool = False  # /RESEND_UNCERTAIN with /FLUSH
    max_age: float                  # /OUTBOX_MAX_AGE, seconds
    per_second: float | None = None  # /RATE, for /FLUSH


TransportSettings = SMTPSettings | GraphSettings
