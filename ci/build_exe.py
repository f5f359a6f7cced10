"""Build SMail with PyInstaller from spec/SMail-<arch>.spec, then check what came out.

    python ci/build_exe.py x86|x64     Windows: dist/<arch>/SMail.exe, with a Python of that bitness
    python ci/build_exe.py native      this machine's architecture: dist/SMail (dist/SMail.exe)

PyInstaller's work files go to .pyinstaller/ (git-ignored), never to the tracked build/ folder.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build"))

from pyinstaller_common import (  # noqa: E402
    LANGUAGES,
    BuildError,
    archive_names,
    check_architecture,
    interpreter_bits,
    missing_openssl,
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("x86", "x64", "native"):
        print(__doc__, file=sys.stderr)
        return 2
    native = argv[0] == "native"
    arch = ("x64" if interpreter_bits() == 64 else "x86") if native else argv[0]
    check_architecture(arch)
    distpath = ROOT / "dist" if native else ROOT / "dist" / arch
    import PyInstaller.__main__

    PyInstaller.__main__.run([
        str(ROOT / "spec" / f"SMail-{arch}.spec"), "--noconfirm", "--clean", "--log-level=WARN",
        "--distpath", str(distpath), "--workpath", str(ROOT / ".pyinstaller" / arch)])
    exe = distpath / ("SMail.exe" if sys.platform == "win32" else "SMail")
    if not exe.is_file():
        raise BuildError(f"PyInstaller produced no {exe}.")
    names = archive_names(exe)
    missing = missing_openssl(names)
    catalogs = [f"smail/_locales/{lang}/LC_MESSAGES/smail.mo" for lang in LANGUAGES]
    missing += [c for c in catalogs if c not in {n.replace("\\", "/") for n in names}]
    if missing:
        raise BuildError(f"{exe} lacks {', '.join(missing)}.")
    checksum = sha256(exe)
    (exe.parent / (exe.name + ".sha256")).write_text(f"{checksum}  {exe.name}\n", encoding="ascii")
    print(f"Built {exe.relative_to(ROOT)} ({exe.stat().st_size / 1e6:.1f} MB), sha256 {checksum}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
