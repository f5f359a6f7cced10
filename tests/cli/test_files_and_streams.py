"""Files and streams an unattended run meets: outputs that are devices, FIFOs, symlinks or
folders; inputs that are devices, FIFOs, folders or huge; an output naming an input or
another output; attachments changing while they are sent; closed or broken console streams;
many processes sharing one log and one result file; options read where they are written."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, read_line

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")
NOWHERE = ("/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=1")
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, /dev/* and POSIX shells")
ROOT = Path(__file__).resolve().parents[2]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR)\s+smail[.\w]*: ")


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SMAIL_")}
    env.update({"LANG": "en_US.UTF-8", "TMPDIR": str(tmp_path), "TEMP": str(tmp_path), "TMP": str(tmp_path)})
    # `python -m smail` from another folder: the checkout may not be installed (the Windows CI cells).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def smail_process(*args: str, cwd: Path, timeout: float = 20, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "smail", *args], capture_output=True, cwd=cwd,
                          env=environ(cwd), timeout=timeout, **kwargs)  # type: ignore[call-overload]


def no_crash(text: str) -> None:
    assert "Traceback" not in text and "internal error" not in text, text


# -- /ERROR_FILE that is not a plain file ----------------------------------------------------------

@POSIX_ONLY
def test_error_file_symlink_on_success_keeps_the_link_and_its_target(smtpd, run_smail, tmp_path):
    server = smtpd(RecordingHandler())
    target = tmp_path / "precious.txt"
    target.write_text("not SMail's\n", encoding="utf-8")
    link = tmp_path / "error.txt"
    link.symlink_to(target)
    result = run_smail(*server.options, *BASIC, f"/ERROR_FILE={link}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert target.read_text(encoding="utf-8") == "not SMail's\n"
    assert link.is_symlink()


@POSIX_ONLY
@pytest.mark.parametrize("on_success", ["DELETE", "EMPTY"])
def test_error_file_fifo_is_neither_removed_nor_blocked_on(smtpd, tmp_path, on_success):
    server = smtpd(RecordingHandler())
    fifo = tmp_path / "error.fifo"
    os.mkfifo(fifo)
    for args, expected in ((BASIC, ExitCode.OK), ([*BASIC, "/TO=not-an-address"], ExitCode.PARAM)):
        proc = smail_process(*server.options, *args, f"/ERROR_FILE={fifo}", f"/ERROR_FILE_ON_SUCCESS={on_success}",
                             cwd=tmp_path, timeout=10)
        no_crash(proc.stderr.decode())
        assert proc.returncode == expected, proc.stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@POSIX_ONLY
def test_error_file_that_is_a_device_on_success_stays_a_device(smtpd, run_smail, tmp_path):
    """/ERROR_FILE=/dev/null, tested on a copy of /dev/null made with mknod (never on the real
    one: a regression must not break the machine running the tests)."""
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    server = smtpd(RecordingHandler())
    result = run_smail(*server.options, *BASIC, f"/ERROR_FILE={device}")
    assert result.exit_code == ExitCode.OK
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    failed = run_smail(*server.options, *BASIC, "/TO=not-an-address", f"/ERROR_FILE={device}")
    assert failed.exit_code == ExitCode.PARAM
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_error_file_naming_a_folder_is_exit_2_and_the_folder_is_untouched(run_smail, tmp_path):
    folder = tmp_path / "errors"
    folder.mkdir()
    (folder / "keep.txt").write_text("x", encoding="utf-8")
    result = run_smail(*NOWHERE, *BASIC, f"/ERROR_FILE={folder}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "/ERROR_FILE" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]


# -- inputs that are not regular files -------------------------------------------------------------

INPUTS = ["@", "/CONFIG=", "/BODY_FILE=", "/SMTP_PASSWORD_FILE=", "/CA_FILE=", "/ATTACH=", "/SMTP_TOKEN_FILE="]


def _input_args(option: str, path: str) -> list[str]:
    args = [*NOWHERE, "/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/DRY_RUN"]
    if option != "/BODY_FILE=":
        args.append("/BODY=x")
    if option in ("/SMTP_PASSWORD_FILE=", "/SMTP_TOKEN_FILE="):
        args.append("/SMTP_USERNAME=u")
    if option == "/CA_FILE=":
        args.append("/SSL_VERSION=TLSV1_2")
    return [*args, option + path]


@POSIX_ONLY
@pytest.mark.parametrize("option", INPUTS)
@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder"])
def test_input_that_is_a_fifo_device_or_folder_is_exit_8_at_once(tmp_path, option, kind):
    path = {"fifo": tmp_path / "pipe", "dev_zero": Path("/dev/zero"), "folder": tmp_path / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    started = time.monotonic()
    proc = smail_process(*_input_args(option, str(path)), cwd=tmp_path, timeout=10)
    assert time.monotonic() - started < 5
    no_crash(proc.stderr.decode())
    assert proc.returncode == ExitCode.FILE_NOT_FOUND, proc.stderr
    assert str(path) in proc.stderr.decode()


_PEAK_RSS = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.buffer.write(proc.stderr)
scale = 1 if sys.platform == "darwin" else 1024
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale)
sys.exit(proc.returncode)
"""


