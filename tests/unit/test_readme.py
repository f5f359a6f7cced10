"""The README's exit-code table and the help's are the ExitCode enum: the documentation cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from smail.errors import ExitCode

README = Path(__file__).resolve().parents[2] / "README.md"


def test_exit_code_table_matches_the_enum():
    rows = re.findall(r"^\| (\d+) \| EXIT_([A-Z_]+) \|", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert [(int(code), name) for code, name in rows] == [(int(c), c.name) for c in ExitCode]


def test_the_help_describes_every_exit_code_in_order():
    from smail.helptext import EXIT_CODE_HELP

    assert [code for code, _text in EXIT_CODE_HELP] == list(ExitCode)


def test_readme_opens_for_the_windows_administrator_then_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    first_screen = "\n".join(lines[:40])
    for needed in ("SMail.exe", "SMail-x64", "SMail-x86", ".sha256", "Windows 10", "Windows Server 2016", "```bat"):
        assert needed in first_screen, needed
    make_demo = next(n for n, line in enumerate(lines) if line.startswith("make demo"))
    make_test = next(n for n, line in enumerate(lines) if line.startswith("make test"))
    first_bat = next(n for n, line in enumerate(lines) if line.startswith("SMail /"))
    assert first_bat < make_demo < 40 and make_test < 40
    ci = (README.parent / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "make test"


def test_readme_names_the_free_distribution_name():
    text = README.read_text(encoding="utf-8")
    pyproject = (README.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "smail-mailer"' in pyproject and "pip install smail-mailer" in text
    assert 'smail = "smail.__main__:run"' in pyproject  # the command stays smail


def test_the_batch_example_reports_every_failure_code():
    script = (README.parent / "examples" / "batch" / "envoi.bat").read_text(encoding="utf-8").splitlines()
    assert "set CODE=%ERRORLEVEL%" in script
    assert not any(line.startswith("if errorlevel") for line in script)  # >= N, not one code
    # After the success branch, whatever the code: it is said, and it is the script's own.
    assert "echo SMail failed with code %CODE%: see the line above and resultats.csv." in script
    assert script[-1] == "exit /b %CODE%"
