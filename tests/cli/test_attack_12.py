"""Hostile templates against the promise: never a hang, memory flat, exit 2 naming the row."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_files_and_streams import environ, no_crash

resource = pytest.importorskip("resource")

# A parent that runs one SMail process and prints that process's peak RSS (KiB on Linux).
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


@pytest.mark.parametrize("template", [
    # each step doubles a value: `~`, a format filter, the % operator, str.format, a macro
    '{% set ns = namespace(s=x) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}',
    '{% set ns = namespace(s=x) %}{% for i in range(40) %}{% set ns.s = "%s%s"|format(ns.s, ns.s) %}{% endfor %}{{ ns.s|length }}',
    '{% set ns = namespace(s=x) %}{% for i in range(40) %}{% set ns.s = "%s%s" % (ns.s, ns.s) %}{% endfor %}{{ ns.s|length }}',
    '{% set ns = namespace(s=x) %}{% for i in range(40) %}{% set ns.s = "{}{}".format(ns.s, ns.s) %}{% endfor %}{{ ns.s|length }}',
    '{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ d(x, 40) }}',
    # one step that writes an allowed width on each of many lines, or a break after each character
    '{{ ("\\n" * 1000)|indent(10000000, blank=True)|length }}',
    '{{ (x * 1000000)|wordwrap(1, wrapstring=x * 1000)|length }}',
    # lists nested in lists, written out at once
    '{% set a = [x * 1000000] * 4 %}{% set a = [a, a, a, a] %}{% set a = [a, a, a, a] %}{{ a }}',
])
def test_a_template_building_a_huge_value_is_exit_2_at_once_with_flat_memory(tmp_path: Path, template: str):
    rows = tmp_path / "rows.csv"
    rows.write_text("TO,x\nu@t.test,a\n", encoding="utf-8")
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "smail", "/DRY_RUN", "/SMTP_SERVER=127.0.0.1",
         "/FROM_ADDR=a@t.test", f"/SUBJECT={template}", "/BODY=hi", f"/BATCH={rows}"],
        capture_output=True, cwd=tmp_path, env=environ(tmp_path), timeout=120)
    elapsed = time.monotonic() - started
    stderr = process.stderr.decode("utf-8", "replace")
    no_crash(stderr)
    assert process.returncode == 2, stderr
    assert "Row 2: /SUBJECT" in stderr
    peak_kib = int(process.stdout.split()[-1]) // (1024 if sys.platform == "darwin" else 1)
    assert peak_kib < 400 * 1024, f"peak RSS {peak_kib} KiB"
    assert elapsed < 60
