"""Hostile input: bytes that are not UTF-8, control characters, line breaks, odd charsets,
malformed options carrying secrets, huge values; in-process and as real processes with raw
bytes in argv and in the environment. Bad input is exit 2 (or 8), never exit 7, never a
traceback, never a secret on the console or in the log."""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smail.errors import ExitCode
from tests.smtpd import RecordingHandler, free_port

BASIC = ("/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/SUBJECT=Hello", "/BODY=Bonjour")
NOWHERE = ("/SMTP_SERVER=127.0.0.1", "/SMTP_PORT=1")
POSIX_ONLY = pytest.mark.skipif(sys.platform == "win32", reason="raw bytes in argv, file names and environment: POSIX")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def no_crash(code: int, text: str) -> None:
    assert code != ExitCode.INTERNAL, text
    assert "Traceback" not in text and "internal error" not in text, text


def smail_process(*args: str | bytes, cwd: Path, env: dict[bytes, bytes] | None = None,
                  timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """A real SMail process with raw bytes arguments; crash reports go to cwd, not /tmp."""
    environ = {key: value for key, value in os.environb.items() if not key.upper().startswith(b"SMAIL_")}
    environ.update({b"LANG": b"en_US.UTF-8", b"TMPDIR": os.fsencode(cwd)})
    environ.update(env or {})
    argv = [os.fsencode(sys.executable), b"-m", b"smail",
            *[a if isinstance(a, bytes) else a.encode("utf-8") for a in args]]
    return subprocess.run(argv, capture_output=True, env=environ, cwd=cwd, timeout=timeout)


def crash_reports(folder: Path) -> list[Path]:
    return sorted(folder.glob("smail-crash-*"))


# -- undecodable bytes -------------------------------------------------------------------------
# POSIX hands bytes that are not UTF-8 to Python as lone surrogates U+DC80-U+DCFF (PEP 383);
# Windows hands invalid UTF-16 over as lone surrogates U+D800-U+DFFF. Either reaches main().

SURROGATE_VALUES = [
    "/SUBJECT=\udcff\udcfe",
    "/SUBJECT=Facture \ud800",
    "/FROM_NAME=caf\udce9",
    "/TO=\udcff@test.test",
    "/TO=J\udce9r\udcf4me <jerome@test.test>",
    "/CC=caf\udce9@test.test",
    "/FROM_ADDR=\udcffalbert@demo.test",
    "/REPLY_TO=r\udce9ponse@test.test",
    "/HEADER=X-Note: caf\udce9",
    "/BODY=caf\udce9 cr\udce8me",
]


@pytest.mark.parametrize("option", SURROGATE_VALUES)
def test_undecodable_bytes_in_a_message_option_are_not_a_crash(run_smail, option):
    """BUG: every one of these exits 7 ("SMail stopped on an internal error") with a
    UnicodeEncodeError: surrogates not allowed."""
    name = option.split("=", 1)[0]
    others = [a for a in BASIC if not a.startswith(f"{name}=")]
    result = run_smail(*NOWHERE, *others, option, "/DRY_RUN")
    no_crash(result.exit_code, result.output)
    assert result.exit_code == ExitCode.OK, result.stderr  # surrogates become U+FFFD, the message is built


@POSIX_ONLY
@pytest.mark.parametrize("arg", [b"/SUBJECT=\xff\xfe", b"/FROM_NAME=Ren\xe9", b"/TO=\xe9lise@test.test",
                                 b"/HEADER=X-Site: Montr\xe9al", b"/BODY=\xe9t\xe9 \x80"])
def test_real_process_with_latin1_bytes_in_argv(tmp_path, arg):
    """BUG: a .bat or cron job run under a Latin-1 code page passes these bytes: exit 7."""
    name = arg.split(b"=", 1)[0].decode()
    others = [a for a in BASIC if not a.startswith(f"{name}=")]
    proc = smail_process(*NOWHERE, *others, arg, "/DRY_RUN", cwd=tmp_path)
    no_crash(proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert proc.returncode == ExitCode.OK, proc.stderr  # the bytes read as the ANSI code page
    assert crash_reports(tmp_path) == []


@POSIX_ONLY
def test_real_process_with_latin1_bytes_in_a_smail_variable(tmp_path):
    """BUG: SMAIL_SUBJECT holding non-UTF-8 bytes: exit 7."""
    others = [a for a in BASIC if not a.startswith("/SUBJECT=")]
    proc = smail_process(*NOWHERE, *others, "/DRY_RUN", cwd=tmp_path, env={b"SMAIL_SUBJECT": b"R\xe9sum\xe9"})
    no_crash(proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert proc.returncode == ExitCode.OK, proc.stderr


@POSIX_ONLY
@pytest.mark.parametrize("arg, env, expected", [
    (b"/\xff=1", {}, ExitCode.PARAM),  # no such option
    (b"\xff\xfe", {}, ExitCode.PARAM),  # a stray argument
    (b"/LANG=\xff", {}, ExitCode.PARAM),  # no such language
    (b"/SMTP_SERVER=\xff.test", {}, ExitCode.OK),  # a name like another: /DRY_RUN connects nowhere
    (b"/ATTACH=\xff.pdf", {}, ExitCode.FILE_NOT_FOUND),
    # SMAIL_\xff is no option and is ignored (as any unknown variable); SMAIL_LANG=\xff is not
    # a language: exit 2, as /LANG=\xff.
    (b"/LOG_LEVEL=INFO", {b"SMAIL_\xff": b"1", b"SMAIL_LANG": b"\xff", b"LANGUAGE": b"\xff"}, ExitCode.PARAM),
])
def test_real_process_with_undecodable_names_and_values_that_work_today(tmp_path, arg, env, expected):
    proc = smail_process(*NOWHERE, *BASIC, arg, "/DRY_RUN", cwd=tmp_path, env=env)
    no_crash(proc.returncode, proc.stderr.decode("utf-8", "replace"))
    assert proc.returncode == expected, proc.stderr
    assert proc.stderr.decode("utf-8").count("\n") <= 1  # printable: U+FFFD, one line


@pytest.mark.parametrize("user, password", [("u", "p\udce4sswort"), ("\udcffuser", "secret-pw")])
def test_undecodable_credentials_on_a_real_login_are_not_a_crash(smtpd, run_smail, user, password):
    """BUG: exit 7 in the SASL exchange (UnicodeEncodeError in cram_md5/plain)."""
    handler = RecordingHandler(passwords={"u": "right"})
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, f"/SMTP_USERNAME={user}", f"/SMTP_PASSWORD={password}")
    no_crash(result.exit_code, result.output)
    assert result.exit_code == ExitCode.AUTH, result.stderr  # the server refuses the login
    assert handler.received == []


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="file names that are not UTF-8: Linux")
def test_wildcard_matching_a_latin1_file_name_sends_it_under_its_readable_name(smtpd, tmp_path):
    handler = RecordingHandler()
    server = smtpd(handler)
    (tmp_path / os.fsdecode(b"caf\xe9.pdf")).write_bytes(b"%PDF-1.4 facture")
    proc = smail_process(*server.options, *BASIC, b"/ATTACH=*.pdf", cwd=tmp_path)
    assert proc.returncode == ExitCode.OK, proc.stderr
    [part] = list(parse(handler.received[0].data).iter_attachments())
    assert part.get_filename() == "café.pdf"
    assert part.get_content() == b"%PDF-1.4 facture"


# -- /BODY_CHARSET ------------------------------------------------------------------------------

@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib", "hex_codec", "quopri", "uu", "bz2", "punycode",
                                     "undefined"])
