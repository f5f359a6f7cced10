"""main(): argv -> options -> Config -> Message -> transport -> exit code. The only catch-all."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from smail import __version__, i18n, log, mime, options, redact, retry, transports
from smail.config import Config, LogSettings, OutputSettings, log_settings, raw_secrets, validate
from smail.errors import ExitCode, InternalError, SMailError, reason
from smail.i18n import _, ngettext
from smail.message import load_message
from smail.options import ErrorFileOnSuccess

logger = logging.getLogger("smail")


class Console:
    """stdout and stderr, with every line redacted and unencodable characters replaced."""

    def __init__(self, stdout: TextIO, stderr: TextIO) -> None:
        self.stdout, self.stderr = stdout, stderr

    @staticmethod
    def _write(stream: TextIO, text: str) -> None:
        text = redact.redact(text)
        encoding = getattr(stream, "encoding", None) or "utf-8"
        text = text.encode(encoding, errors="replace").decode(encoding, errors="replace")
        stream.write(text + ("" if text.endswith("\n") else "\n"))
        stream.flush()

    def out(self, text: str) -> None:
        self._write(self.stdout, text)

    def err(self, text: str) -> None:
        self._write(self.stderr, text)


class ErrorFile:
    """/ERROR_FILE: written on failure; deleted (or emptied) on success."""

    def __init__(self, path: str | Path | None,
                 on_success: ErrorFileOnSuccess = ErrorFileOnSuccess.DELETE) -> None:
        self.path = Path(path) if path else None
        self.on_success = on_success

    def failure(self, text: str, console: Console) -> None:
        if self.path is None:
            return
        try:
            self.path.write_text(redact.redact(text) + "\n", encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a path with a NUL character
            console.err(_("The error file {path} could not be written: {reason}").format(
                path=self.path, reason=reason(exc)))

    def success(self, console: Console) -> None:
        if self.path is None:
            return
        try:
            if self.on_success is ErrorFileOnSuccess.EMPTY:
                self.path.write_bytes(b"")
            else:
                self.path.unlink(missing_ok=True)
        except (OSError, ValueError) as exc:
            console.err(_("The error file {path} could not be cleared: {reason}").format(
                path=self.path, reason=reason(exc)))


def _save_eml(path: Path, rendered: mime.Rendered) -> None:
    try:
        with path.open("wb") as stream:
            rendered.write_to(stream)
    except (OSError, ValueError) as exc:
        raise SMailError(_("The message could not be saved to {path}: {reason}").format(
            path=path, reason=reason(exc))) from None
    logger.info(_("Message saved to {path}.").format(path=path))


def _crash_report(err: InternalError, log_path: Path | None) -> Path | None:
    """The traceback of a bug goes to the log, or to a file in the temporary folder."""
    if log_path is not None:
        logger.error(err.details)
        return log_path
    try:
        fd, name = tempfile.mkstemp(prefix="smail-crash-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(redact.redact(err.details))
        return Path(name)
    except OSError:
        return None


def _progress_bar(stream: TextIO) -> transports.Progress | None:
    """A one-line upload progress bar on a terminal; nothing at all in scripts."""
    if not getattr(stream, "isatty", lambda: False)():
        return None

    def show(name: str, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        bar = "#" * (percent // 5)
        stream.write(f"\r{name[:40]} [{bar:<20}] {percent:3d}% ({done / 1048576:.1f}/{total / 1048576:.1f} MiB)")
        if done >= total:
            stream.write("\n")
        stream.flush()
    return show


def _run(config: Config, console: Console) -> str | None:
    """Build and send; returns the success line."""
    message = load_message(config.message)
    rendered = mime.render(message)
    if config.output.save_eml is not None:
        _save_eml(config.output.save_eml, rendered)
    if config.output.dry_run:
        count = len(message.recipients)
        return ngettext(
            "Dry run: the message ({size} bytes) to {n} recipient is valid; nothing was sent.",
            "Dry run: the message ({size} bytes) to {n} recipients is valid; nothing was sent.",
            count).format(size=rendered.size, n=count)
    transport = transports.create(config, progress=_progress_bar(console.stderr))
    receipt = retry.run(lambda: transport.send(message, rendered), config.retry)
    return receipt.summary


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run SMail once; returns the exit code (SPEC.md)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    console = Console(stdout or sys.stdout, stderr or sys.stderr)
    redact.forget_all()
    i18n.activate(i18n.choose_language(options.peek(argv, environ, "LANG"), environ,
                                       options.peek_config(argv, environ, "LANG")))
    if options.wants(argv, "HELP"):
        console.out(options.help_text(__version__))
        return ExitCode.OK
    if options.wants(argv, "VERSION"):
        console.out(f"SMail {__version__}")
        return ExitCode.OK
    error_file = ErrorFile(options.peek(argv, environ, "ERROR_FILE"))
    log_path = log.configure(LogSettings())  # no log yet, but never Python's stderr fallback
    output = OutputSettings()
    try:
        raw = options.parse(argv, environ)
        redact.remember(*raw_secrets(raw))
        error_file = ErrorFile(raw.get("ERROR_FILE"))
        try:
            log_path = log.configure(log_settings(raw))
        except (OSError, ValueError) as exc:
            console.err(_("The log file could not be opened: {reason}").format(
                reason=reason(exc)))
        logger.info(_("SMail {version} started.").format(version=__version__))
        config = validate(raw)
        redact.remember(*config.secrets)
        output = config.output
        error_file = ErrorFile(output.error_file, output.error_file_on_success)
        started = time.monotonic()
        summary = _run(config, console)
    except SMailError as err:
        return _failure(err, console, error_file, log_path)
    except KeyboardInterrupt:
        return _failure(SMailError(_("Interrupted.")), console, error_file, log_path)
    except Exception:  # a bug: the traceback goes to the log, one line to the console
        return _failure(InternalError.from_current(""), console, error_file, log_path)
    else:
        logger.info(_("Success in {seconds:.1f} s: {summary}").format(
            seconds=time.monotonic() - started, summary=summary))
        error_file.success(console)
        if summary and not output.quiet:
            console.out(summary)
        return ExitCode.OK
    finally:
        log.shutdown()


def _failure(err: SMailError, console: Console, error_file: ErrorFile,
             log_path: Path | None) -> int:
    if isinstance(err, InternalError):
        report = _crash_report(err, log_path)
        text = (_("SMail stopped on an internal error (a bug). Details are in {path}.").format(
                    path=report) if report else
                _("SMail stopped on an internal error (a bug)."))
    else:
        text = err.message
    logger.error(text)
    console.err(text)
    error_file.failure(text, console)
    return int(err.exit_code)
