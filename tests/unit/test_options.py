"""Parsing: every syntax form, response files, SMAIL_* variables, INI, precedence, typos."""

from __future__ import annotations

import os

import pytest

from smail import converters
from smail.errors import FileMissingError, ParamError
from smail.options import OPTIONS, Source
from smail.reader import parse


def test_every_syntax_form_and_case():
    raw = parse(["/SUBJECT=a", "-from_name=b", "--smtp-server=c", "/Smtp_Port=26", "/read_ack"], {})
    assert raw.get("SUBJECT") == "a"
    assert raw.get("FROM_NAME") == "b"
    assert raw.get("SMTP_SERVER") == "c"
    assert raw.get("SMTP_PORT") == "26"
    assert raw.get("READ_ACK") == "YES"


def test_value_keeps_equal_signs_and_quotes_are_removed():
    raw = parse(['/SUBJECT="a=b c"', "/BODY=x=y"], {})
    assert raw.get("SUBJECT") == "a=b c"
    assert raw.get("BODY") == "x=y"


def test_repeatable_options_accumulate_and_scalars_last_wins():
    raw = parse(["/TO=a@x.test", "/TO=b@x.test", "/SUBJECT=first", "/SUBJECT=second"], {})
    assert raw.get_list("TO") == ["a@x.test", "b@x.test"]
    assert raw.get("SUBJECT") == "second"


def test_alias_log_file():
    assert parse(["/LOG_FILE=Journal.txt"], {}).get("LOG") == "Journal.txt"


def test_typo_suggests_the_closest_name():
    with pytest.raises(ParamError, match=r"Unknown option /SMTP_SERVEUR\. Did you mean /SMTP_SERVER\?"):
        parse(["/SMTP_SERVEUR=x"], {})


def test_unknown_without_close_name():
    with pytest.raises(ParamError, match="Run SMail /\\? for the list"):
        parse(["/ZZZZZZZ=1"], {})


def test_bare_word_is_refused():
    with pytest.raises(ParamError, match="Unexpected argument \"hello\""):
        parse(["hello"], {})


def test_option_without_value():
    with pytest.raises(ParamError, match="Option /TO needs a value"):
        parse(["/TO"], {})


def test_response_file_utf8_and_ansi(tmp_path):
    utf8 = tmp_path / "opts.txt"
    utf8.write_bytes("\ufeff# comment\n/SUBJECT=Facture été\n\n@ansi.txt\n/TO=a@x.test\n".encode("utf-8"))
    (tmp_path / "ansi.txt").write_bytes("/FROM_NAME=Hélène\n".encode("cp1252"))
    raw = parse([f"@{utf8}".replace("@ansi", "@ansi")], {})
    assert raw.get("SUBJECT") == "Facture été"
    assert raw.get_list("TO") == ["a@x.test"]


def test_nested_response_file_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.rsp").write_text("@b.rsp\n/SUBJECT=A\n", encoding="utf-8")
    (tmp_path / "b.rsp").write_bytes("/FROM_NAME=Hélène\n".encode("cp1252"))
    raw = parse(["@a.rsp"], {})
    assert raw.get("FROM_NAME") == "Hélène"


def test_missing_response_file_is_exit_8():
    with pytest.raises(FileMissingError, match="Response file not found: nope.rsp"):
        parse(["@nope.rsp"], {})


def test_environment_variables():
    raw = parse([], {"SMAIL_SMTP_PASSWORD": "pw", "SMAIL_TO": "a@x.test", "SMAIL_LOG_FILE": "l.txt"})
    assert raw.get("SMTP_PASSWORD") == "pw"
    assert raw.sources["SMTP_PASSWORD"] is Source.ENVIRONMENT
    assert raw.get("LOG") == "l.txt"