def test_body_charset_that_is_not_a_text_encoding_is_exit_2(run_smail, files, charset):
    """BUG: converters.charset() checks with b"".decode(name), which CPython answers "" for any
    codec without calling it; the body file then crashes in decode_body(): exit 7."""
    body = files("body.txt", "Bonjour, voici la facture.\n")
    others = [a for a in BASIC if not a.startswith("/BODY=")]
    result = run_smail(*NOWHERE, *others, f"/BODY_FILE={body}", f"/BODY_CHARSET={charset}", "/DRY_RUN")
    no_crash(result.exit_code, result.output)
    assert result.exit_code == ExitCode.PARAM, result.stderr
    assert charset in result.stderr


@pytest.mark.parametrize("charset", ["utf-16-be", "cp1252", "ANSI", "OEM", "utf-8"])
def test_real_text_charsets_are_accepted(smtpd, run_smail, files, charset):
    handler = RecordingHandler()
    server = smtpd(handler)
    text = "Prix : 12 EUR\n"
    encoding = {"ANSI": "cp1252", "OEM": "cp850"}.get(charset, charset)
    body = files("body.txt", text.encode(encoding))
    others = [a for a in BASIC if not a.startswith("/BODY=")]
    result = run_smail(*server.options, *others, f"/BODY_FILE={body}", f"/BODY_CHARSET={charset}")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert parse(handler.received[0].data).get_content().replace("\r\n", "\n") == text


