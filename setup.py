"""Compiles the FR/EN message catalogs into the package when it is built (pip install .).

setuptools' work files go to .setuptools/ (git-ignored): the tracked build/ folder holds
SMail's build scripts, which every caller imports the same way, by putting build/ on sys.path.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "build"))

import catalogs  # noqa: E402


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        catalogs.compile_all(Path(self.build_lib) / "smail" / "_locales")


setup(cmdclass={"build_py": BuildWithCatalogs},
      options={"build": {"build_base": str(ROOT / ".setuptools")}})
