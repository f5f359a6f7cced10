"""What spec/SMail-x86.spec and spec/SMail-x64.spec share: the architecture check, the
bundled catalogs, the OpenSSL check and the Windows version resource.

PyInstaller cannot cross-compile: the interpreter's bitness decides the executable's, so a
spec refuses an interpreter of the wrong bitness instead of producing a mislabelled exe.
"""

from __future__ import annotations

import fnmatch
import re
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # smail, beside build/
from smail.i18n import LANGUAGES  # noqa: E402  (the one list of languages; the catalogs bundled)

ARCH_BITS = {"x86": 32, "x64": 64}
# The OpenSSL 3 libraries the frozen ssl module needs, by platform (as PyInstaller names them).
OPENSSL = {
    "win32": ("libssl-3*.dll", "libcrypto-3*.dll"),
    "linux": ("libssl.so.3", "libcrypto.so.3"),
    "darwin": ("libssl.3.dylib", "libcrypto.3.dylib"),
}
# A one-file executable unpacks its native libraries at every start; inflating them took half of
# SMail's start-up (264 ms against 136 ms measured by `make bench`). They are stored
# uncompressed: the exe grows from about 15 to 33 MB and starts as fast as a minimal
# smtplib + ssl program. Python modules and data stay compressed.
ARCHIVE_COMPRESSION = {"EXTENSION": False, "BINARY": False, "DATA": True, "EXECUTABLE": True,
                       "PYSOURCE": True, "PYMODULE": True, "SPLASH": True, "PYZ": False, "SYMLINK": False}
# Modules SMail never imports at run time, left out of the one-file executable. A one-file exe
# unpacks every native module it carries at each start, and PyInstaller runs a start-up hook for
# some packages (multiprocessing), so what is left out here is neither unpacked nor imported.
# Each one was checked against PyInstaller's import graph: nothing on SMail's paths needs it
# (the smoke test sends through SMTP, STARTTLS and Graph with this list).
EXCLUDES = [
    # The standard library's GUI, test, debugging, documentation and packaging tools.
    "tkinter", "_tkinter", "turtle", "turtledemo", "idlelib", "unittest", "doctest", "pdb", "pydoc",
    "pydoc_data", "test", "lib2to3", "ensurepip", "venv", "distutils", "setuptools", "pkg_resources",
    "pip", "curses", "_curses", "readline", "sqlite3", "_sqlite3", "dbm",
    # Process pools: only concurrent.futures.process imports it, and PyInstaller's multiprocessing
    # hook would import it at every start; xmlrpc comes only with it (multiprocessing.connection).
    "multiprocessing", "_multiprocessing", "_posixshmem", "xmlrpc",
    # Only typing_extensions names asyncio, for an @deprecated coroutine on Python < 3.12.
    "asyncio", "_asyncio", "_overlapped",
    # Compression formats SMail never reads: zipfile, tarfile and shutil import them inside
    # try/except ImportError (3.14+: compression.zstd as well).
    "bz2", "_bz2", "lzma", "_lzma", "compression.bz2", "compression.lzma", "compression.zstd", "_zstd",
]
PRODUCT = "SMail"
DESCRIPTION = "SMail - command-line e-mail sender (SMTP, TLS, SASL, XOAUTH2, Microsoft Graph)"
COMPANY = "SMail developers"


class BuildError(SystemExit):
    """Stops the build with a message (SystemExit so that PyInstaller prints it plainly)."""


def interpreter_bits() -> int:
    return struct.calcsize("P") * 8


def check_architecture(arch: str, *, bits: int | None = None) -> None:
    """Refuse to build an x86 exe with a 64-bit Python, and vice versa."""
    if arch not in ARCH_BITS:
        raise BuildError(f"Unknown architecture {arch!r}: expected one of {', '.join(ARCH_BITS)}.")
    bits = interpreter_bits() if bits is None else bits
    if ARCH_BITS[arch] != bits:
        raise BuildError(f"SMail-{arch}.spec builds a {ARCH_BITS[arch]}-bit executable, but this "
                         f"Python is {bits}-bit: run the build with a {ARCH_BITS[arch]}-bit Python.")