# -- secrets in malformed options ----------------------------------------------------------------

SECRET = "Zq7-Secret-Pw!"


@pytest.mark.parametrize("tokens, hidden", [
    ([f"SMTP_PASSWORD={SECRET}"], SECRET),                 # the "/" forgotten in a .bat
    ([f"/SMTP_PASSWORD:{SECRET}"], SECRET),                # ":" instead of "="
    ([f"/SMTP_PASSWORD {SECRET}"], SECRET),                # one quoted token with a space
    ([f'"/SMTP_PASSWORD={SECRET}'], SECRET),               # a stray quote left by cmd
    ([f"/O365_SECRET:{SECRET}"], SECRET),
    ([f"SMAIL_SMTP_PASSWORD={SECRET}"], SECRET),           # the variable's assignment pasted as an argument
    ([f"SMTP_PASWORD={SECRET}"], SECRET),                  # a typo and no "/"
    (["/SMTP_PASSWORD=", SECRET], SECRET),                 # `/SMTP_PASSWORD= %PW%`: a stray space
    (["/SMTP_PASSWORD=correct", "horse-battery-staple"], "horse-battery-staple"),  # a password with a space, unquoted
    (["/O365_SECRET=", SECRET], SECRET),
])
def test_a_secret_in_a_malformed_option_is_never_echoed(run_smail, tmp_path, tokens, hidden):
    """BUG: "Unexpected argument "SMTP_PASSWORD=<the password>"", "Unknown option
    /SMTP_PASSWORD:<the password>", and "Unexpected argument "<the rest of the password>""
    after `/SMTP_PASSWORD=` print the password on stderr, in the log and in the error file."""
    error_file = tmp_path / "error.txt"
    result = run_smail(*NOWHERE, *BASIC, "/SMTP_USERNAME=u", *tokens, f"/ERROR_FILE={error_file}")
    assert result.exit_code == ExitCode.PARAM
    assert hidden not in result.output
    assert hidden not in error_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("line", [f"SMTP_PASSWORD={SECRET}", f"/SMTP_PASSWORD {SECRET}", f"-SMTP_PASSWORD:{SECRET}"])
def test_a_secret_in_a_malformed_response_file_line_is_never_echoed(run_smail, files, line):
    """BUG: same leak from an @file, where "NAME value" and a missing "/" are natural slips."""
    response = files("options.txt", f"/SMTP_USERNAME=u\n{line}\n")
    result = run_smail(*NOWHERE, *BASIC, f"@{response}")
    assert result.exit_code == ExitCode.PARAM
    assert SECRET not in result.output


@POSIX_ONLY
def test_a_secret_in_a_malformed_option_never_reaches_a_real_console(tmp_path):
    proc = smail_process(*NOWHERE, *BASIC, "/SMTP_USERNAME=u", f"SMTP_PASSWORD={SECRET}", "/LOG=run.log",
                         cwd=tmp_path)
    assert proc.returncode == ExitCode.PARAM
    assert SECRET.encode() not in proc.stdout + proc.stderr
    assert SECRET not in (tmp_path / "run.log").read_text(encoding="utf-8")


# -- control characters and line breaks -----------------------------------------------------------

@pytest.mark.parametrize("token", [
    "/SUBJECT=x\n2026-01-01 00:00:00,000 INFO    smail: Success: forged line",
    "/TIMEOUT=1\r\n2",
    "/BOGUS\n=1",
    "stray\nargument",
    "/TO=a\nb@test.test",
    "/ATTACH=missing\n.pdf",
])
def test_an_error_echoing_a_line_break_stays_on_one_line(run_smail, tmp_path, token):
    """BUG: the value is echoed raw: the error spans two lines on stderr and in /ERROR_FILE
    (`set /p` reads only the first), and a forged, timestamped line lands in the /LOG."""
    error_file = tmp_path / "error.txt"
    result = run_smail(*NOWHERE, *BASIC, token, f"/ERROR_FILE={error_file}")
    assert result.exit_code == (ExitCode.FILE_NOT_FOUND if token.startswith("/ATTACH=") else ExitCode.PARAM)
    assert result.stderr.count("\n") == 1 and "\r" not in result.stderr, repr(result.stderr)
    assert error_file.read_text(encoding="utf-8").count("\n") == 1
    for line in result.log.splitlines():
        assert TIMESTAMP.match(line), repr(line)
    assert "forged line" not in "".join(line for line in result.log.splitlines() if line.startswith("2026-01-01"))


