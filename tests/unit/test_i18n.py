"""Language choice, and catalogs that cover every sentence in the code."""

from __future__ import annotations

import re
import string
from pathlib import Path

import catalogs  # build/ is on pytest's pythonpath, as it is on sys.path for every build script
import pytest

from smail import i18n, reader

ROOT = Path(__file__).resolve().parents[2]


def test_order_lang_env_config_os_then_english(tmp_path):
    ini = tmp_path / "smail.ini"
    ini.write_text("[smail]\nlang = fr\n", encoding="utf-8")

    def language(argv: list[str], environ: dict[str, str], os_language: str | None) -> str:
        wanted = reader.parse(argv, environ, tolerant=True).get("LANG")
        return i18n.choose_language(wanted, environ, ui_language=lambda: os_language)
    assert language(["/LANG=EN", f"/CONFIG={ini}"], {"SMAIL_LANG": "FR"}, "fr") == "en"
    assert language([f"/CONFIG={ini}"], {"SMAIL_LANG": "EN"}, "fr") == "en"
    assert language([f"/CONFIG={ini}"], {}, "en") == "fr"
    rsp = tmp_path / "opts.rsp"
    rsp.write_text("/LANG=FR\n", encoding="utf-8")
    assert language([f"@{rsp}"], {}, "en") == "fr"  # read where it is written: inside an @file
    assert language([], {}, "fr") == "fr"
    assert language([], {}, "de") == "en"
    assert language([], {}, None) == "en"


@pytest.mark.parametrize("langid, expected", [(0x040C, "fr"), (0x080C, "fr"), (0x0C0C, "fr"),
                                              (0x0409, "en"), (0x0809, "en"), (0x0407, None)])
def test_windows_ui_language_from_langid(langid, expected):
    assert i18n.windows_ui_language(lambda: langid) == expected
    assert i18n.os_ui_language({}, platform="win32", get_langid=lambda: langid) == expected


@pytest.mark.parametrize("environ, expected", [
    ({"LANG": "fr_FR.UTF-8"}, "fr"), ({"LC_ALL": "fr_CA", "LANG": "en_US"}, "fr"),
    ({"LANGUAGE": "en:fr", "LANG": "fr_FR"}, "en"), ({"LANG": "C"}, "en"), ({}, None),
    ({"LANG": "de_DE"}, None)])
def test_posix_ui_language(environ, expected):
    assert i18n.os_ui_language(environ, platform="linux") == expected


def test_every_msgid_in_the_code_has_a_french_translation():
    code = catalogs.extract()
    _header, french = catalogs.parse_po(catalogs.LOCALES / "fr" / "LC_MESSAGES" / "smail.po")
    untranslated = [m for m in code if m not in french or not all(french[m].msgstr) or french[m].fuzzy]
    assert untranslated == [], "run `make update-catalogs` and translate these"


def test_po_files_are_up_to_date_with_the_code():
    code = set(catalogs.extract())
    for language in catalogs.LANGUAGES:
        _header, entries = catalogs.parse_po(catalogs.LOCALES / language / "LC_MESSAGES" / "smail.po")
        assert set(entries) == code, f"{language}: run `make update-catalogs`"


def test_translations_keep_the_placeholders():
    _header, french = catalogs.parse_po(catalogs.LOCALES / "fr" / "LC_MESSAGES" / "smail.po")
    names = lambda text: sorted(f[1] for f in string.Formatter().parse(text) if f[1])  # noqa: E731
    for msgid, entry in french.items():
        for translated in entry.msgstr:
            assert names(translated) == names(entry.plural or msgid if translated is not entry.msgstr[0] else msgid) \
                or names(translated) == names(msgid), msgid


def test_compiled_catalog_translates():
    i18n.activate("fr")
    try:
        assert i18n._("Show this help.") == "Affiche cette aide."
        assert i18n.ngettext("Message sent to {n} recipient via {where} ({security}).",
                             "Message sent to {n} recipients via {where} ({security}).", 2).startswith(
            "Message envoyé à {n} destinataires")
    finally:
        i18n.activate("en")


def test_no_sentence_is_built_by_concatenating_translations():
    pattern = re.compile(r"_\(\"[^\"]*\"\)\s*\+|\+\s*_\(")
    offenders = [p.name for p in (ROOT / "smail").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
