"""RawOptions -> Config (frozen): converted values with the table's defaults, then the rules
that involve several options and the checks each mode needs before anything is sent.

values.py converts each option once; transport.py settles how SMail signs in and reaches the
server; message.py the message and its S/MIME protection; this module the kind of run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from smail import files, proxy
from smail.config.message import default_sender, given_message, message_settings, smime_settings
from smail.config.transport import (
    check_sign_in,
    credential_warnings,
    given_proxy,
    graph_settings,
    smtp_settings,
)
from smail.config.values import T, Values
from smail.converters import is_credential_reference, path_of
from smail.errors import ParamError, SMailError
from smail.eventlog import EventLogLevel
from smail.i18n import _
from smail.kinds import Mode, RunKind
from smail.log import LogLevel, LogSettings
from smail.options import OPTIONS, Opt, Option, RawOptions, Source, convert
from smail.output import ErrorFileOnSuccess
from smail.proxy import Proxy
from smail.redact import Secret
from smail.retry import RetryPolicy
from smail.settings import (
    BatchSettings,
    GraphSettings,
    MessageSettings,
    OutboxSettings,
    OutputSettings,
    Reporting,
    SMIMESettings,
    SMTPSettings,
)


@dataclass(frozen=True, kw_only=True)
class Run:
    """What every kind of run has; each kind adds, non-optional, what it needs."""

    kind: ClassVar[RunKind]
    mode: Mode
    transport: SMTPSettings | GraphSettings
    retry: RetryPolicy
    output: OutputSettings
    outbox: OutboxSettings | None = None  # where a message that failed, not refused, is kept (/OUTBOX)
    smime: SMIMESettings | None = None  # /SIGN_CERT, /ENCRYPT_TO
    secrets: tuple[Secret, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # said on stderr and in the log before anything is sent


@dataclass(frozen=True, kw_only=True)
class SingleRun(Run):
    """One message, described by the options."""

    kind: ClassVar[RunKind] = RunKind.SINGLE
    message: MessageSettings


@dataclass(frozen=True, kw_only=True)
class BatchRun(Run):
    """One message per row of /BATCH; each row's message is validated by the batch."""

    kind: ClassVar[RunKind] = RunKind.BATCH
    batch: BatchSettings


@dataclass(frozen=True, kw_only=True)
class FlushRun(Run):
    """/FLUSH: sends what the outbox holds, so it has no message of its own."""

    kind: ClassVar[RunKind] = RunKind.FLUSH
    outbox: OutboxSettings


Config = SingleRun | BatchRun | FlushRun

def reporting(raw: RawOptions) -> Reporting:
    """Reporting settings from tolerantly parsed options: a bad value falls back to the default."""
    def tolerant(option: Option, kind: type[T]) -> T:
        try:
            value = convert(option, raw.get(option) or "") if raw.given(option) else None
        except SMailError:
            value = None
        if not isinstance(value, kind):
            value = option.default
        assert isinstance(value, kind)
        return value
    return Reporting(log=LogSettings(path=path_of(raw.get(Opt.LOG)), level=tolerant(Opt.LOG_LEVEL, LogLevel)),
                     error_file=path_of(raw.get(Opt.ERROR_FILE)),
                     error_file_on_success=tolerant(Opt.ERROR_FILE_ON_SUCCESS, ErrorFileOnSuccess),
                     error_file_encoding=tolerant(Opt.ERROR_FILE_CHARSET, str),
                     quiet=raw.flag(Opt.QUIET), result_file=path_of(raw.get(Opt.RESULT_FILE)),
                     event_log=tolerant(Opt.EVENT_LOG, EventLogLevel))


def _batch(values: Values, mode: Mode) -> BatchSettings | None:
    rows = values.get(Opt.BATCH, Path)
    results = values.get(Opt.BATCH_RESULT, Path)
    if rows is None:
        for option in (Opt.BATCH_RESULT, Opt.BATCH_RESUME):
            if values.given(option):
                raise ParamError(_("/{name} needs /BATCH.").format(name=option.name))
        return None
    if values.flag(Opt.BATCH_RESUME) and results is None:
        raise ParamError(_("/BATCH_RESUME needs /BATCH_RESULT: the file that tells which rows were sent."))
    written = (path_of(values.raw.get(option)) for option in (Opt.RESULT_FILE, Opt.LOG, Opt.ERROR_FILE))
    return BatchSettings(rows=rows, results=results, resume=values.flag(Opt.BATCH_RESUME),
                         resend_uncertain=values.flag(Opt.RESEND_UNCERTAIN), per_second=values.get(Opt.RATE, float),
                         message=given_message(values), default_sender=default_sender(values, mode),
                         receipts=values.raw.given(Opt.RESULT_FILE),
                         outputs=tuple(path for path in written if path is not None))