@pytest.mark.parametrize("option", ["/CONFIG=", "@"])
def test_a_100_mb_configuration_file_is_exit_8_promptly(tmp_path, option):
    huge = tmp_path / "huge.ini"
    with open(huge, "wb") as stream:
        stream.write(b"[smail]\nsubject=")
        stream.truncate(100 * 1024 * 1024)
    started = time.monotonic()
    if sys.platform == "win32":
        proc = smail_process(*_input_args(option, str(huge)), cwd=tmp_path, timeout=15)
    else:  # measured by a parent of its own, so that no other test's processes count
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, sys.executable, "-m", "smail",
                               *_input_args(option, str(huge))], capture_output=True, cwd=tmp_path,
                              env=environ(tmp_path), timeout=15)
        assert int(proc.stdout.decode().split()[-1]) < 100 * 1024 * 1024  # never the whole file in memory
    assert time.monotonic() - started < 5
    assert proc.returncode == ExitCode.FILE_NOT_FOUND, proc.stderr
    assert "huge.ini" in proc.stderr.decode()


# -- an output naming an input, or another output -------------------------------------------------

@pytest.mark.parametrize("case", ["save_eml_is_body", "log_is_attachment", "error_file_is_config",
                                  "result_file_is_response_file", "log_is_password_file"])
def test_output_naming_an_input_is_exit_2_and_the_input_is_unchanged(smtpd, run_smail, files, tmp_path, case):
    handler = RecordingHandler()
    server = smtpd(handler)
    body = files("body.txt", "Corps du message\n")
    attachment = files("facture.pdf", b"%PDF-1.4 binary \x00\xff")
    config = files("smail.ini", "[smail]\nsubject=Depuis le fichier\n")
    response = files("options.txt", "/SUBJECT=Depuis @file\n")
    password = files("password.txt", "hunter2-but-longer\n")
    base = [*server.options, "/FROM_ADDR=albert@demo.test", "/TO=client@test.test"]
    args = {
        "save_eml_is_body": [f"/BODY_FILE={body}", f"/SAVE_EML={body}"],
        "log_is_attachment": ["/BODY=x", f"/ATTACH={attachment}", f"/LOG={attachment}"],
        "error_file_is_config": ["/BODY=x", f"/CONFIG={config}", f"/ERROR_FILE={config}"],
        "result_file_is_response_file": ["/BODY=x", f"@{response}", f"/RESULT_FILE={response}"],
        "log_is_password_file": ["/BODY=x", "/SMTP_USERNAME=u", f"/SMTP_PASSWORD_FILE={password}", f"/LOG={password}"],
    }[case]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    result = run_smail(*base, *args)
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "names a file SMail reads" in result.stderr
    assert handler.received == []
    for name, content in before.items():
        assert (tmp_path / name).read_bytes() == content, name


