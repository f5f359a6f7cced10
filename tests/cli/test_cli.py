"""The whole command line in-process: exit codes, messages, /ERROR_FILE, logs, help, secrets."""

from __future__ import annotations

import io
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smail import __version__, cli, i18n, message
from smail.cli import main
from smail.errors import ExitCode
from smail.options import OPTIONS
from tests.smtpd import RecordingHandler

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")


def test_help_in_english_lists_every_option_exit_codes_and_examples(run_smail):
    result = run_smail("/?", log=False)
    assert result.exit_code == ExitCode.OK
    for option in OPTIONS:
        assert f"/{option.name}" in result.stdout
    assert "Exit codes:" in result.stdout and "  9  /MODE is not SMTP or GRAPH" in result.stdout
    from smail.helptext import EXAMPLES

    assert len(EXAMPLES) >= 3  # every example is shown as a command line
    assert sum(line.startswith("    SMail /") for line in result.stdout.splitlines()) == len(EXAMPLES)
    assert "SMTP options (/MODE=SMTP)" in result.stdout


@pytest.mark.parametrize("args, env", [
    (["/LANG=FR", "/?"], {}), (["/HELP"], {"SMAIL_LANG": "fr"}),
    pytest.param(["-h"], {"LANG": "fr_FR.UTF-8"}, marks=pytest.mark.skipif(
        sys.platform == "win32", reason="LANG does not choose the language on Windows: GetUserDefaultUILanguage "
        "does (test_windows_ignores_lang_and_follows_its_ui_language)")),
])
def test_help_in_french(run_smail, args, env):
    result = run_smail(*args, env=env, log=False)
    assert result.exit_code == ExitCode.OK
    assert "Options générales" in result.stdout and "Codes de sortie :" in result.stdout
    assert "Affiche cette aide." in result.stdout


@pytest.mark.skipif(sys.platform != "win32", reason="the Windows user-interface language")
def test_windows_ignores_lang_and_follows_its_ui_language(run_smail):
    ui = i18n.windows_ui_language() or "en"  # GetUserDefaultUILanguage(); neither French nor English: English
    other = "en_US.UTF-8" if ui == "fr" else "fr_FR.UTF-8"
    result = run_smail("/?", env={"LANG": other, "LC_ALL": other, "LANGUAGE": other}, log=False)
    assert result.exit_code == ExitCode.OK
    assert ("Options générales" in result.stdout) is (ui == "fr"), result.stdout[:200]


def test_version(run_smail):
    result = run_smail("/VERSION", log=False)
    assert result.exit_code == ExitCode.OK
    # SMail 1.2.0 (Python 3.x.y, OpenSSL 3.y.z, x64): what a support request needs to know
    windows = ", Windows 10 / Server 2016 or later" if sys.platform == "win32" else ""
    assert re.fullmatch(rf"SMail {re.escape(__version__)} \(Python 3\.\d+\.\d+, OpenSSL [^,]+, x(64|86)"
                        rf"{re.escape(windows)}\)\n", result.stdout), result.stdout


def test_typo_in_french(run_smail):
    result = run_smail("/LANG=FR", "/SMTP_SERVEUR=x", *BASIC)
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr == "Option inconnue /SMTP_SERVEUR. Vouliez-vous dire /SMTP_SERVER ?\n"


def test_missing_attachment_names_it(run_smail):
    result = run_smail("/SMTP_SERVER=smtp.test", *BASIC, "/ATTACH=Facture_032026.pdf")
    assert result.exit_code == ExitCode.FILE_NOT_FOUND
    assert result.stderr == "File not found: Facture_032026.pdf\n"


def test_missing_required_option(run_smail):
    result = run_smail(*BASIC)
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr == "Option /SMTP_SERVER is required in SMTP mode.\n"


def test_invalid_mode(run_smail):
    result = run_smail("/MODE=POP3")
    assert result.exit_code == ExitCode.INVALID_MODE
    assert "Invalid mode \"POP3\"" in result.stderr


def test_error_file_written_on_failure_and_deleted_on_success(run_smail, smtpd, tmp_path):
    error_file = tmp_path / "error.txt"
    failed = run_smail("/LANG=FR", "/MODE=X", f"/ERROR_FILE={error_file}")
    assert failed.exit_code == ExitCode.INVALID_MODE
    assert error_file.read_text(encoding="utf-8") == "Mode « X » invalide : /MODE doit valoir SMTP ou GRAPH.\n"
    server = smtpd(RecordingHandler())
    ok = run_smail(*server.options, *BASIC, f"/ERROR_FILE={error_file}")
    assert ok.exit_code == ExitCode.OK
    assert not error_file.exists()