def read_version(root: Path) -> str:
    """smail.__version__, read without importing the package."""
    text = (root / "smail" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise BuildError("smail/__init__.py has no __version__.")
    return match.group(1)


def version_numbers(version: str) -> tuple[int, int, int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", version)[:4]]
    return tuple((numbers + [0, 0, 0, 0])[:4])  # type: ignore[return-value]


def version_resource_text(version: str, arch: str) -> str:
    """A PyInstaller version file (VSVersionInfo), U.S. English, Unicode."""
    numbers = version_numbers(version)
    strings = {
        "CompanyName": COMPANY,
        "FileDescription": f"{DESCRIPTION} ({arch})",
        "FileVersion": version,
        "InternalName": PRODUCT,
        "LegalCopyright": f"(c) {COMPANY}",
        "OriginalFilename": f"{PRODUCT}.exe",
        "ProductName": PRODUCT,
        "ProductVersion": version,
    }
    entries = ",\n          ".join(f"StringStruct({k!r}, {v!r})" for k, v in strings.items())
    return f"""VSVersionInfo(
  ffi=FixedFileInfo(filevers={numbers}, prodvers={numbers}, mask=0x3f, flags=0x0, OS=0x40004,
                    fileType=0x1, subtype=0x0, date=(0, 0)),
  kids=[
    StringFileInfo([StringTable('040904B0', [
          {entries}])]),
    VarFileInfo([VarStruct('Translation', [1033, 1200])])
  ]
)
"""


def catalog_datas(root: Path) -> list[tuple[str, str]]:
    """(source, destination) pairs for the compiled catalogs; the build fails without them."""
    datas = []
    for language in LANGUAGES:
        mo = root / "smail" / "_locales" / language / "LC_MESSAGES" / "smail.mo"
        if not mo.is_file():
            raise BuildError(f"Missing compiled catalog {mo}: run `make catalogs` "
                             "(python build/catalogs.py compile) first.")
        datas.append((str(mo), f"smail/_locales/{language}/LC_MESSAGES"))
    return datas


def platform_key(platform: str = sys.platform) -> str:
    return "linux" if platform.startswith("linux") else platform


def missing_openssl(names: Iterable[str], platform: str = sys.platform) -> list[str]:
    """The OpenSSL libraries absent from `names` (file names in the frozen output)."""
    base = [Path(n).name.lower() for n in names]
    return [pattern for pattern in OPENSSL.get(platform_key(platform), ())
            if not any(fnmatch.fnmatch(name, pattern.lower()) for name in base)]


def build_exe(arch: str, root: Path) -> None:
    """Run Analysis, PYZ and EXE for a one-file console SMail; called from the spec files."""
    from PyInstaller.building.build_main import EXE, PYZ, Analysis
    from PyInstaller.config import CONF

    check_architecture(arch)
    version = read_version(root)
    analysis = Analysis(
        [str(root / "smail" / "__main__.py")],
        pathex=[str(root)],
        datas=catalog_datas(root),
        # Imported on demand by SMail (listed so that no analysis can miss them): each path's
        # modules, jinja2 for batch templates among them.
        hiddenimports=["smail.transports.smtp", "smail.transports.graph", "smail.auth", "smail.certificate",
                       "smail.batch", "smail.outbox", "smail.windows", "smail.htmltext", "jinja2.sandbox",
                       "smail.proxy", "python_socks.sync"],
        excludes=EXCLUDES,
        noarchive=False,
    )
    missing = missing_openssl((name for name, *_rest in analysis.binaries))
    if missing:
        raise BuildError(f"The frozen SMail would lack {', '.join(missing)}: TLS would not work "
                         "on a machine without OpenSSL. Use a Python built with OpenSSL 3.")
    version_file = None
    if sys.platform == "win32":
        version_file = Path(CONF["workpath"]) / "version_info.txt"
        version_file.write_text(version_resource_text(version, arch), encoding="utf-8")
    pyz = PYZ(analysis.pure)
    EXE(
        pyz,
        analysis.scripts,
        analysis.binaries,
        analysis.datas,
        [],
        name=PRODUCT,
        console=True,
        debug=False,
        strip=sys.platform != "win32",
        upx=False,
        runtime_tmpdir=None,
        version=str(version_file) if version_file else None,
        cdict=ARCHIVE_COMPRESSION,
    )


# The entries a one-file executable writes to its temporary folder at every start (binaries,
# data files, symlinks); Python modules ('m', 's') and the PYZ ('z') are read from the exe itself.
UNPACKED_TYPES = frozenset("bxn")


def unpacked_entries(exe: Path) -> list[tuple[int, str]]:
    """(size, name) of what each start of a one-file executable unpacks."""
    from PyInstaller.archive.readers import CArchiveReader

    return [(entry[2], name) for name, entry in CArchiveReader(str(exe)).toc.items() if entry[4] in UNPACKED_TYPES]


def archive_names(exe: Path) -> Sequence[str]:
    """The file names inside a built one-file executable."""
    from PyInstaller.archive.readers import CArchiveReader

    return list(CArchiveReader(str(exe)).toc.keys())
