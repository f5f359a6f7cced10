"""The shared PyInstaller helper: architecture check, version resource, bundled data."""

from __future__ import annotations

from pathlib import Path

import pyinstaller_common as common  # build/ is on pytest's pythonpath
import pytest

from smail import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arch, bits", [("x86", 64), ("x64", 32)])
def test_wrong_bitness_is_refused(arch, bits):
    with pytest.raises(common.BuildError, match=f"this Python is {bits}-bit"):
        common.check_architecture(arch, bits=bits)


@pytest.mark.parametrize("arch, bits", [("x86", 32), ("x64", 64)])
def test_matching_bitness_is_accepted(arch, bits):
    common.check_architecture(arch, bits=bits)


def test_unknown_architecture():
    with pytest.raises(common.BuildError, match="Unknown architecture"):
        common.check_architecture("arm64", bits=64)


def test_specs_differ_by_one_constant():
    x86 = (ROOT / "spec" / "SMail-x86.spec").read_text(encoding="utf-8").splitlines()
    x64 = (ROOT / "spec" / "SMail-x64.spec").read_text(encoding="utf-8").splitlines()
    assert [(a, b) for a, b in zip(x86, x64, strict=True) if a != b] == [('ARCH = "x86"', 'ARCH = "x64"')]


def test_version_resource_carries_the_package_version():
    captured: dict = {}

    def record(kind):
        def make(*args, **kwargs):
            captured.setdefault(kind, []).append((args, kwargs))
            return (kind, args, kwargs)
        return make
    names = {n: record(n) for n in ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable",
                                    "StringStruct", "VarFileInfo", "VarStruct")}
    eval(common.version_resource_text(__version__, "x86"), names)  # the format PyInstaller evaluates
    strings = dict(args for args, _kw in captured["StringStruct"])
    assert strings["ProductName"] == "SMail"
    assert strings["FileVersion"] == strings["ProductVersion"] == __version__
    assert strings["OriginalFilename"] == "SMail.exe"
    assert "x86" in strings["FileDescription"] and strings["CompanyName"]
    [(_args, fixed)] = captured["FixedFileInfo"]
    assert fixed["filevers"] == common.version_numbers(__version__)
    assert common.read_version(ROOT) == __version__


def test_catalogs_are_bundled_and_required(tmp_path):
    datas = common.catalog_datas(ROOT)
    assert [dest for _src, dest in datas] == ["smail/_locales/en/LC_MESSAGES", "smail/_locales/fr/LC_MESSAGES"]
    assert all(Path(src).is_file() and src.endswith("smail.mo") for src, _dest in datas)
    with pytest.raises(common.BuildError, match="Missing compiled catalog"):
        common.catalog_datas(tmp_path)


@pytest.mark.parametrize("platform, names, missing", [
    ("win32", ["python311.dll", "libssl-3.dll", "libcrypto-3.dll"], []),
    ("win32", ["libssl-3-x64.dll", "libcrypto-3-x64.dll"], []),
    ("win32", ["python311.dll", "libcrypto-3.dll"], ["libssl-3*.dll"]),
    ("linux", ["lib-dynload/_ssl.so", "libssl.so.3", "libcrypto.so.3"], []),
    ("linux", ["libssl.so.3"], ["libcrypto.so.3"]),
])
def test_openssl_check(platform, names, missing):
    assert common.missing_openssl(names, platform) == missing


# --- the GitHub matrix and the Wine stage share their pins, spec, build script and smoke test ------

def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"ci_{name}", ROOT / "ci" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WORKFLOW = (ROOT / ".github" / "workflows" / "build.yml").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def test_the_windows_python_is_the_same_in_the_workflow_the_locks_the_makefile_and_the_readme():
    import re

    lock = _load("lock")
    assert re.findall(r'python-version: "([^"]+)"', WORKFLOW) == [lock.WINDOWS_PYTHON, lock.LINUX_PYTHON]
    minor = ".".join(lock.WINDOWS_PYTHON.split(".")[:2])
    assert f"PY_x86 ?= py -{minor}-32" in MAKEFILE and f"PY_x64 ?= py -{minor}-64" in MAKEFILE
    for arch in ("x86", "x64"):
        header = (ROOT / "build" / "requirements" / f"win-{arch}.txt").read_text(encoding="utf-8").splitlines()[0]
        assert f"for CPython {lock.WINDOWS_PYTHON} " in header
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {lock.WINDOWS_PYTHON}" in readme and f"py -{minor}-64" in readme


def test_the_wine_lock_is_for_the_verified_interpreter():
    lock, wine = _load("lock"), _load("wine")
    header = wine.LOCK.read_text(encoding="utf-8").splitlines()[0]
    assert wine.LOCK.name == "wine-x64.txt" and f"for CPython {lock.WINE_PYTHON} (win_amd64)" in header
    minor = lock.WINE_PYTHON.split(".")[1]
    assert wine.FOLDER == f"cp3{minor}" and wine.DLL == f"python3{minor}.dll"
    assert f'"--python-version", "3.{minor}"' in (ROOT / "ci" / "wine.py").read_text(encoding="utf-8")


def test_the_matrix_and_the_wine_stage_run_the_same_spec_build_script_and_smoke_test():
    assert "python ci/build_exe.py ${{ matrix.arch }}" in WORKFLOW
    assert "python ci/smoke.py dist/${{ matrix.arch }}/SMail.exe" in WORKFLOW
    source = (ROOT / "ci" / "wine.py").read_text(encoding="utf-8")
    assert '["ci\\\\build_exe.py", "x64"]' in source and '"ci/smoke.py", "--wine", "dist/x64/SMail.exe"]' in source
    assert 'ROOT / "spec" / f"SMail-{arch}.spec"' in (ROOT / "ci" / "build_exe.py").read_text(encoding="utf-8")
    test_target = MAKEFILE.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert " wine" in test_target and "\nwine: " in MAKEFILE


def test_the_pinned_interpreter_and_roots():
    wine = _load("wine")
    pins = wine.pinned_hashes()
    assert pins[wine.SDIST] == "6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754"
    assert all(f"{wine.FOLDER}/{name}" in pins for name in wine.KEY_FILES + ("python.cat", "python313.zip"))
    with __import__("tempfile").TemporaryDirectory() as folder:
        assert wine.roots_bundle(Path(folder)).read_text(encoding="ascii").count("BEGIN CERTIFICATE") == 3


def test_a_tampered_interpreter_is_refused_before_anything_of_it_runs(tmp_path):
    """On the python.org files themselves (cached by the Wine stage, which `make test` runs first)."""
    import shutil

    wine = _load("wine")
    sdist = wine.CACHE / wine.SDIST
    if not sdist.is_file() or shutil.which("osslsigncode") is None:
        pytest.skip("the Wine stage has not fetched the interpreter here (`make wine`)")
    folder = tmp_path / wine.FOLDER
    wine.unpack(sdist, folder)
    wine.verify(folder, quiet=True)
    dll = folder / wine.DLL
    data = bytearray(dll.read_bytes())
    data[len(data) // 3] ^= 0x80
    dll.write_bytes(bytes(data))
    with pytest.raises(wine.StageError) as refused:
        wine.verify(folder, quiet=True)
    message = str(refused.value.code)
    assert f"{wine.DLL}: Authenticode signature INVALID" in message and f"{wine.DLL}: SHA-256" in message
    (folder / "extra.dll").write_bytes(b"MZ")
    with pytest.raises(wine.StageError, match="extra.dll: not pinned"):
        wine.verify(folder, quiet=True)
