"""The code moves forward: no module imports a later stage, not even inside a function or for
its type hints, so that the modules form no import circle.

Stages, in order: parse (converters, options, reader, helptext) -> validate (config) -> build (message, mime) -> send
(transports) -> many messages (batch, outbox) -> the run (the output check, the command line).
Support modules (errors, files, settings, tls...) sit below every stage: they import support
modules only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "smail"
SUPPORT = 0
STAGES = {
    "smail.converters": 1, "smail.options": 1, "smail.reader": 1, "smail.helptext": 1,
    "smail.config": 2,
    "smail.message": 3, "smail.mime": 3, "smail.smime": 3,
    "smail.transports": 4,
    "smail.batch": 5, "smail.outbox": 5,
    "smail.outputcheck": 6, "smail.cli": 6, "smail.__main__": 6,
}
SUPPORT_MODULES = frozenset({
    "smail", "smail.addresses", "smail.assertion", "smail.auth", "smail.certificate", "smail.certstore",
    "smail.cloud", "smail.errors", "smail.files",
    "smail.eventlog", "smail.hosts", "smail.htmltext", "smail.httpclient", "smail.i18n", "smail.kinds", "smail.log", "smail.network",
    "smail.output", "smail.proxy", "smail.receipt", "smail.redact", "smail.retry", "smail.sasl", "smail.settings",
    "smail.tls", "smail.windows", "smail.windows.native", "smail.windows.codepages", "smail.windows.dpapi",
    "smail.windows.credentials", "smail.windows.events", "smail.windows.locks", "smail.windows.certificates",
})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    if module in SUPPORT_MODULES:
        return SUPPORT
    for prefix, stage in STAGES.items():
        if module == prefix or module.startswith(prefix + "."):
            return stage
    raise AssertionError(f"{module} is in no stage: add it to STAGES or SUPPORT_MODULES")


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every SMail module imported anywhere in the file, functions included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from smail import files` imports the module smail.files
                child = f"{node.module}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else node.module))
    return [(line, name) for line, name in found if name == "smail" or name.startswith("smail.")]


def violations(module: str, path: Path) -> list[str]:
    own = layer(module)
    wrong = []
    for line, target in imported(path):
        target_layer = layer(target)
        if own == SUPPORT and target_layer != SUPPORT:
            wrong.append(f"{path.name}:{line}: the support module {module} imports the stage module {target}")
        elif target_layer > own:
            wrong.append(f"{path.name}:{line}: {module} (stage {own}) imports {target}, a later stage ({target_layer})")
    return wrong


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_later_stage(module):
    assert violations(module, MODULES[module]) == []


def test_every_module_has_a_stage():
    assert {m: layer(m) for m in MODULES}  # raises for a module placed nowhere


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "options.py"
    source.write_text("def late():\n    from smail.transports import send_many\n", encoding="utf-8")
    assert violations("smail.options", source) == [
        "options.py:2: smail.options (stage 1) imports smail.transports, a later stage (4)"]


def test_the_check_sees_a_support_module_reaching_into_a_stage(tmp_path):
    source = tmp_path / "files.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from smail import config\n",
                      encoding="utf-8")
    assert violations("smail.files", source) == [
        "files.py:3: the support module smail.files imports the stage module smail.config"]
