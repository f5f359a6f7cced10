"""Language choice and message catalogs (French and English).

Catalogs are compiled from locales/*.po into smail/_locales/ at build time; they are found
next to this file both when installed and inside the frozen executable.
"""

from __future__ import annotations

import gettext
import os
import sys
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Final

DOMAIN = "smail"
CATALOG_DIR = Path(__file__).resolve().parent / "_locales"


class Language(Enum):
    """The languages SMail speaks (/LANG): the one list, which the catalogs and the build follow."""

    FR = "FR"
    EN = "EN"


# Their catalog codes (locales/<code>/LC_MESSAGES), as the build and gettext name them.
LANGUAGES: Final = tuple(sorted(language.value.lower() for language in Language))


_translation: gettext.NullTranslations = gettext.NullTranslations()

# Windows primary language identifier for French (LANG_FRENCH in winnt.h).
_WINDOWS_LANG_FRENCH = 0x0C
_WINDOWS_LANG_ENGLISH = 0x09


def _(message: str) -> str:
    """Translate one whole sentence into the active language."""
    return _translation.gettext(message)


def N_(message: str) -> str:
    """Mark a module-level text for translation; it is translated when shown."""
    return message


def ngettext(singular: str, plural: str, count: int) -> str:
    """Translate a sentence whose grammar depends on a count."""
    return _translation.ngettext(singular, plural, count)


def normalize(value: str | None) -> str | None:
    """Map "FR", "fr_FR.UTF-8", "French" ... to a supported code, or None."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("fr"):
        return "fr"
    if value.startswith("en") or value in ("c", "posix"):
        return "en"
    return None


def windows_ui_language(get_langid: Callable[[], int] | None = None) -> str | None:
    """The Windows user-interface language from GetUserDefaultUILanguage()."""
    if get_langid is None:
        if sys.platform != "win32":
            return None
        import ctypes

        get_langid = ctypes.windll.kernel32.GetUserDefaultUILanguage  # type: ignore[attr-defined,unused-ignore]
    primary = int(get_langid()) & 0x3FF
    return {_WINDOWS_LANG_FRENCH: "fr", _WINDOWS_LANG_ENGLISH: "en"}.get(primary)


def posix_ui_language(environ: Mapping[str, str]) -> str | None:
    """The language of the POSIX locale variables, in gettext's order of precedence."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return normalize(value.split(":")[0])
    return None


def os_ui_language(environ: Mapping[str, str] | None = None, *,
                   platform: str = sys.platform,
                   get_langid: Callable[[], int] | None = None) -> str | None:
    """The operating system's user-interface language, when it is French or English."""
    if platform == "win32":
        return windows_ui_language(get_langid)
    return posix_ui_language(os.environ if environ is None else environ)


def choose_language(wanted: str | None, environ: Mapping[str, str], *,
                    ui_language: Callable[[], str | None] | None = None) -> str:
    """/LANG as the options give it (command line, SMAIL_LANG, then the configuration file),
    else the OS UI language, else English."""
    code = normalize(wanted)
    if code:
        return code
    detected = ui_language() if ui_language else os_ui_language(environ)
    return normalize(detected) or "en"


def activate(code: str, catalog_dir: Path = CATALOG_DIR) -> None:
    """Make `code` the language of every later message."""
    global _translation
    _translation = gettext.translation(DOMAIN, localedir=str(catalog_dir),
                                       languages=[code if code in LANGUAGES else "en"], fallback=True)


def catalogs_present(catalog_dir: Path = CATALOG_DIR) -> bool:
    """Whether the compiled catalogs are installed (a source checkout needs `make catalogs`)."""
    return all((catalog_dir / code / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
               for code in LANGUAGES)