def test_error_file_left_empty_on_success(run_smail, smtpd, tmp_path):
    error_file = tmp_path / "error.txt"
    error_file.write_text("old failure")
    server = smtpd(RecordingHandler())
    ok = run_smail(*server.options, *BASIC, f"/ERROR_FILE={error_file}", "/ERROR_FILE_ON_SUCCESS=EMPTY")
    assert ok.exit_code == ExitCode.OK
    assert error_file.read_bytes() == b""


def test_error_file_from_config_file(run_smail, tmp_path):
    error_file = tmp_path / "err.txt"
    ini = tmp_path / "smail.ini"
    ini.write_text(f"[smail]\nerror_file = {error_file}\n", encoding="utf-8")
    result = run_smail(f"/CONFIG={ini}", *BASIC)
    assert result.exit_code == ExitCode.PARAM
    assert "SMTP_SERVER" in error_file.read_text(encoding="utf-8")


def test_unwritable_error_file_keeps_the_original_exit_code(run_smail, tmp_path):
    result = run_smail("/MODE=X", f"/ERROR_FILE={tmp_path}/no/such/folder/err.txt")
    assert result.exit_code == ExitCode.INVALID_MODE
    assert "could not be written" in result.stderr


def test_quiet_prints_nothing_on_success(run_smail, smtpd):
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, *BASIC, "/QUIET")
    assert (result.exit_code, result.stdout, result.stderr) == (ExitCode.OK, "", "")


def test_dry_run_connects_to_nothing(run_smail, tmp_path):
    eml = tmp_path / "m.eml"
    result = run_smail("/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=9", *BASIC, "/DRY_RUN", f"/SAVE_EML={eml}")
    assert result.exit_code == ExitCode.OK
    assert result.stdout.startswith("Dry run: the message (")
    assert "Connecting" not in result.log
    assert eml.read_bytes().startswith(b"From: albert@demo.test\r\n")


@pytest.mark.parametrize("level, present, absent", [
    ("ERROR", ["ERROR"], ["INFO", "DEBUG"]),
    ("INFO", ["INFO", "Connecting to"], ["DEBUG"]),
    ("DEBUG", ["DEBUG", "C: ehlo"], []),
])
def test_log_levels(run_smail, smtpd, tmp_path, level, present, absent):
    server = smtpd(RecordingHandler(passwords={"u": "p"}))
    log_file = tmp_path / "journal.txt"
    log_file.write_text("previous line\n", encoding="utf-8")
    run_smail(*server.options, *BASIC, f"/LOG_FILE={log_file}", f"/LOG_LEVEL={level}", "/SMTP_USERNAME=u",
              "/SMTP_PASSWORD=wrong")
    text = log_file.read_text(encoding="utf-8")
    assert text.startswith("previous line\n")  # appended, never truncated
    for word in present:
        assert word in text
    for word in absent:
        assert f" {word} " not in text


def test_log_is_in_the_chosen_language(run_smail):
    result = run_smail("/LANG=FR", "/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=9", *BASIC, "/DRY_RUN")
    assert f"SMail {__version__} démarré." in result.log


def test_a_bug_exits_7_with_one_line_and_the_traceback_in_the_log(run_smail, monkeypatch):
    def broken(_settings):
        raise RuntimeError("internal detail")
    monkeypatch.setattr(message, "load_message", broken)
    result = run_smail("/SMTP_SERVER=smtp.test", *BASIC)
    assert result.exit_code == ExitCode.INTERNAL
    assert result.stderr.count("\n") == 1 and "internal error (a bug)" in result.stderr
    assert "Traceback" not in result.stderr and "Traceback" in result.log and "internal detail" in result.log


def test_a_bug_without_log_writes_a_crash_file(monkeypatch, tmp_path):
    monkeypatch.setattr(message, "load_message", lambda s: 1 / 0)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stderr = io.StringIO()
    code = main(["/SMTP_SERVER=smtp.test", *BASIC], {}, io.StringIO(), stderr)
    assert code == ExitCode.INTERNAL
    [crash] = list(tmp_path.glob("smail-crash-*.log"))
    assert str(crash) in stderr.getvalue() and "ZeroDivisionError" in crash.read_text(encoding="utf-8")


