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
