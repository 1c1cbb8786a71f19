"""The Jinja2 sandbox staff texts render in, with a budget: time, size and loop bounds.

Jinja's own sandbox keeps a template away from Python internals but not away from the machine:
``{% for i in range(100000) %}{% for j in range(100000) %}`` runs for hours,
``{{ ('a' * 10**10)|length }}`` allocates ten gigabytes, ``range(10**9)`` escapes as a raw
``OverflowError``. Here each of those is an ``OverBudget`` with a reason staff can act on.

Why the sandbox enforces the budget itself rather than a process pool with a hard timeout:
templates render once per member in a broadcast (thousands of renders of tiny cost), where a
process round trip each would cost more than the rendering; and the same budget must hold in
every caller (a preview in a worker thread, a launch in the scheduler). A thread cannot be
killed, so nothing here relies on killing one; instead the rendering code stops itself:

- **time**: while a template renders, ``sys.settrace`` counts the lines of the template's own
  compiled code and checks the clock on every Python call, so any loop — over ``range`` or over
  a long literal — ends with ``OverBudget("too_slow")`` within about ``TIME_BUDGET_SECONDS``;
  C code cannot loop long on its own because every size it could work on is bounded:
- **size**: ``*``, ``**``, ``+``, ``%`` and ``~`` are checked *before* they build a value
  (string and list lengths, integer bits); filters and method calls that pad or repeat
  (``center``, ``indent``, ``ljust``, ``format``, ``replace``, ``join`` …) get their width and
  input checked first; the output is streamed and stopped at ``MAX_OUTPUT_CHARS``;
- **loops**: ``range`` yields at most ``MAX_RANGE`` numbers; ``lipsum`` and ``namespace`` (the
  only way to grow a value across loop iterations) are not available.

The budget is raised as a ``BaseException`` on purpose: code between the template and us that
catches ``Exception`` or ``ValueError`` (the ``int`` filter does) must not swallow it.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from types import FrameType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

TIME_BUDGET_SECONDS = 1.0
MAX_OUTPUT_CHARS = 32_768
MAX_RANGE = 10_000
MAX_INT_BITS = 4_096
# Checking the clock on every line would slow every render; every few hundred lines is enough.
_LINES_PER_CHECK = 256
# Filters whose extra arguments are sizes (a width, a count); values any other filter takes.
_SIZE_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_FORMAT_NUMBER = re.compile(r"\d+")
# "{:>{w}}": a width taken from an argument, which the string itself cannot show.
_NESTED_FORMAT_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
_PERCENT_SPEC = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


class OverBudget(BaseException):
    """A template went over its budget. ``reason``: ``too_slow``, ``too_big`` or ``range``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.lines = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise OverBudget("too_slow")

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.check()
        # Only the template's own compiled code is traced line by line (cheap elsewhere).
        if isinstance(frame.f_globals.get("environment"), BudgetedSandbox):
            return self.on_line
        return None

    def on_line(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.lines += 1
        if self.lines % _LINES_PER_CHECK == 0:
            self.check()
        return self.on_line


_active = threading.local()


def _check_time() -> None:
    budget: _Budget | None = getattr(_active, "budget", None)
    if budget is not None:
        budget.check()


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple) else 0


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT_CHARS:
        raise OverBudget("too_big")


def _check_int(value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverBudget("too_big")


def _check_format_string(text: str) -> None:
    """A width or precision in a format string ("{:>99999999}", "%99999999s") builds that much."""
    if _NESTED_FORMAT_SPEC.search(text):
        raise OverBudget("too_big")
    if "*" in "".join(m.group(0) for m in _PERCENT_SPEC.finditer(text)):
        raise OverBudget("too_big")
    for number in _FORMAT_NUMBER.findall(text):
        if len(number) > 5 or int(number) > MAX_OUTPUT_CHARS:
            raise OverBudget("too_big")


def bounded_range(*args: int) -> range:
    """``range`` for templates: at most ``MAX_RANGE`` numbers."""
    _check_time()
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:
        raise OverBudget("range") from None
    if count > MAX_RANGE:
        raise OverBudget("range")
    return numbers


def bounded_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """The operands of ``~``, checked before they are joined."""
    _check_time()
    _check_size(sum(len(str(part)) for part in parts))
    return parts


def guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its size arguments checked before and its result after."""
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0

    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_time()
        value = args[skip] if len(args) > skip else None
        if name in _SIZE_FILTERS:
            for extra in (*args[skip + 1 :], *kwargs.values()):
                if isinstance(extra, int) and extra > MAX_OUTPUT_CHARS:
                    raise OverBudget("too_big")
        if name == "format" and isinstance(value, str):
            _check_format_string(value)
        if name == "join" and isinstance(value, Iterable) and not isinstance(value, str):
            value = list(value)
            _check_size(sum(len(str(item)) for item in value))
            args = (*args[:skip], value, *args[skip + 1 :])
        result = function(*args, **kwargs)
        _check_size(_sized(result))
        return result

    return guarded


class _BudgetedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` so that the parts are measured before they are joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.bounded_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every way to build something big checked first."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.globals.pop("namespace", None)
        self.globals["range"] = bounded_range
        self.bounded_parts = bounded_parts

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` as Jinja's sandbox wraps it, with its widths checked first."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        _check_format_string(str(value.__self__))
        return wrapped

    def guard_filters(self) -> None:
        """Wrap every filter registered so far (call once, after adding our own)."""
        for name, function in list(self.filters.items()):
            self.filters[name] = guarded_filter(name, function)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_time()
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise OverBudget("too_big")
            else:
                count = right if isinstance(right, int) else left
                sequence = left if isinstance(right, int) else right
                if isinstance(count, int) and count > 0:
                    _check_size(_sized(sequence) * count)
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * abs(left).bit_length() > MAX_INT_BITS
            ):
                raise OverBudget("too_big")
        elif operator == "+":
            _check_size(_sized(left) + _sized(right))
        elif operator == "%" and isinstance(left, str):
            _check_format_string(left)
        result = super().call_binop(context, operator, left, right)
        _check_int(result)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_time()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            if name in _PADDING_METHODS:
                for extra in (*args, *kwargs.values()):
                    if isinstance(extra, int) and extra > MAX_OUTPUT_CHARS:
                        raise OverBudget("too_big")
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                _check_size(len(owner) + (owner.count(old) + 1) * len(new))
            elif name == "join" and args:
                items = list(args[0])
                _check_size(sum(len(str(item)) for item in items) + len(owner) * len(items))
                args = (items, *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        _check_size(_sized(result))
        return result


def render_within_budget(
    generate: Callable[[], Iterator[str]], seconds: float = TIME_BUDGET_SECONDS
) -> str:
    """Run ``generate`` (a template's ``generate``) within the budget; raises ``OverBudget``.

    Runs in the calling thread: call it from a worker thread to keep an event loop free.
    """
    budget = _Budget(seconds)
    previous_budget = getattr(_active, "budget", None)
    previous_trace = sys.gettrace()
    _active.budget = budget
    sys.settrace(budget.on_call)
    try:
        parts: list[str] = []
        size = 0
        for chunk in generate():
            size += len(chunk)
            _check_size(size)
            parts.append(chunk)
        return "".join(parts)
    except (OverflowError, MemoryError):
        raise OverBudget("too_big") from None
    except RecursionError:
        raise OverBudget("too_slow") from None
    finally:
        sys.settrace(previous_trace)
        _active.budget = previous_budget
