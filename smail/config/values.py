"""Converted option values, each converted once, with the table's defaults: what every part of
the configuration reads."""

from __future__ import annotations

from typing import TypeVar

from smail.errors import ParamError
from smail.i18n import _
from smail.kinds import Mode
from smail.options import OPTIONS, Opt, Option, RawOptions, convert
from smail.redact import Secret

T = TypeVar("T")


class Values:
    """Converted option values, each converted once, with the table's defaults."""

    def __init__(self, raw: RawOptions, options: tuple[Option, ...] = OPTIONS) -> None:
        self.raw = raw
        self.converted: dict[str, object] = {}
        if raw.given(Opt.MODE):  # an invalid mode is exit 9 whatever else is wrong
            self.converted[Opt.MODE.name] = convert(Opt.MODE, raw.get(Opt.MODE) or "")
        for option in options:
            if option.name in self.converted or not raw.given(option):
                continue
            if option.repeat:
                items: list[object] = []
                for item in raw.get_list(option):
                    value = convert(option, item)
                    items.extend(value if isinstance(value, tuple) else (value,))
                self.converted[option.name] = tuple(items)
            else:
                self.converted[option.name] = convert(option, raw.get(option) or "")

    def given(self, option: Option) -> bool:
        return option.name in self.converted

    def get(self, option: Option, kind: type[T]) -> T | None:
        """The converted value of `option`, else the table's default (converters fix its type)."""
        value = self.converted.get(option.name, option.default)
        return value if isinstance(value, kind) else None

    def require(self, option: Option, kind: type[T]) -> T:
        """A value the table gives a default for."""
        value = self.get(option, kind)
        assert value is not None, option.name
        return value

    def items(self, option: Option, kind: type[T]) -> tuple[T, ...]:
        value = self.converted.get(option.name)
        return tuple(v for v in value if isinstance(v, kind)) if isinstance(value, tuple) else ()

    def text(self, option: Option) -> str | None:
        value = self.converted.get(option.name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def flag(self, option: Option) -> bool:
        return bool(self.get(option, bool))

    def secret(self, option: Option) -> Secret | None:
        """A secret given directly or through its *_FILE option, not both."""
        direct = self.get(option, Secret)
        direct = direct if direct is not None and direct.reveal().strip() else None
        for file_option in OPTIONS:
            if file_option.secret_file_of is option and self.given(file_option):
                if direct is not None:
                    raise ParamError(_("Give /{name} or /{file_name}, not both.").format(
                        name=option.name, file_name=file_option.name))
                return self.get(file_option, Secret)
        return direct


def required(option: Option, mode: Mode) -> ParamError:
    return ParamError(_("Option /{name} is required in {mode} mode.").format(name=option.name, mode=mode.value))


def require_all(values: Values, mode: Mode) -> None:
    """Every option the OPTIONS table marks as required in `mode`, in table order."""
    for option in OPTIONS:
        if mode in option.required_in and values.text(option) is None:
            raise required(option, mode)
