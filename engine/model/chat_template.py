"""Render a model's chat template (untrusted input) in a sandbox that also bounds resources.

Jinja's immutable sandbox stops code execution, not exhaustion: `{{ 'x' * 10000000000 }}` would
allocate 10 GB and nested `range(100000)` loops would run 10^10 steps. Here every loop counts
against one budget of steps per render, and strings or lists that an operator (`*`, `+`, `~`,
`%`, `**`), a filter or a method call would make larger than the output limit are refused
before they are built. Templates are compiled without constant folding, so nothing runs at
compile time. `{% break %}` and `{% continue %}` work (HF templates use them).
"""
from __future__ import annotations

import functools
import re
import threading
from datetime import datetime
from typing import Any, Callable

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_LOOP_STEPS = 100_000  # per render, all loops together; chat templates loop over a few messages
MAX_OUTPUT_CHARS = 1_000_000  # plus twice the messages' own text
_HUGE_WIDTH = re.compile(r"\d{7,}")  # a format width of a million or more


class TemplateLimitError(TemplateError):
    """The template went past a resource limit."""


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


# Chat templates that print today's date (Llama 3's "Today Date: ...") get this one, so a prompt,
# and with it every margin, is the same on every day. It is the date Llama 3.1's own template
# falls back to when it can't ask for the time.
FIXED_DATE = datetime(2024, 7, 26)


def _strftime_now(fmt: str) -> str:
    return FIXED_DATE.strftime(str(fmt))


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


class _Budget:
    """Limits of one render."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.steps = 0

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise TemplateLimitError(f"{what} would make {size:,} characters (limit {self.max_chars:,})")

    def check_args(self, args: tuple, kwargs: dict, what: str) -> None:
        """Refuse a width or count past the limit, and lists whose text together is past it."""
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > self.max_chars:
                raise TemplateLimitError(f"{what} was given {arg:,} (limit {self.max_chars:,})")
            if isinstance(arg, (list, tuple)):
                self.check_size(sum(_size(x) for x in arg), what)

    def check_growth(self, name: str, value: Any, args: tuple, what: str) -> None:
        """Sizes of the results of `join`, `replace` and `indent`, before they are built."""
        if name == "join" and isinstance(value, str) and args and isinstance(args[0], (list, tuple)):
            value, args = args[0], (value,)  # the method form: sep.join(items)
        if name == "join" and isinstance(value, (list, tuple)):
            sep = args[0] if args and isinstance(args[0], str) else ""
            self.check_size(sum(len(str(x)) for x in value) + len(sep) * max(len(value) - 1, 0), what)
        elif name == "replace" and isinstance(value, str) and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            count = value.count(old) if old else len(value) + 1
            self.check_size(len(value) + count * len(new), what)
        elif name == "indent" and isinstance(value, str) and args:
            width = args[0] if isinstance(args[0], (str, int)) and not isinstance(args[0], bool) else 0
            pad = len(width) if isinstance(width, str) else width
            self.check_size(len(value) + (value.count("\n") + 1) * max(pad, 0), what)

    @staticmethod
    def check_format(fmt: Any, what: str) -> None:
        if isinstance(fmt, str) and _HUGE_WIDTH.search(fmt):
            raise TemplateLimitError(f"{what} has a width of a million or more")


_active = threading.local()  # the budget of the render running on this thread


def _budget() -> _Budget:
    return _active.budget


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "+", "%", "**"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True, lstrip_blocks=True, optimized=False, extensions=["jinja2.ext.loopcontrols"]
        )
        self.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}

    # Every loop's iterable and every `~` go through a guard: the AST is rewritten after parsing.
    def _parse(self, source: str, name: Any, filename: Any) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in list(tree.find_all(nodes.For)):
            loop.iter = nodes.Call(nodes.Name("_verdict_loop", "load"), [loop.iter], [], None, None, lineno=loop.lineno)
        for concat in list(tree.find_all(nodes.Concat)):
            guard = nodes.Name("_verdict_concat", "load")
            concat.nodes = [nodes.Call(guard, concat.nodes, [], None, None, lineno=concat.lineno)]
        return tree

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        budget = _budget()
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
                    budget.check_size(len(seq) * max(n, 0), "'*'")
            if isinstance(left, int) and isinstance(right, int):
                budget.check_size((left.bit_length() + right.bit_length()) // 8, "an integer product")
        elif op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            budget.check_size(left.bit_length() * right // 8, "a power")
        elif op == "+":
            budget.check_size(_size(left) + _size(right), "'+'")
        elif op == "%":
            budget.check_format(left, "a '%' format")
        result = super().call_binop(context, op, left, right)
        budget.check_size(_size(result), f"'{op}'")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # Jinja's parameter names
        budget = _budget()
        name = getattr(__obj, "__name__", "")
        what = f"{name or 'a call'}()"
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)  # str.format is wrapped
        budget.check_args(args, kwargs, what)
        budget.check_growth(name, owner, args, what)
        if "format" in name:
            budget.check_format(owner, what)
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_size(_size(result), what)
        return result


def _guarded_filter(name: str, function: Callable) -> Callable:
    @functools.wraps(function)  # keeps Jinja's pass_context/pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        what = f"the {name} filter"
        budget.check_args(args, kwargs, what)
        values = [a for a in args if isinstance(a, (str, list, tuple))]
        if values:
            budget.check_growth(name, values[0], tuple(values[1:]) + tuple(kwargs.values()), what)
        if name == "format":
            budget.check_format(next((a for a in args if isinstance(a, str)), None), what)
        result = function(*args, **kwargs)
        budget.check_size(_size(result), what)
        return result

    return guarded


class ChatTemplate:
    """A compiled chat template; `render` raises `TemplateError` (a `TemplateLimitError` past a
    limit) for anything that goes wrong, never another exception."""

    def __init__(self, source: str) -> None:
        self._env = _Sandbox()
        try:
            self._template = self._env.from_string(source)
        except TemplateError:
            raise
        except Exception as exc:  # RecursionError on absurd nesting, MemoryError, ...
            raise TemplateError(f"{type(exc).__name__}: {exc}") from exc

    def render(self, messages: list[dict[str, Any]], **variables: Any) -> str:
        """The template's text for `messages`; variables such as `add_generation_prompt` pass through."""
        own_text = sum(len(str(m.get("content", ""))) for m in messages)
        budget = _Budget(MAX_OUTPUT_CHARS + 2 * own_text)

        def loop(iterable: Any) -> Any:
            for item in iterable:
                budget.steps += 1
                if budget.steps > MAX_LOOP_STEPS:
                    raise TemplateLimitError(f"loops ran more than {MAX_LOOP_STEPS:,} steps")
                yield item

        def concat(*parts: Any) -> str:
            texts = [str(p) for p in parts]
            budget.check_size(sum(map(len, texts)), "'~'")
            return "".join(texts)

        previous = getattr(_active, "budget", None)
        _active.budget = budget
        try:
            out: list[str] = []
            size = 0
            for chunk in self._template.generate(
                messages=messages, _verdict_loop=loop, _verdict_concat=concat, **variables
            ):
                size += len(chunk)
                budget.check_size(size, "the output")
                out.append(chunk)
            return "".join(out)
        except TemplateError:
            raise
        except Exception as exc:  # the template's own faults: bad indexing, RecursionError, ...
            raise TemplateError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _active.budget = previous
