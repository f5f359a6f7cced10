"""Attacks on 1.2's promises at the command line: response files and configuration files
built to keep SMail busy, /RATE at the ends of the number line, secrets that JSON or CSV would
escape, a calling program's logging, the receipt of a run that has not ended, the French help.
Each test asserts what a user sees: exit codes, lines, files, what the server received."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import socket
import time
from pathlib import Path

import pytest

from smail.cli import main
from smail.errors import ExitCode
from tests.smtpd import read_line

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")
NOWHERE = ("/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=1")
# Everything JSON, CSV, URLs, HTML or a shell would escape or split, around a core that must
# never be seen in any output, escaped or not.
CORE = "Kx9CanaryCore"
SECRET = f'p\\a"s\'s%w&o<r>d {CORE} é ü\\'


def no_crash(code: int, text: str) -> None:
    assert code != ExitCode.INTERNAL, text
    assert "Traceback" not in text and "internal error" not in text, text


# -- response files: a bound on the whole expansion, not only on the depth --------------------

def _timed(run_smail, *args: str):
    started = time.monotonic()
    result = run_smail(*args)
    return result, time.monotonic() - started


def test_a_response_file_naming_itself_a_thousand_times_is_refused_at_once(run_smail, files):
    looping = files("loop.rsp", "\n".join(["@loop.rsp"] * 1000) + "\n")
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"@{looping}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "loop.rsp" in result.stderr and result.stderr.count("\n") == 1
    assert elapsed < 3, elapsed  # well under a second on an idle machine


def test_response_files_naming_each_other_are_bounded_in_total(run_smail, files, tmp_path):
    # Eight files, each naming the next fifty times: 50**8 expansions if only depth counted.
    for n in range(8):
        files(f"r{n}.rsp", "\n".join([f"@r{n + 1}.rsp"] * 50 if n < 7 else ["/QUIET"]) + "\n")
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"@{tmp_path / 'r0.rsp'}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert ".rsp" in result.stderr and "too much" in result.stderr
    assert elapsed < 3, elapsed


def test_big_response_files_count_against_one_budget(run_smail, files, tmp_path):
    comment = "# " + "x" * 1000 + "\n"
    for n in range(3):  # 3 x 2 MB of comments, each naming the next twice
        files(f"big{n}.rsp", comment * 2000 + f"@big{n + 1}.rsp\n@big{n + 1}.rsp\n" if n < 2 else "/QUIET\n")
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"@{tmp_path / 'big0.rsp'}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "big" in result.stderr
    assert elapsed < 5, elapsed


def test_ordinary_nested_response_files_still_work(run_smail, files):
    files("inner.rsp", "/SUBJECT=From the inner file\n")
    outer = files("outer.rsp", "# connection\n/SMTP_SERVER=127.0.0.1\n@inner.rsp\n@inner.rsp\n")
    result = run_smail(f"@{outer}", "/FROM_ADDR=a@demo.test", "/TO=b@test.test", "/BODY=x", "/DRY_RUN")
    assert result.exit_code == ExitCode.OK, result.stderr


# -- /CONFIG built to be slow -----------------------------------------------------------------

def test_a_configuration_file_with_100000_unknown_keys_is_refused_quickly(run_smail, files):
    ini = files("huge.ini", "[smail]\n" + "".join(f"unknown_key_{n} = value\n" for n in range(100_000)))
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"/CONFIG={ini}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "huge.ini" in result.stderr and result.stderr.count("\n") == 1
    assert elapsed < 5, elapsed


def test_a_configuration_file_with_thousands_of_unknown_keys_names_the_first(run_smail, files):
    ini = files("many.ini", "[smail]\n" + "".join(f"unknown_key_{n} = value\n" for n in range(9_000)))
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"/CONFIG={ini}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert "many.ini" in result.stderr and "unknown_key_0" in result.stderr
    assert elapsed < 5, elapsed


def test_an_unknown_key_of_a_huge_name_is_no_slow_typo_hint(run_smail, files):
    ini = files("long.ini", "[smail]\n" + "SMTP_SERVERX" * 20_000 + " = x\n")
    result, elapsed = _timed(run_smail, *NOWHERE, *BASIC, f"/CONFIG={ini}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM, result.stderr[:300]
    assert elapsed < 5, elapsed


# -- /RATE at the ends of the number line -------------------------------------------------------

@pytest.mark.parametrize("value", ["0/S", "0.00001/H", "1e400/S", "9" * 400 + "/MIN", "1000001/S",
                                   "99999999999999999999999/H", "1/" , "-5/MIN", "0,1/H"])
def test_a_rate_out_of_a_sane_range_is_exit_2(run_smail, value):
    result = run_smail(*NOWHERE, *BASIC, f"/RATE={value}", "/DRY_RUN")
    no_crash(result.exit_code, result.output)
    assert result.exit_code == ExitCode.PARAM
    assert "/RATE" in result.stderr


@pytest.mark.parametrize("value", ["1/H", "30/MIN", "2/S", "1000/S", "0,5/MIN", "3600/H"])
def test_rates_in_range_are_accepted(run_smail, value):
    result = run_smail(*NOWHERE, *BASIC, f"/RATE={value}", "/DRY_RUN")
    assert result.exit_code == ExitCode.OK, result.stderr


# -- secrets that escaping would change: masked before encoding, in every output ---------------

def _echoing_server(scripted, reply: str):
    """A server offering AUTH PLAIN that answers it with `reply`, the password echoed in it."""
    def script(conn: socket.socket) -> None:
        conn.sendall(b"220 echo.test ESMTP\r\n")
        while line := read_line(conn):
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                conn.sendall((reply.format(secret=SECRET) + "\r\n").encode("utf-8"))
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")
    return scripted(script)


def _every_output(tmp_path: Path) -> str:
    texts = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix not in (".rsp",) and path.name != "rows.csv":
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_a_secret_full_of_escapes_is_masked_in_every_output_of_a_refused_login(scripted, run_smail, tmp_path):
    server = _echoing_server(scripted, "535 5.7.8 password {secret} is wrong")
    outputs = [f"/LOG={tmp_path / 'smail.log'}", "/LOG_LEVEL=DEBUG", f"/ERROR_FILE={tmp_path / 'error.txt'}",
               f"/RESULT_FILE={tmp_path / 'result.json'}", f"/SAVE_EML={tmp_path / 'saved.eml'}"]
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={SECRET}", *outputs)
    assert result.exit_code == ExitCode.AUTH, result.stderr
    document = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    assert "****" in document["message"]
    for text in (result.stdout, result.stderr, _every_output(tmp_path)):
        assert CORE not in text


def test_a_secret_full_of_escapes_is_masked_in_the_results_of_a_batch(scripted, run_smail, tmp_path, files):
    server = _echoing_server(scripted, "535 5.7.8 password {secret} is wrong")
    rows = files("rows.csv", "TO,name\r\na@test.test,A\r\nb@test.test,B\r\n")
    result = run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT=Hi {{ name }}", "/BODY=x",
                       "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={SECRET}", f"/BATCH={rows}",
                       f"/BATCH_RESULT={tmp_path / 'results.csv'}", f"/RESULT_FILE={tmp_path / 'result.json'}",
                       f"/ERROR_FILE={tmp_path / 'error.txt'}")
    assert result.exit_code == ExitCode.AUTH, result.stderr
    for text in (result.stdout, result.stderr, _every_output(tmp_path)):
        assert CORE not in text


def test_a_secret_full_of_escapes_is_masked_in_the_outbox(scripted, run_smail, tmp_path):
    server = _echoing_server(scripted, "454 4.7.0 password {secret} locked for now")
    box = tmp_path / "Outbox"
    result = run_smail(*server.options, *BASIC, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={SECRET}",
                       f"/OUTBOX={box}", f"/RESULT_FILE={tmp_path / 'result.json'}")
    assert result.exit_code == ExitCode.QUEUED, result.stderr
    assert list(box.glob("*/status.json"))
    for text in (result.stdout, result.stderr, _every_output(tmp_path)):
        assert CORE not in text


def test_masking_comes_before_json_escaping_in_the_result_file(tmp_path):
    from smail import redact
    from smail.receipt import Receipt, Status, run_result, write_result

    redact.forget_all()
    redact.remember(SECRET)
    try:
        receipt = Receipt(status=Status.REFUSED, error=f"refused: {SECRET}", reply=f"535 {SECRET}",
                          source={"row": 2, SECRET: SECRET})
        write_result(tmp_path / "r.json", run_result(ExitCode.AUTH, f"the password {SECRET}", [receipt]))
    finally:
        redact.forget_all()
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert CORE not in text and json.loads(text)["message"] == "the password ****"


# -- a program calling main() keeps its own logging -----------------------------------------------

def test_a_program_calling_main_keeps_its_logging_level_and_handlers(tmp_path):
    root = logging.getLogger()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)
    mine = Keep()
    before_level, before_handlers = root.level, list(root.handlers)
    smail_logger = logging.getLogger("smail")
    smail_before = (smail_logger.level, list(smail_logger.handlers), smail_logger.propagate)
    root.addHandler(mine)
    root.setLevel(logging.WARNING)
    try:
        for level in ("DEBUG", "INFO", "ERROR"):
            code = main([*NOWHERE, *BASIC, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={SECRET}",
                         f"/LOG={tmp_path / 'smail.log'}", f"/LOG_LEVEL={level}", "/TIMEOUT=5"],
                        {"LANG": "C"}, io.StringIO(), io.StringIO())
            assert code == ExitCode.CONNECT
            assert root.level == logging.WARNING
            assert root.handlers == [*before_handlers, mine]
            assert (smail_logger.level, smail_logger.handlers, smail_logger.propagate) == smail_before
            # Servers and libraries beside SMail were never switched to DEBUG.
            assert not logging.getLogger("mail.log").isEnabledFor(logging.INFO)
    finally:
        root.removeHandler(mine)
        root.setLevel(before_level)
    # SMail's own records went to its log, not through the program's handlers (which would
    # see them before SMail's redacting filter).
    assert not [r for r in seen if r.name.startswith("smail")]
    log = (tmp_path / "smail.log").read_text(encoding="utf-8")
    assert "refused the connection" in log and CORE not in log


# -- /RESULT_FILE while the run goes on ----------------------------------------------------------

def test_the_result_file_says_running_until_the_run_replaces_it(scripted, run_smail, tmp_path):
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps({"exit_code": 0, "exit_name": "EXIT_OK", "message": "old success"}))
    seen: list[dict] = []

    def script(conn: socket.socket) -> None:
        seen.append(json.loads(result_file.read_text(encoding="utf-8")))  # while SMail waits
        conn.sendall(b"421 4.3.2 not now\r\n")
    server = scripted(script)
    result = run_smail(*server.options, *BASIC, f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.CONNECT
    [during] = seen
    assert during["status"] == "running" and during["exit_code"] is None
    assert "old success" not in json.dumps(during)
    after = json.loads(result_file.read_text(encoding="utf-8"))
    assert after["status"] == "finished" and after["exit_code"] == ExitCode.CONNECT


def test_a_failure_names_the_server_it_tried_in_the_result_file(run_smail, tmp_path):
    result_file = tmp_path / "result.json"
    result = run_smail(*NOWHERE, *BASIC, f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.CONNECT
    [message] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert message["server"] == "127.0.0.1:1" and message["status"] == "failed"


def test_a_dry_run_receipt_says_who_it_would_be_sent_to(run_smail, tmp_path):
    result_file = tmp_path / "result.json"
    result = run_smail(*NOWHERE, *BASIC, "/CC=copy@test.test", "/DRY_RUN", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.OK
    assert "would be sent to 2 recipients" in result.stdout
    [message] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert message["accepted"] == [] and message["would_be_sent_to"] == ["client@test.test", "copy@test.test"]


def test_a_dry_run_batch_receipt_says_who_it_would_be_sent_to(run_smail, tmp_path, files):
    rows = files("rows.csv", "TO,name\r\na@test.test,A\r\n")
    result_file = tmp_path / "result.json"
    result = run_smail(*NOWHERE, "/FROM_ADDR=a@demo.test", "/SUBJECT=Hi {{ name }}", "/BODY=x",
                       f"/BATCH={rows}", "/DRY_RUN", f"/RESULT_FILE={result_file}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [message] = json.loads(result_file.read_text(encoding="utf-8"))["messages"]
    assert message["accepted"] == [] and message["would_be_sent_to"] == ["a@test.test"]


# -- the first contact: no arguments, the French help --------------------------------------------

def test_smail_without_arguments_points_to_the_help():
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([], {"LANG": "en_US.UTF-8"}, stdout, stderr)
    assert code == ExitCode.PARAM
    assert "SMail /?" in stderr.getvalue() and stderr.getvalue().count("\n") == 1


def test_french_help_is_french_placeholders_and_examples_included():
    stdout = io.StringIO()
    assert main(["/LANG=FR", "/?"], {}, stdout, io.StringIO()) == ExitCode.OK
    text = stdout.getvalue()
    assert "/LOG=chemin" in text and "/BODY_FILE=chemin" in text and "/TO=adresses" in text
    assert not re.findall(r"=(?:path|text|files|folder|address|addresses|name|host|password)\b", text)
    for english in ("Invoice", "user@example.com", "X-Name: value", " log "):
        assert english not in text, english


def test_batch_results_with_a_secret_are_valid_csv(scripted, run_smail, tmp_path, files):
    server = _echoing_server(scripted, "535 5.7.8 password {secret} is wrong")
    rows = files("rows.csv", "TO,name\r\na@test.test,A\r\n")
    results = tmp_path / "results.csv"
    run_smail(*server.options, "/FROM_ADDR=a@demo.test", "/SUBJECT=Hi {{ name }}", "/BODY=x",
              "/SMTP_USERNAME=u", f"/SMTP_PASSWORD={SECRET}", f"/BATCH={rows}", f"/BATCH_RESULT={results}")
    lines = list(csv.reader(io.StringIO(results.read_text(encoding="utf-8-sig"))))
    assert all(len(line) == len(lines[0]) for line in lines)
    assert all(CORE not in cell for line in lines for cell in line)