@pytest.mark.parametrize("first, second", [("/LOG", "/ERROR_FILE"), ("/LOG", "/SAVE_EML"), ("/SAVE_EML", "/RESULT_FILE"),
                                           ("/LOG", "/RESULT_FILE")])
def test_two_outputs_naming_one_file_are_exit_2_before_sending(smtpd, run_smail, tmp_path, first, second):
    """BUG: nothing stops two outputs from naming the same file. /LOG=run.txt with
    /ERROR_FILE=run.txt deletes the log on success; /LOG with /SAVE_EML appends log lines to
    "the exact message sent"; /RESULT_FILE replaces the saved message or the log."""
    handler = RecordingHandler()
    server = smtpd(handler)
    shared = tmp_path / "run.txt"
    result = run_smail(*server.options, *BASIC, f"{first}={shared}", f"{second}={shared}", log=False)
    assert result.exit_code == ExitCode.PARAM, (result.stdout, result.stderr)
    assert first in result.stderr and second in result.stderr
    assert handler.received == []


def test_attach_wildcard_never_picks_up_the_log_smail_itself_creates(smtpd, run_smail, tmp_path):
    """BUG: /ATTACH=<folder>/*.txt with /LOG=<folder>/smail.txt, when the log does not exist
    yet: the output check ran before the log was created, then the wildcard was expanded and
    matched the log, which grew while it was sent: exit 8 "smail.txt changed while the message
    was being sent". Right: exit 2, nothing sent, as when the log already exists (the wildcard
    may match the log SMail writes)."""
    handler = RecordingHandler()
    server = smtpd(handler)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "ventes.txt").write_text("ventes\n", encoding="utf-8")
    log = reports / "smail.txt"
    result = run_smail(*server.options, *BASIC, f"/ATTACH={reports / '*.txt'}", f"/LOG={log}", "/LOG_LEVEL=DEBUG")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "smail.txt" in result.stderr and handler.received == []


# -- attachments changing while they are sent ------------------------------------------------------

class SlowReader:
    """Reads DATA; after `after` bytes calls `change()` once, then keeps reading slowly."""

    def __init__(self, change: Callable[[], None], after: int = 1_000_000) -> None:
        self.change, self.after = change, after
        self.complete = 0
        self.changed = threading.Event()

    def __call__(self, conn) -> None:  # type: ignore[no-untyped-def]
        conn.sendall(b"220 slow.test ESMTP\r\n")
        while True:
            line = read_line(conn)
            if not line:
                return
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
            if verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = bytearray()
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                    if len(data) > self.after and not self.changed.is_set():
                        self.change()
                        self.changed.set()
                    time.sleep(0.001)
                self.complete += 1
                conn.sendall(b"250 2.0.0 Ok: queued as 9C\r\n")
                continue
            conn.sendall(b"221 bye\r\n" if verb == b"QUIT" else b"250 ok\r\n")
            if verb == b"QUIT":
                return


def _truncate(path: Path) -> None:
    os.truncate(path, 1000)


def _grow(path: Path) -> None:
    with open(path, "ab") as stream:
        stream.write(b"one more line\n")


def _rewrite_in_place(path: Path) -> None:
    with open(path, "r+b") as stream:
        stream.seek(10)
        stream.write(b"REWRITTEN")


def _delete(path: Path) -> None:
    path.unlink()


def _replace(path: Path) -> None:
    other = path.with_name("new.bin")
    other.write_bytes(b"z" * path.stat().st_size)
    os.replace(other, path)


