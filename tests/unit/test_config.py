"""Validation: per-mode required options, ranges, enumerations, files (exit 2, 8, 9)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smail.cloud import Cloud
from smail.config import validate
from smail.errors import FileMissingError, InvalidModeError, ParamError
from smail.kinds import RunKind
from smail.reader import parse
from smail.sasl import AuthType
from smail.tls import TLSMode


def smtp_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["/SMTP_SERVER=smtp.test", "/FROM_ADDR=a@b.test", "/TO=c@d.test", "/BODY=hi", *extra]


def check(args: list[str], env: dict[str, str] | None = None):
    return validate(parse(args, env or {}))


def test_minimal_smtp_defaults(tmp_path):
    config = check(smtp_args(tmp_path))
    assert config.transport.port == 25
    assert config.transport.tls_mode is TLSMode.NONE
    assert config.transport.auth is AuthType.NONE
    assert config.retry.attempts == 1 and config.retry.delay == 5
    assert config.transport.timeout == 60


def test_the_run_kind_is_one_field(tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("TO\nc@d.test\n", encoding="utf-8")
    single = check(smtp_args(tmp_path))
    batch = check(smtp_args(tmp_path, f"/BATCH={rows}"))
    flush = check(["/SMTP_SERVER=smtp.test", "/FLUSH", f"/OUTBOX={tmp_path / 'box'}"])
    assert (single.kind, batch.kind, flush.kind) == (RunKind.SINGLE, RunKind.BATCH, RunKind.FLUSH)
    # Only a single run has a message of its own (a batch's come from its rows, a flush's from
    # the outbox), and it is not optional there.
    assert single.message is not None and not hasattr(batch, "message") and not hasattr(flush, "message")
    assert batch.batch is not None and flush.outbox is not None and flush.outbox.flush


@pytest.mark.parametrize("extra, port, mode", [
    (["/SSL_VERSION=TLSV1_2"], 587, TLSMode.STARTTLS),
    (["/SSL_MODE=IMPLICIT"], 465, TLSMode.IMPLICIT),
    (["/SMTP_PORT=465"], 465, TLSMode.IMPLICIT),
    (["/SSL_MODE=STARTTLS"], 587, TLSMode.STARTTLS),
    (["/SSL_VERSION=TLSV1_3", "/SMTP_PORT=2525"], 2525, TLSMode.STARTTLS),
])
def test_tls_mode_and_default_port(tmp_path, extra, port, mode):
    config = check(smtp_args(tmp_path, *extra))
    assert (config.transport.port, config.transport.tls_mode) == (port, mode)


@pytest.mark.parametrize("missing, name", [
    ("/SMTP_SERVER=smtp.test", "/SMTP_SERVER"),
    ("/TO=c@d.test", "recipient"),
    ("/BODY=hi", "body"),
    ("/FROM_ADDR=a@b.test", "/FROM_ADDR"),
])
def test_required_in_smtp_mode(tmp_path, missing, name):
    args = [a for a in smtp_args(tmp_path) if a != missing]
    with pytest.raises(ParamError, match=name):
        check(args)


def test_sender_derived_from_username(tmp_path):
    args = [a for a in smtp_args(tmp_path) if not a.startswith("/FROM_ADDR")]
    config = check(args + ["/SMTP_USERNAME=james@koxo.test", "/SMTP_PASSWORD=x"])
    assert config.message.from_addr == "james@koxo.test"
    assert config.transport.auth is AuthType.SASL


def test_sasl_needs_username_and_password(tmp_path):
    with pytest.raises(ParamError, match="SASL needs /SMTP_USERNAME"):
        check(smtp_args(tmp_path, "/AUTH_TYPE=SASL"))
    with pytest.raises(ParamError, match="SASL needs /SMTP_PASSWORD"):
        check(smtp_args(tmp_path, "/AUTH_TYPE=SASL", "/SMTP_USERNAME=u"))


def test_xoauth2_needs_token_or_app(tmp_path):
    with pytest.raises(ParamError, match="XOAUTH2 needs /SMTP_TOKEN_FILE"):
        check(smtp_args(tmp_path, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u@x.test"))
    token = tmp_path / "token.txt"
    token.write_text("abc\n")
    config = check(smtp_args(tmp_path, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u@x.test", f"/SMTP_TOKEN_FILE={token}"))
    assert config.transport.token.reveal() == "abc"
    config = check(smtp_args(tmp_path, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u@x.test",
                             "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s"))
    assert config.transport.app.app_id == "a"
    with pytest.raises(ParamError, match="O365_APP_ID"):
        check(smtp_args(tmp_path, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u@x.test", "/O365_TENANT_ID=t", "/O365_SECRET=s"))


def test_empty_token_file(tmp_path):
    token = tmp_path / "token.txt"
    token.write_text("  \n")
    with pytest.raises(ParamError, match="is empty"):
        check(smtp_args(tmp_path, "/AUTH_TYPE=XOAUTH2", "/SMTP_USERNAME=u", f"/SMTP_TOKEN_FILE={token}"))


def test_password_file(tmp_path):
    secret = tmp_path / "pw.txt"
    secret.write_text("p@ss word\r\n")
    config = check(smtp_args(tmp_path, "/SMTP_USERNAME=u", f"/SMTP_PASSWORD_FILE={secret}"))
    assert config.transport.password.reveal() == "p@ss word"


@pytest.mark.parametrize("option", ["/RETRY=0", "/RETRY=101", "/RETRY=x", "/SMTP_PORT=0",
                                    "/SMTP_PORT=65536", "/TIMEOUT=0", "/TIMEOUT=-1",
                                    "/RETRY_DELAY=abc", "/PRIORITY=URGENT", "/LOG_LEVEL=TRACE",
                                    "/SSL_VERSION=TLSV1_1", "/SSL_MODE=MAYBE", "/AUTH_TYPE=NTLM",
                                    "/O365_CLOUD=MARS", "/LANG=DE", "/READ_ACK=PERHAPS"])
def test_bad_values_name_the_option(tmp_path, option):
    name = option.split("=")[0]
    with pytest.raises(ParamError, match=f"for {name}:"):
        check(smtp_args(tmp_path, option))


def test_invalid_mode_is_exit_9_even_with_other_errors():
    with pytest.raises(InvalidModeError, match='Invalid mode "X"'):
        check(["/MODE=X"])


def test_graph_requirements(tmp_path):
    base = ["/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
            "/GRAPH_SENDER=user@domaine.test", "/TO=c@d.test", "/BODY=hi"]
    config = check(base)
    assert config.message.from_addr == "user@domaine.test"
    assert config.transport.app.authority_host == "https://login.microsoftonline.com"
    for missing in ("/O365_TENANT_ID=t", "/O365_APP_ID=a", "/GRAPH_SENDER=user@domaine.test"):
        with pytest.raises(ParamError, match=missing.split("=")[0]):
            check([a for a in base if a != missing])
    with pytest.raises(ParamError, match="client secret"):
        check([a for a in base if a != "/O365_SECRET=s"])


@pytest.mark.parametrize("cloud, authority, graph", [
    ("USGOV", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    ("USGOV_DOD", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    ("CHINA", "https://login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn"),
])
def test_national_cloud_presets_and_overrides(cloud, authority, graph):
    base = ["/MODE=GRAPH", "/O365_TENANT_ID=t", "/O365_APP_ID=a", "/O365_SECRET=s",
            "/GRAPH_SENDER=u@d.test", "/TO=c@d.test", "/BODY=hi", f"/O365_CLOUD={cloud}"]
    app = check(base).transport.app
    assert (app.authority_host, app.graph_endpoint) == (authority, graph)
    app = check(base + ["/GRAPH_ENDPOINT=https://127.0.0.1:8443/"]).transport.app
    assert app.graph_endpoint == "https://127.0.0.1:8443"
    assert Cloud[cloud]


@pytest.mark.parametrize("option", ["/BODY_FILE=missing.txt", "/ATTACH=missing.pdf", "/CA_FILE=ca.pem",
                                    "/SMTP_TOKEN_FILE=token.txt", "/SMTP_PASSWORD_FILE=pw.txt",
                                    "/O365_CERT_FILE=cert.pfx"])
def test_missing_files_are_exit_8_and_named(tmp_path, monkeypatch, option):
    monkeypatch.chdir(tmp_path)
    args = [a for a in smtp_args(tmp_path) if not (option.startswith("/BODY_FILE") and a == "/BODY=hi")]
    with pytest.raises(FileMissingError, match=option.split("=")[1]):
        check(args + [option])


def test_attachment_that_is_a_folder(tmp_path):
    with pytest.raises(FileMissingError, match="is a folder"):
        check(smtp_args(tmp_path, f"/ATTACH={tmp_path}"))


def test_inline_needs_html(tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(b"png")
    with pytest.raises(ParamError, match="/INLINE needs an HTML body"):
        check(smtp_args(tmp_path, f"/INLINE={logo}"))


def test_header_injection_is_refused(tmp_path):
    for option in ("/SUBJECT=Hi\r\nBcc: victim@x.test", "/FROM_NAME=A\nB", "/TO=a@b.test\0"):
        with pytest.raises(ParamError, match="line break or a NUL"):
            check(smtp_args(tmp_path, option))


def test_body_and_body_file_together(tmp_path):
    body = tmp_path / "m.txt"
    body.write_text("x")
    with pytest.raises(ParamError, match="not both"):
        check(smtp_args(tmp_path, f"/BODY_FILE={body}"))


def test_helo_must_be_ascii(tmp_path):
    with pytest.raises(ParamError, match="for /HELO: expected an ASCII host name"):
        check(smtp_args(tmp_path, "/HELO=büro"))
