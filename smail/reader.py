"""argv (with its @files), SMAIL_* variables and the /CONFIG file -> RawOptions, merged by
precedence; every name is looked up in the one OPTIONS table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from smail import files
from smail.converters import ConversionError, existing_file, unquote
from smail.errors import FileMissingError, ParamError, SMailError
from smail.i18n import _
from smail.options import BY_NAME, OPTIONS, Opt, Option, RawOptions, Source, echoed, find


@dataclass
class _Layer:
    values: dict[str, str | list[str]] = field(default_factory=dict)

    def put(self, option: Option, value: str) -> None:
        if option.repeat:
            existing = self.values.setdefault(option.name, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            self.values[option.name] = value  # a scalar given twice: the last wins


def split_token(token: str) -> tuple[str, str | None] | None:
    """`/NAME=value`, `-NAME=value`, `--name=value` -> (name, value); None if not an option."""
    if token.startswith("--"):
        body = token[2:]
    elif token.startswith(("/", "-")):
        body = token[1:]
    else:
        return None
    name, sep, value = body.partition("=")
    if not name:
        return None
    return name, (value if sep else None)


# The most all the @files of one run may hold together (see _Reader.expand).
RESPONSE_FILES_LIMIT: Final = 256
RESPONSE_LINES_LIMIT: Final = 20_000
# The most lines a /CONFIG file may have.
CONFIG_LINES_LIMIT: Final = 10_000


def _no_response_file(path: Path) -> FileMissingError:
    return FileMissingError(_("Response file not found: {path}").format(path=path))


class _Reader:
    """One pass over argv, SMAIL_* and /CONFIG. Tolerant, it skips what it cannot read, so
    that /LANG, /?, /LOG and /ERROR_FILE work wherever they are written, even when the rest
    is wrong; strict, it raises on the first problem."""

    def __init__(self, tolerant: bool) -> None:
        self.tolerant = tolerant
        self.read_files: list[Path] = []
        # What all the @files of one run may add up to, whatever names whatever: nesting
        # alone bounds nothing (ten files naming each other ten times is 10^8 reads).
        self.files_left = RESPONSE_FILES_LIMIT
        self.bytes_left = files.TEXT_LIMIT
        self.lines_left = RESPONSE_LINES_LIMIT
        self.exhausted = False

    def _fail(self, error: SMailError) -> None:
        if not self.tolerant:
            raise error

    def _too_much(self, path: Path | str) -> None:
        """The budget of response files is spent: exit 2 naming the file (once, tolerant)."""
        self.exhausted = True
        self._fail(ParamError(_("Response files expand to too much (at most {files} files, {lines} lines and {size} MB in all): {path}").format(
            files=RESPONSE_FILES_LIMIT, lines=RESPONSE_LINES_LIMIT, size=files.TEXT_LIMIT // (1024 * 1024),
            path=path)))

    def expand(self, argv: Sequence[str], depth: int = 0, base: Path | None = None) -> list[str]:
        """Replace each @file by its lines; nested @files are relative to the file naming them."""
        tokens: list[str] = []
        for token in argv:
            if not token.startswith("@") or len(token) == 1:
                tokens.append(token)
                continue
            if self.exhausted:
                break
            if depth >= 8:
                self._fail(ParamError(_("Response files are nested too deeply: {path}").format(path=token[1:])))
                continue
            path = Path(unquote(token[1:]))
            if base is not None and not path.is_absolute():
                path = base / path
            if self.files_left <= 0:
                self._too_much(path)
                break
            self.files_left -= 1
            try:
                if not files.exists(path):
                    raise _no_response_file(path)
                data = files.read_bounded(path, self.bytes_left)
            except (SMailError, ValueError, OSError) as exc:
                if isinstance(exc, files.TooLargeError) and self.bytes_left < files.TEXT_LIMIT:
                    self._too_much(path)  # larger than what the other files left
                    break
                self._fail(exc if isinstance(exc, SMailError) else
                           _no_response_file(path))
                continue
            self.bytes_left -= len(data)
            self.read_files.append(path)
            lines = [line.strip() for line in files.decode_text(data).splitlines()]
            lines = [line for line in lines if line and not line.startswith(("#", ";"))]
            self.lines_left -= len(lines)
            if self.lines_left < 0:
                self._too_much(path)
                break
            tokens.extend(self.expand(lines, depth + 1, path.parent))
        return tokens

    def argv_layer(self, argv: Sequence[str]) -> _Layer:
        layer = _Layer()
        after_secret = False
        for token in self.expand(argv):
            try:
                parts = split_token(token)
                if parts is None:
                    # A word after a secret option is most likely the rest of a password the
                    # shell split (`/SMTP_PASSWORD= %PW%`, an unquoted space): never shown.
                    raise ParamError(_("Unexpected argument \"{arg}\": options look like /NAME=value.").format(
                        arg="****" if after_secret else echoed(token[:200])))
                name, value = parts
                after_secret = False
                option = find(name, suggest=not self.tolerant)
                after_secret = option.secret
                if value is None:
                    if not option.switch:
                        raise ParamError(_("Option /{name} needs a value: /{name}=...").format(
                            name=option.name))
                    value = "YES"
            except ParamError as exc:
                self._fail(exc)
                continue
            layer.put(option, unquote(value) if value[:1] in "\"'" else value)
        return layer

    @staticmethod
    def environ_layer(environ: Mapping[str, str]) -> _Layer:
        layer = _Layer()
        for option in OPTIONS:
            value = next((environ[name] for name in option.env_names if name in environ), None)
            if value is not None:
                layer.put(option, value)
        return layer

    def config_layer(self, value: str) -> _Layer:
        layer = _Layer()
        try:
            path = existing_file(value)
            content = files.read_text_file(path)
        except (SMailError, ConversionError) as exc:
            self._fail(exc if isinstance(exc, SMailError) else ParamError(str(exc)))
            return layer
        self.read_files.append(path)
        # SMail has about a hundred options: a file of more lines than this is no configuration
        # of it (and configparser would take seconds on it, twice).
        if content.count("\n") > CONFIG_LINES_LIMIT:
            self._fail(ParamError(_("The configuration file {path} has more than {limit} lines: it cannot be a configuration of SMail.").format(
                path=path, limit=CONFIG_LINES_LIMIT)))
            return layer
        import configparser  # only with /CONFIG

        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(content, source=str(path))
        except configparser.Error as exc:
            self._fail(ParamError(_("Cannot read the configuration file {path}: {reason}").format(
                path=path, reason=str(exc).splitlines()[0])))
            return layer
        # Section names are case-insensitive in Windows INI files: [SMail] is [smail].
        section = next((name for name in parser.sections() if name.lower() == "smail"), None)
        if section is None:
            self._fail(ParamError(_("The configuration file {path} has no [smail] section.").format(path=path)))
            return layer
        for key, item in parser.items(section):
            if self.tolerant and key.strip().upper().replace("-", "_") not in BY_NAME:
                continue  # the strict pass names it; no message to build here
            try:
                option = find(key, suggest=not self.tolerant)
                if option is Opt.CONFIG:
                    raise ParamError(_("a configuration file cannot name another one."))
            except ParamError as exc:
                self._fail(ParamError(_("In the configuration file {path}: {problem}").format(
                    path=path, problem=exc.message)))
                continue
            # A quoted value is one value, also for a list ("a@b.test, c@d.test" is two items).
            layer.put(option, unquote(item))
        return layer


def parse(argv: Sequence[str], environ: Mapping[str, str], *, tolerant: bool = False) -> RawOptions:
    """Merge the command line (with its @files), SMAIL_* variables and /CONFIG, in that order
    of precedence; `tolerant` skips whatever cannot be read instead of raising."""
    reader = _Reader(tolerant)
    layers = [(Source.COMMAND_LINE, reader.argv_layer(argv)),
              (Source.ENVIRONMENT, reader.environ_layer(environ))]
    config = next((layer.values[Opt.CONFIG.name] for _s, layer in layers if Opt.CONFIG.name in layer.values), None)
    if isinstance(config, str):
        layers.append((Source.CONFIG_FILE, reader.config_layer(config)))
    from smail import proxy

    raw = RawOptions(read_files=reader.read_files, proxy_environment=proxy.environment(environ))
    for source, layer in reversed(layers):  # lowest precedence first, higher ones overwrite
        for name, value in layer.values.items():
            raw.values[name] = value
            raw.sources[name] = source
    return raw