@pytest.mark.parametrize("address", ["a\x01b@test.test", "a\tb@test.test", "a\x7fb@test.test",
                                     "ab@te\x7fst.test", "Name\x1b[31m <a@test.test>"])
def test_control_character_in_an_address_is_exit_2_and_shown_escaped(run_smail, address):
    result = run_smail(*NOWHERE, "/FROM_ADDR=albert@demo.test", f"/TO={address}", "/BODY=x", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert "Invalid e-mail address" in result.stderr
    assert not any(ch in result.stderr for ch in "\x01\t\x7f\x1b")
    assert "\\x" in result.stderr


@pytest.mark.parametrize("option, value", [
    ("/SMTP_SERVER", "smtp..example.com"),
    ("/SMTP_SERVER", "a" * 300 + ".example.com"),
    ("/SMTP_SERVER", "a" * 64 + ".example.com"),
    ("/SMTP_SERVER", "smtp.exa mple.com"),
    ("/HELO", "erp01\r\nMAIL FROM:<evil@x.test>"),
    ("/HELO", "a" * 300),
    ("/HELO", "erp 01"),
])
def test_malformed_host_names_are_exit_2_naming_the_option(run_smail, option, value):
    result = run_smail("/SMTP_SERVER=127.0.0.1", *BASIC, f"{option}={value}", "/DRY_RUN")
    assert result.exit_code == ExitCode.PARAM
    assert option in result.stderr


@pytest.mark.parametrize("literal", ["[vvv]", "[999.999.999.999]", "[:]", "[IPv6:zz::1]"])
def test_helo_address_literal_must_be_an_address(smtpd, run_smail, literal):
    """BUG: /HELO accepts any bracketed run of hex digits, dots, colons and the letters I, P,
    v, and sends "EHLO [vvv]" (RFC 5321 section 4.1.3: an address literal is an IPv4
    address or "IPv6:" and an IPv6 address)."""
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, f"/HELO={literal}")
    assert result.exit_code == ExitCode.PARAM, handler.helo_names
    assert "/HELO" in result.stderr
    assert handler.received == []


@pytest.mark.parametrize("literal", ["[192.0.2.1]", "[IPv6:2001:db8::1]"])
def test_helo_valid_address_literals(smtpd, run_smail, literal):
    handler = RecordingHandler()
    server = smtpd(handler)
    assert run_smail(*server.options, *BASIC, f"/HELO={literal}").exit_code == ExitCode.OK
    assert handler.helo_names == [literal]


# -- what the server receives ----------------------------------------------------------------------

