"""No output of a run (log, error file, saved messages, results) may overwrite a file it reads:
checked on the options as given, before validation, so that nothing is written first.

It reads the batch's CSV for the files its rows name, which is why it stands apart from the
validation (config) and is called by the command line.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from smail import files
from smail.batch.table import files_named
from smail.converters import file_items, path_of
from smail.errors import ParamError, SMailError
from smail.i18n import _
from smail.options import OPTIONS, RawOptions


def check_outputs(raw: RawOptions) -> None:
    """An output (log, error file, saved message, result) that names an input file is exit 2,
    decided before anything is written."""
    inputs: dict[tuple[str, object], Path] = {}
    patterns: list[str] = []
    for path in raw.read_files:
        inputs[files.identity(path)] = path
    named: list[tuple[bool, str]] = []  # (a list of files?, value) for every input the run reads
    for option in OPTIONS:
        if option.input_file and raw.given(option.name):
            given = raw.get_list(option.name) if option.repeat else [raw.get(option.name) or ""]
            named += [(option.repeat, value) for value in given]
    batch = path_of(raw.get("BATCH"))
    if batch is not None:
        named += [(True, item) for item in files_named(batch)]
    for is_list, value in named:
        for item in (file_items(value) if is_list else [value.strip().strip('"')]):
            if not item or "\0" in item:
                continue
            if "*" in item or "?" in item:
                patterns.append(item)  # the log may not exist yet: match outputs by name too
            try:
                paths = files.expand_wildcards(item) if is_list else [Path(item)]
            except SMailError:  # reported by validation, with its own exit code
                continue
            for path in paths:
                inputs.setdefault(files.identity(path), path)
    outputs: dict[tuple[str, object], str] = {}
    for option in OPTIONS:
        output = path_of(raw.get(option.name)) if option.output_file else None
        if output is None:
            continue
        clash = inputs.get(files.identity(output))
        if clash is None:
            clash = next((Path(p) for p in patterns if _matches(output, p)), None)
        if clash is not None:
            raise ParamError(_("/{name}={path} names a file SMail reads ({input}): refused, so that it cannot be overwritten.").format(
                name=option.name, path=output, input=clash))
        if files.exists(output) and not files.is_file(output):
            continue  # a device (NUL, /dev/null) takes any number of outputs
        other = outputs.setdefault(files.identity(output), option.name)
        if other != option.name:
            raise ParamError(_("/{name} and /{other} name the same file {path}: give each its own file.").format(
                name=option.name, other=other, path=output))


def _matches(path: Path, pattern: str) -> bool:
    """Whether a wildcard of /ATTACH or /INLINE would pick the file `path`, once it exists."""
    folder = Path(pattern).parent
    return (files.identity(path.parent) == files.identity(folder)
            and fnmatch.fnmatch(os.path.normcase(path.name), os.path.normcase(Path(pattern).name.replace("[", "[[]"))))
