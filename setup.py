"""Compiles the FR/EN message catalogs into the package when it is built (pip install .)."""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        spec = importlib.util.spec_from_file_location("catalogs", ROOT / "build" / "catalogs.py")
        assert spec and spec.loader
        catalogs = importlib.util.module_from_spec(spec)
        sys.modules["catalogs"] = catalogs  # dataclasses resolve annotations through it
        spec.loader.exec_module(catalogs)
        catalogs.compile_all(Path(self.build_lib) / "smail" / "_locales")


setup(cmdclass={"build_py": BuildWithCatalogs})