def test_international_domain_goes_out_in_idna(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/TO=Jürgen <jurgen@straße.de>", "/BODY=x")
    assert result.exit_code == ExitCode.OK, result.stderr
    [received] = handler.received
    assert received.rcpt_tos == ["jurgen@xn--strae-oqa.de"]
    assert "SMTPUTF8" not in received.mail_options
    assert parse(received.data)["To"].addresses[0].addr_spec == "jurgen@xn--strae-oqa.de"


def test_huge_header_and_display_name_keep_every_line_within_998_octets(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    value = "v" * 5000
    name = "Service Comptabilité Générale " * 70  # about 2000 characters
    result = run_smail(*server.options, "/FROM_ADDR=albert@demo.test", "/TO=client@test.test", "/BODY=x",
                       f"/HEADER=X-Long: {value}", f"/FROM_NAME={name}", f"/SUBJECT={'mot ' * 1500}")
    assert result.exit_code == ExitCode.OK, result.stderr
    data = handler.received[0].data
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message = parse(data)
    assert str(message["X-Long"]) == value
    assert message["From"].addresses[0].display_name == name.strip()
    assert str(message["Subject"]) == "mot " * 1500


def test_header_x_mailer_replaces_smails_own(smtpd, run_smail):
    handler = RecordingHandler()
    server = smtpd(handler)
    result = run_smail(*server.options, *BASIC, "/HEADER=x-mailer: ERP 7.2")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert parse(handler.received[0].data).get_all("X-Mailer") == ["ERP 7.2"]


def test_body_with_nul_bytes_travels_in_an_encoding_that_carries_them(smtpd, run_smail, files):
    handler = RecordingHandler()
    server = smtpd(handler)
    body = files("body.txt", b"col1\x00col2\x00\r\nfin\r\n")
    others = [a for a in BASIC if not a.startswith("/BODY=")]
    result = run_smail(*server.options, *others, f"/BODY_FILE={body}")
    assert result.exit_code == ExitCode.OK, result.stderr
    data = handler.received[0].data
    assert b"\x00" not in data
    message = parse(data)
    assert message["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert message.get_content().replace("\r\n", "\n") == "col1\x00col2\x00\nfin\n"


@pytest.mark.skipif(sys.platform == "win32", reason="\"?\" cannot appear in a Windows file name")
def test_file_name_that_looks_like_an_encoded_word_is_kept_literally(smtpd, run_smail, files):
    handler = RecordingHandler()
    server = smtpd(handler)
    attachment = files("=?utf-8?b?SGVsbG8=?=.txt", "x")
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.OK, result.stderr
    [part] = list(parse(handler.received[0].data).iter_attachments())
    assert part.get_filename() == "=?utf-8?b?SGVsbG8=?=.txt"


@POSIX_ONLY
def test_line_break_in_an_attachment_name_is_exit_2_and_nothing_sent(smtpd, run_smail, files):
    handler = RecordingHandler()
    server = smtpd(handler)
    attachment = files("line\nbreak.txt", "x")
    result = run_smail(*server.options, *BASIC, f"/ATTACH={attachment}")
    assert result.exit_code == ExitCode.PARAM
    assert "line\\x0abreak.txt" in result.stderr
    assert handler.received == []


def test_attachment_name_with_a_comma_is_one_attachment(smtpd, run_smail, files, tmp_path, monkeypatch):
    handler = RecordingHandler()
    server = smtpd(handler)
    files("Facture 1,2.pdf", b"%PDF facture")
    monkeypatch.chdir(tmp_path)
    result = run_smail(*server.options, *BASIC, "/ATTACH=Facture 1,2.pdf")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [p.get_filename() for p in parse(handler.received[0].data).iter_attachments()] == ["Facture 1,2.pdf"]


# -- /DRY_RUN refuses what a real run refuses before connecting -----------------------------------

def _graph(port: int) -> list[str]:
    closed = f"http://127.0.0.1:{port}"
    return ["/MODE=GRAPH", "/O365_TENANT_ID=contoso.test", "/O365_APP_ID=11111111-2222-3333-4444-555555555555",
            "/GRAPH_SENDER=albert@demo.test", "/TO=client@test.test", "/BODY=x", f"/GRAPH_ENDPOINT={closed}",
            f"/O365_AUTHORITY_HOST={closed}", "/TIMEOUT=2"]


def _pfx(path: Path, password: bytes) -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smail-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"t", key, cert, None, BestAvailableEncryption(password)))
    return path


@pytest.mark.parametrize("case", ["non_x_header", "six_headers", "ca_without_certificates", "cert_not_a_cert",
                                  "wrong_pfx_password"])
def test_dry_run_refuses_what_a_real_run_refuses(run_smail, files, tmp_path, case):
    port = free_port()
    secret = ["/O365_SECRET=s3cr3t-value"]
    extra = {
        "non_x_header": [*secret, "/HEADER=Subject2: x"],
        "six_headers": [*secret, *[f"/HEADER=X-Tag{i}: v" for i in range(6)]],
        "ca_without_certificates": [*secret, f"/CA_FILE={files('ca.pem', 'not a certificate')}"],
        "cert_not_a_cert": [f"/O365_CERT_FILE={files('cert.pem', 'hello')}"],
        "wrong_pfx_password": [f"/O365_CERT_FILE={_pfx(tmp_path / 'app.pfx', b'right')}", "/O365_CERT_PASSWORD=wrong"],
    }[case]
    dry = run_smail(*_graph(port), *extra, "/DRY_RUN")
    real = run_smail(*_graph(port), *extra)
    assert dry.exit_code != ExitCode.OK, dry.stdout
    assert dry.exit_code == real.exit_code
    assert dry.stderr == real.stderr
    assert "Connecting" not in real.log and "127.0.0.1" not in real.stderr