def test_precedence_command_line_environment_config(tmp_path):
    ini = tmp_path / "smail.ini"
    ini.write_text("[smail]\nsubject = from config\nfrom_name = config name\nsmtp_server = cfg.test\n"
                   "to = a@x.test, b@x.test\n", encoding="utf-8")
    raw = parse([f"/CONFIG={ini}", "/SUBJECT=from argv"],
                {"SMAIL_SUBJECT": "from env", "SMAIL_FROM_NAME": "env name"})
    assert raw.get("SUBJECT") == "from argv"
    assert raw.get("FROM_NAME") == "env name"
    assert raw.get("SMTP_SERVER") == "cfg.test"
    assert raw.sources["SMTP_SERVER"] is Source.CONFIG_FILE
    assert raw.get_list("TO") == ["a@x.test, b@x.test"]


def test_config_file_named_by_the_environment(tmp_path):
    ini = tmp_path / "smail.ini"
    ini.write_text("[smail]\nsmtp_server = cfg.test\n", encoding="utf-8")
    assert parse([], {"SMAIL_CONFIG": str(ini)}).get("SMTP_SERVER") == "cfg.test"


def test_config_errors(tmp_path):
    no_section = tmp_path / "a.ini"
    no_section.write_text("[other]\nx=1\n", encoding="utf-8")
    with pytest.raises(ParamError, match=r"has no \[smail\] section"):
        parse([f"/CONFIG={no_section}"], {})
    typo = tmp_path / "b.ini"
    typo.write_text("[smail]\nsmtp_srever = x\n", encoding="utf-8")
    with pytest.raises(ParamError, match=r"b.ini: Unknown option /smtp_srever\. Did you mean /SMTP_SERVER\?"):
        parse([f"/CONFIG={typo}"], {})
    with pytest.raises(FileMissingError, match="File not found: missing.ini"):
        parse(["/CONFIG=missing.ini"], {})


def test_config_file_in_ansi(tmp_path):
    ini = tmp_path / "c.ini"
    ini.write_bytes("[smail]\nfrom_name = \"Société Générale\"\n".encode("cp1252"))
    assert parse([f"/CONFIG={ini}"], {}).get("FROM_NAME") == "Société Générale"


@pytest.mark.parametrize("word, expected", [("YES", True), ("no", False), ("1", True), ("0", False),
                                            ("TRUE", True), ("false", False)])
def test_switch_values(word, expected):
    assert converters.yes_no(word) is expected


def test_bad_switch_value():
    with pytest.raises(converters.ConversionError):
        converters.yes_no("maybe")


def test_every_option_has_help_and_a_unique_name():
    names = [o.name for o in OPTIONS] + [a for o in OPTIONS for a in o.aliases]
    assert len(names) == len(set(names))
    assert all(o.help for o in OPTIONS)


def test_wildcards(tmp_path):
    for name in ("a.pdf", "b.pdf", "c.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "d.pdf").mkdir()  # a folder matching the pattern is not a file
    assert [p.name for p in converters.file_list(str(tmp_path / "*.pdf"))] == ["a.pdf", "b.pdf"]
    with pytest.raises(FileMissingError, match="No file matches"):
        converters.file_list(str(tmp_path / "*.doc"))


def test_a_file_name_holding_a_separator_is_one_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("Facture 1,2.pdf", "a;b.txt", "c.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in converters.file_list("Facture 1,2.pdf")] == ["Facture 1,2.pdf"]
    assert [p.name for p in converters.file_list("c.txt;a;b.txt, Facture 1,2.pdf")] == [
        "c.txt", "a;b.txt", "Facture 1,2.pdf"]
    with pytest.raises(FileMissingError, match="File not found: Facture 1"):
        converters.file_list("Facture 1,3.pdf")


def test_file_items_split_on_both_separators(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert converters.file_items("a.pdf, b.pdf;c.pdf") == ["a.pdf", "b.pdf", "c.pdf"]


def test_unreadable_response_file_is_exit_8(tmp_path, monkeypatch):
    rsp = tmp_path / "opts.rsp"
    rsp.write_text("/SUBJECT=x\n")

    original = os.open

    def denied(path, *args, **kwargs):
        if str(path) == str(rsp):
            raise PermissionError(13, "Permission denied")
        return original(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(FileMissingError, match="Cannot read .*opts.rsp: Permission denied"):
        parse([f"@{rsp}"], {})
