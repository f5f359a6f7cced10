"""Run actionlint on .github/workflows (make lint). The linter comes from the `lint` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if binary is None:
        sys.exit("actionlint is not installed: pip install -e '.[lint]' (make lint does it).")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    result = subprocess.run([binary, *workflows], cwd=ROOT)
    if result.returncode == 0:
        print(f"actionlint: {len(workflows)} workflow(s) clean")
    sys.exit(result.returncode)