CHANGES = [pytest.param(_truncate, id="truncated"), pytest.param(_grow, id="grown"),
           pytest.param(_rewrite_in_place, id="rewritten"),
           pytest.param(_delete, id="deleted", marks=POSIX_ONLY), pytest.param(_replace, id="replaced", marks=POSIX_ONLY)]


@pytest.mark.parametrize("change", CHANGES)
def test_attachment_changing_mid_transfer_is_exit_8_and_never_delivered(scripted, run_smail, tmp_path, change):
    attachment = tmp_path / "export.bin"
    attachment.write_bytes(os.urandom(20 * 1024 * 1024))
    reader = SlowReader(lambda: change(attachment))
    server = scripted(reader)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}", "/RETRY=3", "/RETRY_DELAY=0.01")
    assert reader.changed.wait(60)
    assert result.exit_code == ExitCode.FILE_NOT_FOUND, result.stderr
    assert str(attachment) in result.stderr and "nothing was sent" in result.stderr
    assert reader.complete == 0
    assert server.connections == 1  # not retried


def test_unchanged_large_attachment_through_the_slow_server_is_delivered(scripted, run_smail, tmp_path):
    attachment = tmp_path / "export.bin"
    attachment.write_bytes(os.urandom(20 * 1024 * 1024))
    reader = SlowReader(lambda: None)
    server = scripted(reader)
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert reader.complete == 1


# -- console streams and a full disk ---------------------------------------------------------------

@POSIX_ONLY
def test_log_on_a_full_disk_after_a_success_is_exit_0_with_one_warning(smtpd, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    proc = smail_process(*server.options, *BASIC, "/LOG=/dev/full", "/LOG_LEVEL=DEBUG", cwd=tmp_path)
    err = proc.stderr.decode()
    no_crash(err)
    assert proc.returncode == ExitCode.OK
    assert err.count("\n") == 1 and "/dev/full" in err
    assert proc.stdout.decode().startswith("Message sent to 1 recipient")
    assert len(handler.received) == 1


@POSIX_ONLY
@pytest.mark.parametrize("redirections", ["1>&-", "2>&-", "1>&- 2>&- 0<&-", ">/dev/full", "2>/dev/full"])
@pytest.mark.parametrize("failing", [False, True])
def test_closed_or_full_console_streams_do_not_change_the_exit_code(smtpd, tmp_path, redirections, failing):
    handler = RecordingHandler()
    server = smtpd(handler)
    args = [*server.options, *BASIC, *(["/TO=not-an-address"] if failing else [])]
    script = f'exec "$@" {redirections}'
    proc = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "smail", *args], capture_output=True,
                          env=environ(tmp_path), cwd=tmp_path, timeout=20)
    no_crash(proc.stderr.decode())
    assert proc.returncode == (ExitCode.PARAM if failing else ExitCode.OK), proc.stderr
    assert len(handler.received) == (0 if failing else 1)
    assert list(tmp_path.glob("smail-crash-*")) == []


