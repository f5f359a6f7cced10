"""main(): argv -> options -> Config -> Message -> session -> exit code.

Its catch-all turns an exception no stage translated into exit 7 (a bug). Two other broad
handlers give an exit code of their own, where the code beneath fails in ways no list can
hold: tls.create_context (the system's certificate store, exit 3) and the batch's
templates.render_template (whatever a template makes Python raise is bad input, exit 2).
The others only keep a report from changing the outcome (the log file, the Event Log,
closing a broken SMTP connection) or pass the exception on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from smail import __version__, files, helptext, i18n, log, reader, redact, version_line
from smail.errors import ExitCode, InternalError, ParamError, SMailError, reason
from smail.eventlog import EventLogLevel
from smail.i18n import _, ngettext
from smail.options import Opt
from smail.output import Console, ErrorFile
from smail.receipt import Outcome, Receipt, Status, run_result, running_result, write_result

if TYPE_CHECKING:
    from smail.config import SingleRun
    from smail.options import RawOptions
    from smail.settings import Reporting
    from smail.transports import Progress

logger = logging.getLogger("smail")


def _crash_report(err: InternalError, log_path: Path | None) -> Path | None:
    """The traceback of a bug goes to the log, or to a file in the temporary folder."""
    if log_path is not None:
        for line in err.details.splitlines():  # every log line stays one record
            logger.error(line)
        return log_path
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix="smail-crash-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(redact.redact(err.details))
        return Path(name)
    except OSError:
        return None


def _progress_bar(stream: TextIO | None) -> Progress | None:
    """A one-line upload progress bar on a terminal; nothing at all in scripts."""
    try:
        if stream is None or not stream.isatty():
            return None
    except (OSError, ValueError):
        return None

    def show(name: str, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        bar = "#" * (percent // 5)
        try:
            stream.write(f"\r{name[:40]} [{bar:<20}] {percent:3d}% ({done / 1048576:.1f}/{total / 1048576:.1f} MiB)")
            if done >= total:
                stream.write("\n")
            stream.flush()
        except (OSError, ValueError):
            pass
    return show


def _send_one(config: SingleRun, console: Console) -> Outcome:
    """Build, save, and send one message (or only check it with /DRY_RUN)."""
    from smail import mime, transports
    from smail.message import load_message

    message = load_message(config.message)
    if config.smime is not None:
        from smail import smime  # cryptography: only for signed or encrypted messages

        rendered = smime.protect(message, smime.plan(smime.prepare(config.smime), message))
    else:
        rendered = mime.render(message)
    if config.output.save_eml is not None:
        try:
            with files.open_output(config.output.save_eml) as stream:
                rendered.write_to(stream)
        except (OSError, ValueError) as exc:
            raise files.write_failure(config.output.save_eml, exc) from None
        logger.info(_("Message saved to {path}.").format(path=config.output.save_eml))
    if config.output.dry_run:
        count = len(message.recipients)
        text = ngettext(
            "Dry run: the message ({size} bytes) is valid and would be sent to {n} recipient; nothing was sent.",
            "Dry run: the message ({size} bytes) is valid and would be sent to {n} recipients; nothing was sent.",
            count).format(size=rendered.size, n=count)
        return Outcome(ExitCode.OK, text, [Receipt(status=Status.DRY_RUN, message_id=message.message_id,
                                                   accepted=tuple(b.address for b in message.recipients))])
    session = transports.open_session(config.transport, progress=_progress_bar(console.stderr))
    try:
        receipt = transports.deliver(session, message, rendered, config.retry)
    finally:
        session.close()
    if receipt.status is not Status.SENT:
        if config.outbox is not None and receipt.status is Status.FAILED:
            from smail import outbox  # not refused, may work later: kept for /FLUSH, exit 10

            kept = outbox.keep(config.outbox, message, rendered, receipt)
            text = kept.error or ""
            # The result file keeps the failure's own code and line; the run's says kept.
            recorded = kept.with_facts(error=receipt.error, exit_code=receipt.exit_code) \
                if kept.status is Status.QUEUED else receipt
            return Outcome(kept.exit_code, text, [recorded], SMailError(text))
        return Outcome(receipt.exit_code, receipt.error or "", [receipt], SMailError(receipt.error or ""))
    return Outcome(ExitCode.OK, receipt.summary, [receipt])


def _protect_secret(raw: RawOptions, console: Console) -> Outcome:
    """/PROTECT_SECRET /OUT=file: a secret typed without echo (or piped in), encrypted with
    DPAPI for this user or this computer, so that no plaintext password file lies on a server."""
    import getpass

    from smail import windows
    from smail.config.values import Values
    from smail.options import SecretScope

    values = Values(raw)
    out = values.get(Opt.OUT, Path)
    if out is None:
        raise ParamError(_("/PROTECT_SECRET needs /OUT=file: where to write the encrypted secret."))
    if sys.platform != "win32":
        raise ParamError(_("/PROTECT_SECRET encrypts with Windows DPAPI, which exists only on Windows."))
    machine = values.get(Opt.SCOPE, SecretScope) is SecretScope.MACHINE
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            secret = getpass.getpass(_("Secret to protect (not shown): "))
        else:  # piped: UTF-8 (PowerShell 7), else what cmd's echo writes, the OEM code page
            line = sys.stdin.buffer.readline() if sys.stdin is not None else b""
            try:
                secret = line.decode("utf-8-sig")
            except UnicodeDecodeError:
                secret = line.decode(windows.oem_code_page(), errors="replace")
            secret = secret.rstrip("\r\n")
    except (OSError, EOFError, ValueError, AttributeError):
        secret = ""
    if not secret:
        raise ParamError(_("No secret was given: type it at the prompt, or pipe it on standard input."))
    redact.remember(secret)
    try:
        blob = windows.protect(secret.encode("utf-8"), machine=machine)
        files.write_atomically(out, windows.format_protected(blob, machine=machine))
    except OSError as exc:
        raise files.write_failure(out, exc) from None
    text = _("The secret is encrypted in {path}; give it as /SMTP_PASSWORD_FILE, /O365_SECRET_FILE or /O365_CERT_PASSWORD_FILE.").format(
        path=out)
    return Outcome(ExitCode.OK, text)


def _run(argv: Sequence[str], environ: Mapping[str, str], console: Console) -> Outcome:
    """The strict parse, validation, then the run itself."""
    from smail.config import BatchRun, FlushRun, raw_secrets, validate

    if not argv and not any(name.upper().startswith("SMAIL_") for name in environ):
        raise ParamError(_("SMail sends e-mail from the command line; no option was given. Run SMail /? for every option, with examples."))
    raw = reader.parse(argv, environ)
    redact.remember(*raw_secrets(raw))
    logger.info(_("SMail {version} started.").format(version=__version__))
    if raw.flag(Opt.PROTECT_SECRET):
        return _protect_secret(raw, console)
    if raw.flag(Opt.REGISTER_EVENT_SOURCE):
        from smail import eventlog
        return Outcome(ExitCode.OK, eventlog.register())
    config = validate(raw)
    redact.remember(*config.secrets)
    for warning in config.warnings:
        logger.warning(warning)
        console.err(warning)
    if isinstance(config, FlushRun):
        from smail import outbox
        return outbox.flush(config, console)
    if isinstance(config, BatchRun):
        from smail import batch
        return batch.run(config, console)
    return _send_one(config, console)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run SMail once; returns the exit code (SPEC.md)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    console = Console(stdout if stdout is not None else sys.stdout,
                      stderr if stderr is not None else sys.stderr)
    redact.forget_all()
    # One tolerant first pass over everything the options come from (argv with its @files,
    # SMAIL_*, /CONFIG): the language, /?, /LOG and /ERROR_FILE work wherever they are written.
    early = reader.parse(argv, environ, tolerant=True)
    i18n.activate(i18n.choose_language(early.get(Opt.LANG), environ))
    if early.flag(Opt.HELP):
        console.out(helptext.help_text(__version__))
        return ExitCode.OK
    if early.flag(Opt.VERSION):
        console.out(version_line())
        return ExitCode.OK
    from smail.config import raw_secrets, reporting
    from smail.outputcheck import check_outputs

    redact.remember(*raw_secrets(early))  # before anything can print them
    report = reporting(early)
    try:
        check_outputs(early)  # before the log or the error file can touch an input
    except ParamError as err:
        console.err(err.message)
        return int(err.exit_code)
    log_path = None
    try:
        log_path = log.configure(report.log, warn=console.err)
    except (OSError, ValueError) as exc:
        console.err(_("The log file could not be opened: {reason}").format(reason=reason(exc)))
    if report.result_file is not None:
        _write_running(report.result_file)
    try:
        outcome = _run(argv, environ, console)
    except KeyboardInterrupt:
        stop = SMailError(_("Interrupted."))
        outcome = Outcome(stop.exit_code, stop.message, error=stop)
    except SMailError as err:
        outcome = Outcome(err.exit_code, err.message, error=err)
    except Exception:  # a bug: the traceback goes to the log, one line to the console
        bug = InternalError.from_current("")
        crash = _crash_report(bug, log_path)
        text = (_("SMail stopped on an internal error (a bug). Details are in {path}.").format(path=crash)
                if crash else _("SMail stopped on an internal error (a bug)."))
        outcome = Outcome(bug.exit_code, text, error=bug)
    try:
        _report(outcome, console, report)
    finally:
        log.shutdown()
    return int(outcome.exit_code)


def _write_running(path: Path) -> None:
    """/RESULT_FILE says "running" until the run's own receipt replaces it: a run killed on
    the way never leaves the previous run's success in place. A failure to write it is said
    once, by the final write."""
    import time

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = _("SMail has been running since {time} (process {pid}); this file is replaced when it ends.").format(
        time=started, pid=os.getpid())
    try:
        write_result(path, running_result(text, started=started, pid=os.getpid()))
    except (OSError, ValueError):
        pass


def _report(outcome: Outcome, console: Console, report: Reporting) -> None:
    """The outcome on the console, in the log, /ERROR_FILE and /RESULT_FILE; none of these
    can change the exit code."""
    error_file = ErrorFile(report.error_file, report.error_file_on_success, report.error_file_encoding)
    outcome.text = redact.shown(outcome.text)  # one line, whatever value an error echoes
    if outcome.error is not None:
        logger.error(outcome.text)
        console.err(outcome.text)
        error_file.failure(outcome.text, console)
    else:
        logger.info(_("Success: {summary}").format(summary=outcome.text))
        error_file.success(console)
        if outcome.text and not report.quiet:
            console.out(outcome.text)
    if report.result_file is not None:
        try:
            write_result(report.result_file, run_result(outcome.exit_code, outcome.text, outcome.receipts))
        except (OSError, ValueError) as exc:
            console.err(_("The result file {path} could not be written: {reason}").format(
                path=report.result_file, reason=reason(exc)))
    if report.event_log is not EventLogLevel.NONE:
        from smail import eventlog
        eventlog.write(report.event_log, ExitCode(outcome.exit_code), outcome.text)
