"""Message catalogs without GNU gettext: extract msgids from the code, merge them into the
.po sources, and compile .po into .mo (the format gettext reads).

    python build/catalogs.py compile   # locales/*/LC_MESSAGES/smail.po -> smail/_locales/
    python build/catalogs.py update    # refresh locales/smail.pot and merge it into each .po
"""

from __future__ import annotations

import ast
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a checkout: smail is beside build/
from smail.i18n import DOMAIN, LANGUAGES  # noqa: E402  (the one list of languages)

PACKAGE = ROOT / "smail"
LOCALES = ROOT / "locales"
HEADERS = {
    "en": "Plural-Forms: nplurals=2; plural=(n != 1);",
    "fr": "Plural-Forms: nplurals=2; plural=(n > 1);",
}


@dataclass
class Entry:
    msgid: str
    plural: str | None = None
    msgstr: list[str] = field(default_factory=lambda: [""])
    references: list[str] = field(default_factory=list)
    fuzzy: bool = False


def extract(package: Path = PACKAGE) -> dict[str, Entry]:
    """Every string passed literally to _(), N_() or ngettext() in the package."""
    entries: dict[str, Entry] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(
                func, ast.Attribute) else None
            args = node.args
            strings = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            ref = f"{path.relative_to(package.parent).as_posix()}:{node.lineno}"
            if name in ("_", "N_") and len(args) == 1 and strings:
                entry = entries.setdefault(strings[0], Entry(strings[0]))
            elif name == "ngettext" and len(strings) >= 2:
                entry = entries.setdefault(strings[0], Entry(strings[0], plural=strings[1],
                                                             msgstr=["", ""]))
            else:
                continue
            entry.references.append(ref)
    return entries


def _unescape(text: str) -> str:
    return ast.literal_eval('"' + text + '"') if text else ""


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def parse_po(path: Path) -> tuple[str, dict[str, Entry]]:
    """(header msgstr, entries) of a .po file."""
    entries: dict[str, Entry] = {}
    header = ""
    current: Entry | None = None
    key: str | None = None
    fuzzy = False

    def finish() -> None:
        nonlocal current, header
        if current is not None:
            if current.msgid == "":
                header = current.msgstr[0]
            else:
                entries[current.msgid] = current
        current = None

    for raw in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = raw.strip()
        if not line:
            finish()
            key = None
            fuzzy = False
        elif line.startswith("#,"):
            fuzzy = "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith("msgid_plural "):
            assert current is not None
            current.plural, key = _unescape(line[14:-1]), "plural"
            current.msgstr = ["", ""]
        elif line.startswith("msgid "):
            finish()
            current, key = Entry(_unescape(line[7:-1]), fuzzy=fuzzy), "msgid"
        elif line.startswith("msgstr["):
            assert current is not None
            index = int(line[7:line.index("]")])
            while len(current.msgstr) <= index:
                current.msgstr.append("")
            current.msgstr[index] = _unescape(line[line.index('"') + 1:-1])
            key = f"msgstr{index}"
        elif line.startswith("msgstr "):
            assert current is not None
            current.msgstr[0], key = _unescape(line[8:-1]), "msgstr0"
        elif line.startswith('"') and current is not None:
            text = _unescape(line[1:-1])
            if key == "msgid":
                current.msgid += text
            elif key == "plural":
                current.plural = (current.plural or "") + text
            elif key and key.startswith("msgstr"):
                current.msgstr[int(key[6:])] += text
    return header, entries


def _po_string(keyword: str, text: str) -> str:
    if "\n" not in text.rstrip("\n") and len(text) < 70:
        return f'{keyword} "{_escape(text)}"\n'
    parts = text.splitlines(keepends=True)
    return f'{keyword} ""\n' + "".join(f'"{_escape(p)}"\n' for p in parts)