def test_stdout_a_pipe_nobody_reads_does_not_change_the_exit_code(smtpd, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    proc = subprocess.Popen([sys.executable, "-m", "smail", *server.options, *BASIC], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environ(tmp_path), cwd=tmp_path)
    assert proc.stdout is not None
    proc.stdout.close()  # like `SMail ... | head -c0`
    proc.stdout = None  # communicate() on Windows would read the closed pipe in a thread (ValueError there)
    _out, err = proc.communicate(timeout=120)
    no_crash(err.decode())
    assert proc.returncode == ExitCode.OK, err
    assert len(handler.received) == 1


# -- many processes at once ------------------------------------------------------------------------

def test_ten_processes_share_one_log_and_one_result_file(smtpd, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    log, result = tmp_path / "shared.log", tmp_path / "result.json"
    procs = [subprocess.Popen([sys.executable, "-m", "smail", *server.options, "/FROM_ADDR=albert@demo.test",
                               "/TO=client@test.test", f"/SUBJECT=run {i}", "/BODY=x", f"/LOG={log}", "/LOG_LEVEL=DEBUG",
                               f"/RESULT_FILE={result}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=environ(tmp_path), cwd=tmp_path) for i in range(10)]
    invalid: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                text = result.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            except PermissionError:  # Windows, while it is being replaced
                continue
            try:
                json.loads(text)
            except ValueError:
                invalid.append(text)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        codes = [p.wait(timeout=30) for p in procs]
    finally:
        stop.set()
        watcher.join(5)
    assert codes == [0] * 10, [p.stderr.read() for p in procs if p.stderr]
    assert invalid == []
    lines = log.read_text(encoding="utf-8").splitlines()
    assert all(TIMESTAMP.match(line) for line in lines), [line for line in lines if not TIMESTAMP.match(line)][:3]
    assert sum("Success: Message sent" in line for line in lines) == 10
    assert sum(re.search(r"smail: SMail \S+ started\.$", line) is not None for line in lines) == 10
    assert json.loads(result.read_text(encoding="utf-8"))["exit_code"] == 0
    assert len(handler.received) == 10
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# -- options read where they are written -----------------------------------------------------------

def test_lang_in_a_response_file_gives_french_errors(run_smail, files):
    response = files("fr.txt", "/LANG=FR\n")
    result = run_smail(*NOWHERE, *BASIC, f"@{response}", "/TO=pas-une-adresse")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr == "Adresse e-mail invalide : pas-une-adresse\n"


def test_lang_and_error_file_in_the_configuration_file(run_smail, files, tmp_path):
    error_file = tmp_path / "erreur.txt"
    config = files("smail.ini", f"[smail]\nlang = FR\nerror_file = {error_file}\n")
    result = run_smail(*NOWHERE, *BASIC, f"/CONFIG={config}", "/TO=pas-une-adresse")
    assert result.exit_code == ExitCode.PARAM
    assert result.stderr == "Adresse e-mail invalide : pas-une-adresse\n"
    assert error_file.read_text(encoding="utf-8") == "Adresse e-mail invalide : pas-une-adresse\n"


def test_help_asked_in_a_response_file(run_smail, files):
    response = files("help.txt", "# show the help\n/?\n")
    result = run_smail(f"@{response}", log=False)
    assert result.exit_code == ExitCode.OK
    assert "/SMTP_SERVER" in result.stdout and "Exit codes:" in result.stdout


@POSIX_ONLY
def test_a_configuration_file_that_is_a_fifo_with_a_log_in_it_does_not_hang(tmp_path):
    fifo = tmp_path / "smail.ini"
    os.mkfifo(fifo)
    proc = smail_process(*NOWHERE, *BASIC, f"/CONFIG={fifo}", "/ERROR_FILE=error.txt", cwd=tmp_path, timeout=10)
    assert proc.returncode == ExitCode.FILE_NOT_FOUND
    assert (tmp_path / "error.txt").read_text(encoding="utf-8").startswith(str(fifo))


# -- UTF-16 option files, as Notepad "Unicode" and PowerShell 5.1 (`>`, Out-File) write them -------

def _utf16(text: str) -> bytes:
    return "\ufeff".encode("utf-16-le") + text.replace("\n", "\r\n").encode("utf-16-le")


def test_utf16_response_file_is_read(smtpd, run_smail, files):
    """BUG: a response file saved as UTF-16 (with its BOM) is read as Windows-1252:
    exit 2 "Unexpected argument "ÿþ/\\x00S\\x00U..."". Body files with a UTF-16 BOM are read."""
    handler = RecordingHandler()
    server = smtpd(handler)
    response = files("options.txt", _utf16("/SUBJECT=Réunion mensuelle\n/TO=client@test.test\n"))
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/BODY=x", f"@{response}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.received[0].rcpt_tos == ["client@test.test"]
    assert b"Subject: =?utf-8?" in handler.received[0].data


def test_utf16_configuration_file_is_read(smtpd, run_smail, files):
    """BUG: exit 2 "File contains no section headers" for a UTF-16 INI file."""
    handler = RecordingHandler()
    server = smtpd(handler)
    config = files("smail.ini", _utf16("[smail]\nto = client@test.test\nsubject = Réunion\n"))
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/BODY=x", f"/CONFIG={config}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert handler.received[0].rcpt_tos == ["client@test.test"]


def test_utf16_password_file_gives_the_right_password(smtpd, run_smail, files):
    """BUG: the password is read as "ÿþS\\x003\\x00..." and the server refuses it (exit 4),
    with nothing telling the user why."""
    handler = RecordingHandler(passwords={"erp@demo.test": "S3cret!pw"})
    server = smtpd(handler)
    password = files("password.txt", _utf16("S3cret!pw\n"))
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=erp@demo.test", f"/SMTP_PASSWORD_FILE={password}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert len(handler.received) == 1


def test_quoted_list_values_in_the_configuration_file_are_unquoted(smtpd, run_smail, files):
    """BUG: in the INI file `subject = "x"` is unquoted but `to = "client@test.test"` is not
    (exit 2, invalid address), and `header = "X-Ticket: 42"` goes out as a header named
    `"X-Ticket` with the value `42"`. On the command line both are unquoted."""
    handler = RecordingHandler()
    server = smtpd(handler)
    config = files("smail.ini", '[smail]\nto = "client@test.test"\nheader = "X-Ticket: 42"\n')
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/BODY=x", f"/CONFIG={config}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [received] = handler.received
    assert received.rcpt_tos == ["client@test.test"]
    assert b"\r\nX-Ticket: 42\r\n" in received.data


@pytest.mark.parametrize("section", ["SMail", "SMAIL"])
def test_configuration_section_name_is_case_insensitive_as_in_windows_ini_files(run_smail, files, section):
    """BUG: `[SMail]` (the product's own spelling) or `[SMAIL]` is "has no [smail] section",
    exit 2; Windows reads INI section names without regard to case (GetPrivateProfileString),
    and SMail itself reads the keys and option names without regard to case."""
    config = files("smail.ini", f"[{section}]\nsubject = Depuis le fichier\n")
    result = run_smail(*NOWHERE, *BASIC, f"/CONFIG={config}", "/DRY_RUN")
    assert result.exit_code == ExitCode.OK, result.stderr


@POSIX_ONLY
def test_result_file_permissions_follow_the_umask_like_every_other_output(run_smail, tmp_path):
    """BUG: /RESULT_FILE is written through mkstemp(), so it is always 0600, whatever the
    umask, and a result file made readable to a monitoring account (chmod 644) is 0600 again
    after the next run. /LOG, /ERROR_FILE and /SAVE_EML follow the umask (0644 with 022)."""
    result_file, saved = tmp_path / "result.json", tmp_path / "saved.eml"
    previous = os.umask(0o022)
    try:
        run_smail(*NOWHERE, *BASIC, "/DRY_RUN", f"/RESULT_FILE={result_file}", f"/SAVE_EML={saved}")
        assert stat.S_IMODE(saved.stat().st_mode) == 0o644
        assert stat.S_IMODE(result_file.stat().st_mode) == 0o644
        result_file.chmod(0o644)
        run_smail(*NOWHERE, *BASIC, "/DRY_RUN", f"/RESULT_FILE={result_file}")
        assert stat.S_IMODE(result_file.stat().st_mode) == 0o644
    finally:
        os.umask(previous)


def test_timeout_out_of_range_says_what_the_range_is(run_smail):
    """BUG: /TIMEOUT=100000 is refused with "expected a number of seconds greater than 0"."""
    result = run_smail(*NOWHERE, *BASIC, "/TIMEOUT=100000", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "/TIMEOUT" in result.stderr and "86400" in result.stderr, result.stderr
