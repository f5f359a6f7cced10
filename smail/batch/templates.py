"""Subject and body cells as Jinja2 templates, rendered in a sandbox with the row's variables.

A template is data from a CSV file, so whatever it does is bounded: its output (OUTPUT_LIMIT),
every value it builds in one go (VALUE_LIMIT: `'x' * 10**10`, `center(10**9)`, `9 ** 9 ** 9`),
and its rendering time (RENDER_SECONDS: loops within loops). Whatever it raises, Jinja2 or the
Python beneath it, is exit 2 naming the row, the template and the cause.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from smail.errors import ParamError
from smail.i18n import _

if TYPE_CHECKING:
    from jinja2 import Template

TEMPLATE_CACHE: Final = 32
# What one template may produce, and what one value inside it may be (characters or items).
OUTPUT_LIMIT: Final = 16 * 1024 * 1024
SUBJECT_LIMIT: Final = 64 * 1024
VALUE_LIMIT: Final = 16 * 1024 * 1024
INTEGER_BITS: Final = 64 * 1024  # about 20,000 digits: any amount, any invoice number
RENDER_SECONDS: Final = 5.0
LOOP_LIMIT: Final = 100_000  # the sandbox's own bound on range()
# A width or precision of seven digits or more in a format: `%0999999999d`, `{:>999999999}`.
_HUGE_WIDTH = re.compile(r"%[-+ #0]*(?:\*|\d{7,}|\d*\.\d{7,})|\{[^{}]*:[^{}]*\d{7,}[^{}]*\}")


class TemplateLimitError(Exception):
    """What a template asked for exceeds a bound; the message says which."""


def _too_many_digits() -> TemplateLimitError:
    return TemplateLimitError(_("a number would have more than {digits} digits").format(digits=INTEGER_BITS * 3 // 10))


class _TimeUp(BaseException):
    """Raised in the main thread when a rendering outlived RENDER_SECONDS. A BaseException, so
    that no `except Exception` of Jinja2 or of a filter can swallow it."""


def _too_big(size: int) -> None:
    if size > VALUE_LIMIT:
        raise TemplateLimitError(_("it would build a value of {size} characters or items, more than {limit}").format(
            size=size, limit=VALUE_LIMIT))


def _size(value: object, limit: int = VALUE_LIMIT) -> int:
    """About how many characters or items `value` stands for once written out, counting the
    items of containers each time they appear (a list holding itself four times over, four
    levels deep, is 256 times its leaves); counting stops as soon as it passes `limit`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1
        elif isinstance(item, (list, tuple, set, frozenset, dict)):
            total += 2 + len(item)
            if total <= limit:
                stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 20
        if total > limit:
            break
    return total


def _guard(value: Any) -> Any:
    """`value`, unless it stands for more than VALUE_LIMIT characters or items."""
    _too_big(_size(value))
    return value


def _check_format(text: object, *arguments: object) -> None:
    """A format's widths, and what it can write: each of its fields may be the largest argument
    (`"%s%s%s%s" % (s, s, s, s)` is four times `s`, `"{0}{0}"` twice)."""
    if isinstance(text, str):
        if _HUGE_WIDTH.search(text):
            raise TemplateLimitError(_("a format asks for a width or precision of millions of characters"))
        fields = text.count("%") + text.count("{")
        if fields and arguments:
            _too_big(len(text) + fields * max(_size(a) for a in arguments))


def _length(value: object) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