CANARIES = {"SMTP_PASSWORD": "Canary-Pw-7f3a9", "O365_SECRET": "Canary-Secret-2b8c",
            "O365_CERT_PASSWORD": "Canary-CertPw-5d1e"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
@pytest.mark.parametrize("password_ok", [True, False])
def test_canary_secrets_never_reach_any_output(run_smail, smtpd, tmp_path, files, mechanism, password_ok):
    token = "Canary-Token-9e4f"
    handler = RecordingHandler(passwords={"u@x.test": CANARIES["SMTP_PASSWORD"] if password_ok else "other"})
    others = {"CRAM-MD5", "LOGIN", "PLAIN", "XOAUTH2"} - {mechanism}
    server = smtpd(handler, auth_exclude_mechanism=sorted(others))
    error_file, eml = tmp_path / "err.txt", tmp_path / "saved.eml"
    secret_file = files("secret.txt", CANARIES["O365_SECRET"])
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u@x.test",
                       f"/SMTP_PASSWORD={CANARIES['SMTP_PASSWORD']}",
                       f"/O365_CERT_PASSWORD={CANARIES['O365_CERT_PASSWORD']}",
                       f"/ERROR_FILE={error_file}", f"/SAVE_EML={eml}",
                       env={"SMAIL_O365_SECRET_FILE": str(secret_file), "LANG": "C",
                            "SMAIL_HEADER": f"X-Token: {token}"})
    assert result.exit_code == (ExitCode.OK if password_ok else ExitCode.AUTH)
    outputs = result.output + (error_file.read_text() if error_file.exists() else "") + \
        eml.read_text(errors="replace")
    for canary in CANARIES.values():
        assert canary not in outputs


def test_canary_on_parameter_failure(run_smail):
    result = run_smail("/SMTP_PASSWORD=Canary-Pw-7f3a9", "/RETRY=0")
    assert result.exit_code == ExitCode.PARAM
    assert "Canary-Pw-7f3a9" not in result.output


def test_canary_bad_value_of_a_secret_option_is_masked(run_smail):
    result = run_smail("/MODE=GRAPH", "/O365_SECRET=Canary-Secret-2b8c", "/O365_TENANT_ID=t")
    assert "Canary-Secret-2b8c" not in result.output


# -- fuzzing: arbitrary argv never crashes, never exits 7 ----------------------------------

NAMES = [o.name for o in OPTIONS] + ["HELP", "?", "NOPE", "SMTP-SERVER", "to", "Bodyfile", ""]
VALUE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\:")
values = st.one_of(st.text(VALUE_CHARS, max_size=40),
                   st.sampled_from(["", "=", '"', "'", "\r\n", "\0", "é", "x" * 5000, "*", "?", "@",
                                    "a@b.test", "Name <a@b.test>", '"A, B" <a@b.test>', "0", "-1",
                                    "99999999999999999999", "YES", "GRAPH", "SMTP"]))
token = st.one_of(
    st.builds(lambda p, n, v: f"{p}{n}={v}", st.sampled_from(["/", "-", "--"]), st.sampled_from(NAMES), values),
    st.builds(lambda p, n: f"{p}{n}", st.sampled_from(["/", "-", "--", "@"]), st.sampled_from(NAMES)),
    st.text(VALUE_CHARS, max_size=20))


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=st.lists(token, max_size=12))
def test_arbitrary_argv_never_crashes(argv, tmp_path_factory):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([*argv, "/DRY_RUN", "/LOG_LEVEL=ERROR"], {}, stdout, stderr)
    assert code != ExitCode.INTERNAL, stderr.getvalue()
    assert code in set(ExitCode)
    assert "Traceback" not in stderr.getvalue()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths a test (or the fuzzer) writes stay here


def test_progress_bar_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True
    assert cli._progress_bar(io.StringIO()) is None
    screen = Terminal()
    show = cli._progress_bar(screen)
    show("archive.zip", 1 << 20, 4 << 20)
    show("archive.zip", 4 << 20, 4 << 20)
    assert screen.getvalue() == ("\rarchive.zip [#####               ]  25% (1.0/4.0 MiB)"
                                 "\rarchive.zip [####################] 100% (4.0/4.0 MiB)\n")


def test_unopenable_log_file_still_sends_and_prints_no_library_noise(run_smail, smtpd, tmp_path, tls_ca):
    server = smtpd(RecordingHandler(), tls_context=tls_ca.server_context())
    result = run_smail(*server.options, *BASIC, f"/LOG={tmp_path}/missing-folder/smail.log",
                       "/SSL_VERSION=TLSV1_2", "/SSL_NO_VERIFY")
    assert result.exit_code == ExitCode.OK
    assert result.stderr.startswith("The log file could not be opened")
    assert result.stderr.count("\n") == 1  # the /SSL_NO_VERIFY warning went nowhere, not to stderr
