"""No output of a run (log, error file, saved messages, results) may overwrite a file it reads:
checked on the options as given, before validation, so that nothing is written first.

It reads the batch's CSV for the files its rows name, which is why it stands apart from the
validation (config) and is called by the command line.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from smail import files
from smail.batch.table import files_named
from smail.converters import file_items, path_of
from smail.errors import ParamError, SMailError
from smail.i18n import _
from smail.options import OPTIONS, Opt, RawOptions


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
    batch = path_of(raw.get(Opt.BATCH))
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
    if batch is not None:
        _check_saved_messages(raw, inputs)


_SAVED_NAME = re.compile(r"row-\d{4,}\.eml", re.IGNORECASE)


def _check_saved_messages(raw: RawOptions, inputs: dict[tuple[str, object], Path]) -> None:
    """A batch's /SAVE_EML is a folder of row-0002.eml files, one per row: none of them may be
    a file the run reads or one of its other outputs."""
    folder = path_of(raw.get(Opt.SAVE_EML))
    if folder is None or not files.is_dir(folder):
        return  # created by the run: nothing in it yet
    place = files.identity(folder)
    named = [(_("a file SMail reads"), path) for path in inputs.values()]
    named += [(f"/{option.name}", output) for option in OPTIONS
              if option.output_file and option is not Opt.SAVE_EML
              for output in [path_of(raw.get(option.name))] if output is not None]
    for what, path in named:
        if _SAVED_NAME.fullmatch(path.name) and files.identity(path.parent) == place:
            raise ParamError(_("/SAVE_EML={folder} would write {path} ({what}): refused, so that it cannot be overwritten.").format(
                folder=folder, path=path, what=what))


def _matches(path: Path, pattern: str) -> bool:
    """Whether a wildcard of /ATTACH or /INLINE would pick the file `path`, once it exists."""
    folder = Path(pattern).parent
    return (files.identity(path.parent) == files.identity(folder)
            and fnmatch.fnmatch(os.path.normcase(path.name), os.path.normcase(Path(pattern).name.replace("[", "[[]"))))
