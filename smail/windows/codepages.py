"""The Windows code pages as Python codecs: ANSI (Notepad's "ANSI" files) and OEM (what cmd.exe
pipes carry)."""

from __future__ import annotations

import codecs
import ctypes
import functools
import sys
from collections.abc import Callable
from typing import Any

from smail.windows.native import _dll, _prototype

CP_UTF8 = 65001


def _code_page(number: int, default: str) -> str:
    """A Python codec name for a Windows code page number."""
    if number == CP_UTF8:
        return "utf-8"
    name = f"cp{number}"
    try:
        codecs.lookup(name)
    except LookupError:
        return default  # e.g. cp20127: "mbcs"/"oem" are Python's codecs for "whatever the ANSI/OEM page is"
    return name


def ansi_code_page(get_acp: Callable[[], int] | None = None) -> str:
    """The ANSI code page's codec (Notepad's "ANSI" files), "cp1252" off Windows."""
    if get_acp is None:
        if sys.platform != "win32":
            return "cp1252"
        get_acp = _kernel32().GetACP
    return _code_page(int(get_acp()), "mbcs")


def oem_code_page(get_oemcp: Callable[[], int] | None = None) -> str:
    """The OEM code page's codec (what cmd.exe pipes carry), "cp850" off Windows."""
    if get_oemcp is None:
        if sys.platform != "win32":
            return "cp850"
        get_oemcp = _kernel32().GetOEMCP
    return _code_page(int(get_oemcp()), "oem")


@functools.cache
def _kernel32() -> Any:
    kernel32 = _dll("kernel32")
    _prototype(kernel32.GetACP, ctypes.c_uint)
    _prototype(kernel32.GetOEMCP, ctypes.c_uint)
    return kernel32
