"""The README's exit-code table is the ExitCode enum: the documentation cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from smail.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_exit_code_table_matches_the_enum():
    rows = re.findall(r"^\| (\d+) \| EXIT_([A-Z_]+) \|", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert [(int(code), name) for code, name in rows] == [(int(c), c.name) for c in ExitCode]


def test_readme_opens_with_the_two_commands():
    first_lines = README.read_text(encoding="utf-8").splitlines()[:6]
    assert any(line.startswith("make demo") for line in first_lines)
    assert any(line.startswith("make test") for line in first_lines)
    ci = (README.parent / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"
