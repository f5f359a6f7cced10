"""Subject and body cells as Jinja2 templates, rendered in a sandbox with the row's variables."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from smail.errors import ParamError
from smail.i18n import _

if TYPE_CHECKING:
    from jinja2 import Template

TEMPLATE_CACHE: Final = 32


@dataclass(frozen=True)
class Compiled:
    template: Template
    variables: frozenset[str]   # the names it reads that it does not define itself


@functools.lru_cache(maxsize=2)
def _environment(html: bool) -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=html,
                                         keep_trailing_newline=True)


@functools.lru_cache(maxsize=TEMPLATE_CACHE)
def compile_template(text: str, html: bool) -> Compiled:
    """A sandboxed Jinja2 template; HTML is autoescaped. Raises jinja2.TemplateError."""
    from jinja2 import meta

    environment = _environment(html)
    tree = environment.parse(text)
    names = meta.find_undeclared_variables(tree) - set(environment.globals)
    return Compiled(environment.from_string(tree), frozenset(names))


def render_template(text: str, *, html: bool, variables: Mapping[str, str], row: int, template: str,
                    used: set[str] | None = None) -> str:
    """Render `text` with the row's variables (looked up in any case); every variable the
    template names must be a column, even in a branch this row does not take. The names it
    reads are added to `used`."""
    if not any(marker in text for marker in ("{{", "{%", "{#")):
        return text  # plain text: Jinja2 is not even loaded
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    try:
        compiled = compile_template(text, html)
        if used is not None:
            used.update(name.casefold() for name in compiled.variables)
        context: dict[str, str] = {}
        for name in sorted(compiled.variables):
            value = variables.get(name.casefold())
            if value is None:
                raise ParamError(_("Row {row}: {template} uses the variable {name}, which is not a column of the CSV file.").format(
                    row=row, template=template, name=name))
            context[name] = value
        return str(compiled.template.render(context))
    except SecurityError as exc:
        raise ParamError(_("Row {row}: {template} tries something the template sandbox forbids: {reason}").format(
            row=row, template=template, reason=exc)) from None
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        why = f"{exc.message or exc} (line {line})" if line else str(exc.message or exc)
        raise ParamError(_("Row {row}: {template} cannot be rendered: {reason}").format(
            row=row, template=template, reason=why)) from None
    except (RecursionError, MemoryError, OverflowError, ArithmeticError, TypeError, ValueError) as exc:
        raise ParamError(_("Row {row}: {template} cannot be rendered: {reason}").format(
            row=row, template=template, reason=exc)) from None