def _checked_binop(operator: str, left: Any, right: Any) -> None:
    """The size of what `left operator right` builds, before it is built."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            size = _size(sequence) if _length(sequence) is not None else None
            if size is not None and isinstance(count, int):
                _too_big(size * max(count, 0))
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > INTEGER_BITS:
                raise _too_many_digits()
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right > INTEGER_BITS or left.bit_length() * right > INTEGER_BITS:
                raise _too_many_digits()
    elif operator == "+":
        sizes = (_length(left), _length(right))
        if sizes[0] is not None and sizes[1] is not None:
            _too_big(sizes[0] + sizes[1])
    elif operator == "%":
        _check_format(left, *(right if isinstance(right, tuple) else (right,)))


def _checked_join(separator: object, items: Iterable[Any]) -> list[Any]:
    listed = list(items)
    if len(listed) > VALUE_LIMIT:
        _too_big(len(listed))
    size = sum(len(x) if isinstance(x, (str, bytes)) else 20 for x in listed)
    _too_big(size + len(separator if isinstance(separator, (str, bytes)) else "") * max(len(listed) - 1, 0))
    return listed


def _checked_replace(text: object, old: object, new: object, count: object = -1) -> None:
    if isinstance(text, (str, bytes)) and isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)):
        hits = len(text) + 1 if not old else text.count(old)  # type: ignore[arg-type]
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        _too_big(len(text) + hits * len(new))


# str and bytes methods that build values sized by their arguments.
_WIDTH_METHODS: Final = frozenset({"ljust", "rjust", "center", "zfill"})


def _checked_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # The sandbox hands str.format out wrapped (its own formatter); what it wraps tells.
    target = getattr(obj, "__wrapped__", obj)
    owner, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
    if isinstance(owner, (str, bytes)):
        if name in _WIDTH_METHODS and args and isinstance(args[0], int):
            _too_big(args[0])
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                _too_big(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * size)  # type: ignore[arg-type]
        elif name == "replace" and len(args) >= 2:
            _checked_replace(owner, *args[:3])
        elif name in ("format", "format_map"):
            _check_format(owner, *args, *kwargs.values())
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            _too_big(length)


def _lipsum(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002
        for value in (n, min, max):
            if isinstance(value, int) and value > 1000:
                raise TemplateLimitError(_("lipsum() is limited to 1000 paragraphs of 1000 words"))
        return original(n, html, min, max)
    return lipsum


def _filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Filters are called directly by compiled templates (not through the sandbox's call()):
    the ones whose arguments size what they build are wrapped with a check."""
    def sized(name: str, limit: int) -> None:
        original = filters[name]

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for value in (*args[1:], *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                    raise TemplateLimitError(_("the filter {name} is given {value}, more than {limit}").format(
                        name=name, value=value, limit=limit))
            return original(*args, **kwargs)
        filters[name] = wrapper

    for name in ("center", "indent", "truncate", "wordwrap"):
        sized(name, VALUE_LIMIT)
    for name in ("slice", "batch"):
        sized(name, LOOP_LIMIT)

    format_original, join_original, replace_original = filters["format"], filters["join"], filters["replace"]
    indent_original, wordwrap_original = filters["indent"], filters["wordwrap"]

    @functools.wraps(format_original)
    def format_filter(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(value, *args, *kwargs.values())
        return format_original(value, *args, **kwargs)

    @functools.wraps(indent_original)
    def indent_filter(s: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
        if isinstance(s, str) and isinstance(width, (int, str)):  # every line gets the indent
            _too_big(len(s) + (s.count("\n") + 2) * (len(width) if isinstance(width, str) else width))
        return indent_original(s, width, *args, **kwargs)

    @functools.wraps(wordwrap_original)
    def wordwrap_filter(environment: Any, s: Any, *args: Any, **kwargs: Any) -> Any:
        wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        if isinstance(s, str) and isinstance(wrap, str):  # at worst a break after every character
            _too_big(len(s) + (len(s) + 1) * len(wrap))
        return wordwrap_original(environment, s, *args, **kwargs)

    @functools.wraps(join_original)
    def join_filter(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> Any:
        return join_original(eval_ctx, _checked_join(d, value) if attribute is None else value, d, attribute)

    @functools.wraps(replace_original)
    def replace_filter(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
        _checked_replace(s, old, new, -1 if count is None else count)
        return replace_original(eval_ctx, s, old, new, count)

    filters.update(format=format_filter, join=join_filter, replace=replace_filter, indent=indent_filter,
                   wordwrap=wordwrap_filter)
    for name, original in list(filters.items()):
        filters[name] = _bounded(original)


def _bounded(original: Callable[..., Any]) -> Callable[..., Any]:
    """A filter whose arguments and result stand for at most VALUE_LIMIT characters or items,
    so that no chain of them (or of `~`, `%`, macros) doubles a value without end."""
    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            _guard(value)
        return _guard(original(*args, **kwargs))
    return bounded


@functools.lru_cache(maxsize=2)
def _environment(html: bool) -> Any:
    from jinja2 import StrictUndefined
    from jinja2.compiler import CodeGenerator
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedCodeGenerator(CodeGenerator):
        def visit_Concat(self, node: Any, frame: Any) -> None:
            # Jinja2's own, but `a ~ b ~ c` has its parts measured before they are joined.
            if frame.eval_ctx.volatile:
                join = "(markup_join if context.eval_ctx.volatile else str_join)"
            else:
                join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
            self.write(f"{join}(environment.bounded_parts((")
            for part in node.nodes:
                self.visit(part, frame)
                self.write(", ")
            self.write(")))")

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        # Intercepted operators are never folded into constants at compile time either.
        intercepted_binops = frozenset({"*", "**", "+", "%"})
        code_generator_class = BoundedCodeGenerator

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            _checked_binop(operator, left, right)
            return _guard(super().call_binop(context, operator, left, right))

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            _checked_call(__obj, args, kwargs)
            for value in (*args, *kwargs.values()):
                _guard(value)
            if getattr(__obj, "__name__", "") == "join" and isinstance(getattr(__obj, "__self__", None), (str, bytes)) \
                    and args:
                args = (_checked_join(__obj.__self__, args[0]), *args[1:])
            return _guard(super().call(__context, __obj, *args, **kwargs))

        @staticmethod
        def bounded_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
            _too_big(sum(_size(part) for part in parts))
            return parts

    environment = BoundedSandbox(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True,
                                 finalize=_guard)
    lipsum = environment.globals["lipsum"]
    assert callable(lipsum)
    environment.globals["lipsum"] = _lipsum(lipsum)
    _filters(environment.filters)
    return environment


@dataclass(frozen=True)
class Compiled:
    template: Template
    variables: frozenset[str]   # the names it reads that it does not define itself


@functools.lru_cache(maxsize=TEMPLATE_CACHE)
def compile_template(text: str, html: bool) -> Compiled:
    """A sandboxed Jinja2 template; HTML is autoescaped. Raises jinja2.TemplateError."""
    from jinja2 import meta

    environment = _environment(html)
    tree = environment.parse(text)
    names = meta.find_undeclared_variables(tree) - set(environment.globals)
    return Compiled(environment.from_string(tree), frozenset(names))


class _Watchdog:
    """One thread for the whole process that fires the armed deadline when it expires (a
    thread per rendering would cost more than most renderings)."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.armed: _Deadline | None = None
        self.thread: threading.Thread | None = None
        self.idle = False  # waiting with no deadline: only then must arm() wake it

    def arm(self, deadline: _Deadline) -> None:
        # Deadlines all last RENDER_SECONDS: a later one never expires before the one the
        # thread may be waiting for, which it checks again on waking.
        with self.condition:
            self.armed = deadline
            if self.thread is None:
                self.thread = threading.Thread(target=self._watch, name="smail-template-deadline", daemon=True)
                self.thread.start()
            elif self.idle:
                self.condition.notify()

    def disarm(self, deadline: _Deadline) -> None:
        with self.condition:
            if self.armed is deadline:
                self.armed = None

    def _watch(self) -> None:
        with self.condition:
            while True:
                armed = self.armed
                if armed is None:
                    self.idle = True
                    self.condition.wait()
                    self.idle = False
                    continue
                left = armed.expires - time.monotonic()
                if left > 0:
                    self.condition.wait(left)
                    continue
                self.armed = None
                armed.fire()


_WATCHDOG: Final = _Watchdog()


class _Deadline:
    """RENDER_SECONDS for what runs inside: when it expires the main thread is interrupted
    (signal handlers run between any two bytecodes, so a loop without a single call is stopped
    too). In another thread (a program calling main() from one) the other bounds still hold."""

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.done = self.fired = self.delivered = False
        self.armed = False
        self.previous: Any = None

    def __enter__(self) -> _Deadline:
        if threading.current_thread() is not threading.main_thread():
            return self
        import signal

        try:
            self.previous = signal.signal(signal.SIGINT, self._on_signal)
        except (ValueError, OSError):  # no signals here (an embedded interpreter)
            return self
        self.armed = True
        _WATCHDOG.arm(self)
        return self

    def fire(self) -> None:
        import _thread
        import signal

        with self.lock:
            if self.done:
                return
            self.fired = True
            _thread.interrupt_main(signal.SIGINT)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.fired and not self.delivered:
            self.delivered = True
            raise _TimeUp()
        if callable(self.previous):  # a real Ctrl-C
            self.previous(signum, frame)
        else:
            raise KeyboardInterrupt

    def __exit__(self, *exc_info: object) -> None:
        if not self.armed:
            return
        import signal

        with self.lock:
            self.done = True
        _WATCHDOG.disarm(self)
        if self.fired and not self.delivered:  # the interrupt is on its way: take it here
            give_up = time.monotonic() + 1.0
            try:
                while not self.delivered and time.monotonic() < give_up:
                    pass
            except _TimeUp:
                pass
        signal.signal(signal.SIGINT, self.previous)


def _render(compiled: Compiled, context: Mapping[str, str], limit: int) -> str:
    """The template's output, stopped as soon as it exceeds `limit` characters."""
    chunks: list[str] = []
    size = 0
    for chunk in compiled.template.generate(context):
        size += len(chunk)
        if size > limit:
            raise TemplateLimitError(_("its output would exceed {limit} characters").format(limit=limit))
        chunks.append(chunk)
    return "".join(chunks)


def _unrenderable(row: int, template: str, reason: str) -> ParamError:
    return ParamError(_("Row {row}: {template} cannot be rendered: {reason}").format(
        row=row, template=template, reason=reason))


def _reason(exc: BaseException) -> str:
    """The cause in words, never empty (a MemoryError has no message of its own)."""
    if isinstance(exc, MemoryError):
        return _("it needs more memory than this computer can give")
    if isinstance(exc, RecursionError):
        return _("it calls itself without end (recursion)")
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def render_template(text: str, *, html: bool, variables: Mapping[str, str], row: int, template: str,
                    used: set[str] | None = None) -> str:
    """Render `text` with the row's variables (looked up in any case); every variable the
    template names must be a column, even in a branch this row does not take. The names it
    reads are added to `used`. Any failure is a ParamError naming the row and the template."""
    if not any(marker in text for marker in ("{{", "{%", "{#")):
        return text  # plain text: Jinja2 is not even loaded
    from jinja2 import TemplateError
    from jinja2.exceptions import SecurityError

    limit = SUBJECT_LIMIT if template == "/SUBJECT" else OUTPUT_LIMIT
    try:
        with _Deadline(RENDER_SECONDS):
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
            return _render(compiled, context, limit)
    except ParamError:
        raise
    except _TimeUp:
        raise ParamError(_("Row {row}: {template} takes longer than {seconds:g} seconds to render: refused.").format(
            row=row, template=template, seconds=RENDER_SECONDS)) from None
    except SecurityError as exc:
        raise ParamError(_("Row {row}: {template} tries something the template sandbox forbids: {reason}").format(
            row=row, template=template, reason=_reason(exc))) from None
    except TemplateLimitError as exc:
        raise ParamError(_("Row {row}: {template} is refused: {reason}.").format(
            row=row, template=template, reason=exc)) from None
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        why = " ".join(str(exc.message or exc).split())
        why = f"{why} (line {line})" if line else why
        raise _unrenderable(row, template, why or type(exc).__name__) from None
    except Exception as exc:  # whatever the Python beneath raises: bad input, never a bug of SMail
        raise _unrenderable(row, template, _reason(exc)) from None