def _outbox(values: Values) -> OutboxSettings | None:
    folder = values.get(Opt.OUTBOX, Path)
    if folder is None:
        if values.flag(Opt.FLUSH):
            raise ParamError(_("/FLUSH needs /OUTBOX: the folder of the messages to send."))
        return None
    if files.exists(folder) and not files.is_dir(folder):
        raise ParamError(_("/OUTBOX={path} is not a folder.").format(path=folder))
    return OutboxSettings(folder=folder, flush=values.flag(Opt.FLUSH),
                          resend_uncertain=values.flag(Opt.RESEND_UNCERTAIN) and values.flag(Opt.FLUSH),
                          max_age=values.require(Opt.OUTBOX_MAX_AGE, float), per_second=values.get(Opt.RATE, float))


def validate(raw: RawOptions) -> Config:
    """Check every option and rule before any network or send work; raise SMailError."""
    values = Values(raw)
    mode = values.require(Opt.MODE, Mode)
    check_sign_in(values)
    transport = smtp_settings(values) if mode is Mode.SMTP else graph_settings(values)
    batch, outbox = _batch(values, mode), _outbox(values)
    if values.flag(Opt.RESEND_UNCERTAIN) and raw.sources.get(Opt.RESEND_UNCERTAIN.name, Source.COMMAND_LINE) \
            is not Source.COMMAND_LINE:
        # Kept in SMAIL_* or the INI file that a scheduled flush reads, it would send the same
        # uncertain messages again at every run: it is a decision for one run.
        raise ParamError(_("/RESEND_UNCERTAIN is only taken from the command line: set in SMAIL_RESEND_UNCERTAIN or in a configuration file, every run reading it would send the uncertain messages again. Remove it there, and give it on the command line of one run once you have checked that they did not arrive."))
    if values.flag(Opt.RESEND_UNCERTAIN) and not (outbox is not None and outbox.flush) \
            and not (batch is not None and batch.resume):
        # An explicit decision about what an earlier run left uncertain: never implied.
        raise ParamError(_("/RESEND_UNCERTAIN needs /FLUSH (the outbox's uncertain folder) or /BATCH_RESUME (the rows marked may-have-been-sent)."))
    if outbox is not None and outbox.flush and batch is not None:
        raise ParamError(_("Give /FLUSH or /BATCH, not both."))
    # /FLUSH sends what the outbox holds; /BATCH validates each row's message itself.
    flush = outbox if outbox is not None and outbox.flush else None
    message = message_settings(values, mode) if batch is None and flush is None else None
    smime = smime_settings(values)
    app = transport.app
    smtp_proxy = transport.proxy if isinstance(transport, SMTPSettings) else given_proxy(values)
    smtp_proxy = smtp_proxy if isinstance(smtp_proxy, Proxy) else None
    secrets = tuple(s for s in (
        getattr(transport, "password", None), getattr(transport, "token", None),
        smtp_proxy.password if smtp_proxy else None,
        app.secret if app else None, app.cert_password if app else None,
        smime.sign_password if smime else None) if s is not None)
    retry = RetryPolicy(attempts=values.require(Opt.RETRY, int), delay=values.require(Opt.RETRY_DELAY, float))
    output = OutputSettings(dry_run=values.flag(Opt.DRY_RUN), save_eml=values.get(Opt.SAVE_EML, Path))
    warnings = credential_warnings(app)
    if flush is not None:
        return FlushRun(mode=mode, transport=transport, retry=retry, output=output, outbox=flush, smime=smime,
                        secrets=secrets, warnings=warnings)
    if batch is not None:
        return BatchRun(mode=mode, transport=transport, retry=retry, output=output, outbox=outbox, smime=smime,
                        secrets=secrets, warnings=warnings, batch=batch)
    assert message is not None  # neither /FLUSH nor /BATCH: message_settings() gave one or raised
    return SingleRun(mode=mode, transport=transport, retry=retry, output=output, outbox=outbox, smime=smime,
                     secrets=secrets, warnings=warnings, message=message)


def raw_secrets(raw: RawOptions) -> list[str]:
    """Secret option values as given, registered before anything can fail and print them
    (`@wincred:NAME` names a secret and is not one: the secret it reads is registered then)."""
    values = [value for option in OPTIONS if option.secret
              for value in [raw.get(option)] if value and not is_credential_reference(value)]
    # A proxy's password may stand in its URL, in /PROXY or in the environment's variables.
    urls = [raw.get(Opt.PROXY) or "", *raw.proxy_environment.values()]
    return values + [password for url in urls for password in [proxy.password_in(url)] if password]