def write_po(path: Path, header: str, entries: dict[str, Entry]) -> None:
    out = ['msgid ""\n', _po_string("msgstr", header).replace('msgstr "', 'msgstr "', 1), "\n"]
    for entry in entries.values():
        for ref in entry.references:
            out.append(f"#: {ref}\n")
        if entry.fuzzy:
            out.append("#, fuzzy\n")
        if "{" in entry.msgid:
            out.append("#, python-brace-format\n")
        out.append(_po_string("msgid", entry.msgid))
        if entry.plural is not None:
            out.append(_po_string("msgid_plural", entry.plural))
            for index, text in enumerate(entry.msgstr):
                out.append(_po_string(f"msgstr[{index}]", text))
        else:
            out.append(_po_string("msgstr", entry.msgstr[0]))
        out.append("\n")
    path.write_text("".join(out), encoding="utf-8")


def _header(language: str) -> str:
    return ("Project-Id-Version: SMail\n"
            f"Language: {language}\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            f"{HEADERS.get(language, HEADERS['en'])}\n")


def update() -> None:
    """Refresh the template and merge it into each language: new msgids empty, old ones gone."""
    code = extract()
    write_po(LOCALES / f"{DOMAIN}.pot", _header(""), {
        k: Entry(e.msgid, e.plural, ["", ""] if e.plural else [""], e.references)
        for k, e in code.items()})
    for language in LANGUAGES:
        path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = parse_po(path)[1] if path.exists() else {}
        merged: dict[str, Entry] = {}
        for msgid, entry in code.items():
            old = existing.get(msgid)
            msgstr = old.msgstr if old else (["", ""] if entry.plural else [""])
            if language == "en" and not any(msgstr):
                msgstr = [entry.msgid, entry.plural] if entry.plural else [entry.msgid]
            merged[msgid] = Entry(msgid, entry.plural, list(msgstr), entry.references,
                                  old.fuzzy if old else False)
        write_po(path, _header(language), merged)


def write_mo(header: str, entries: dict[str, Entry], path: Path) -> None:
    """GNU .mo: magic, revision, counts, two offset tables, then the strings."""
    pairs = [(b"", header.encode("utf-8"))]
    for entry in entries.values():
        if entry.fuzzy or not any(entry.msgstr):
            continue
        if entry.plural is not None:
            key = (entry.msgid + "\0" + entry.plural).encode("utf-8")
            value = "\0".join(entry.msgstr).encode("utf-8")
        else:
            key, value = entry.msgid.encode("utf-8"), entry.msgstr[0].encode("utf-8")
        pairs.append((key, value))
    pairs.sort()
    count = len(pairs)
    keys_start = 7 * 4 + 16 * count
    ids = b"".join(k + b"\0" for k, _v in pairs)
    strs = b"".join(v + b"\0" for _k, v in pairs)
    key_table, value_table = [], []
    offset = keys_start
    for key, _value in pairs:
        key_table += [len(key), offset]
        offset += len(key) + 1
    for _key, value in pairs:
        value_table += [len(value), offset]
        offset += len(value) + 1
    data = struct.pack("Iiiiiii", 0x950412DE, 0, count, 7 * 4, 7 * 4 + 8 * count, 0, 0)
    data += struct.pack(f"{len(key_table)}i", *key_table)
    data += struct.pack(f"{len(value_table)}i", *value_table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + ids + strs)


def compile_all(target: Path = PACKAGE / "_locales") -> list[Path]:
    """Compile every language into `target`/<lang>/LC_MESSAGES/smail.mo."""
    written = []
    for language in LANGUAGES:
        header, entries = parse_po(LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po")
        path = target / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        write_mo(header, entries, path)
        written.append(path)
    return written


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "compile"
    if command == "update":
        update()
    elif command == "compile":
        for written in compile_all(Path(sys.argv[2]) if len(sys.argv) > 2 else PACKAGE / "_locales"):
            print(written.relative_to(ROOT) if written.is_relative_to(ROOT) else written)
    else:
        sys.exit(f"usage: {sys.argv[0]} compile [target] | update")
