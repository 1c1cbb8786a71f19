"""Staff-written templates render within a budget (time, size, loop bounds), off the event loop.

What the issue found: nested ``range(100000)`` loops froze the shop, ``('a' * 10**10)|length``
exhausted memory, ``range(10**9)`` escaped as a raw OverflowError. Each now ends quickly as a
``TemplateProblem`` staff can read in their language, and others keep being answered meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from care.campaigns import render as campaigns
from care.core.template_sandbox import MAX_RANGE, TIME_BUDGET_SECONDS
from care.core.templates import TemplateProblem, render_text, render_text_off_loop
from tests.conftest import RunningBot
from tests.test_broadcast import OWNER_ID, seed_shop

CONTEXT = {"name": "Li", "points": 12}
NESTED_100K = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
# Within the range bound, but 10^8 iterations: only the time budget stops this one.
NESTED_10K = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}hi"
LONG_LITERAL_LOOPS = (
    "{% for a in '" + "x" * 3000 + "' %}{% for b in '" + "y" * 3000 + "' %}"
    "{% endfor %}{% endfor %}ok"
)


def problem_of(source: str) -> TemplateProblem:
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as caught:
        render_text(source, CONTEXT)
    assert time.monotonic() - started < TIME_BUDGET_SECONDS + 1.5
    return caught.value


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (NESTED_100K, "range"),
        ("{{ range(10**9)|list|length }}", "range"),
        ("{{ range(10**30)|length }}", "range"),
        ("{{ ('a' * 10**10)|length }}", "too_big"),
        ("{{ ['a'] * 10**10 }}", "too_big"),
        ("{{ 'a'|center(1000000000) }}", "too_big"),
        ("{{ 'a'.ljust(1000000000) }}", "too_big"),
        ("{{ '{:>999999999}'.format(1) }}", "too_big"),
        ("{{ '{:>{w}}'.format(1, w=999999999) }}", "too_big"),
        ("{{ '%999999999s' % 'a' }}", "too_big"),
        ("{{ '%*s'|format(999999999, 'a') }}", "too_big"),
        ("{% set s = 'a' * 30000 %}{{ s ~ s ~ s }}", "too_big"),
        ("{% set s = 'a' * 30000 %}{{ (s, s)|join }}", "too_big"),
        ("{% set s = 'a' * 30000 %}{{ s.replace('a', 'aa') }}", "too_big"),
        ("{{ (2 ** 100000) }}", "too_big"),
        ("{% for i in range(10000) %}{{ 'abcdefghij' }}{% endfor %}", "too_big"),
        (NESTED_10K, "too_slow"),
        (LONG_LITERAL_LOOPS, "too_slow"),
        # The int filter catches ValueError: the budget still ends the loop.
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}"
            "{% if ('x'|int) %}{% endif %}{% endfor %}{% endfor %}hi",
            "too_slow",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "too_slow"),
    ],
)
def test_each_way_to_overrun_ends_as_a_problem_with_its_reason(source: str, reason: str) -> None:
    assert problem_of(source).reason == reason


@pytest.mark.parametrize(
    ("reason", "zh", "en"),
    [
        ("range", f"最多只能数 {MAX_RANGE} 个数", f"at most {MAX_RANGE} numbers"),
        ("too_big", "过长的文本或过大的数字", "far too large"),
        ("too_slow", "计算量太大", "too much work"),
    ],
)
def test_the_problem_reads_well_in_both_languages(reason: str, zh: str, en: str) -> None:
    source = {"range": NESTED_100K, "too_big": "{{ 'a' * 10**10 }}", "too_slow": NESTED_10K}
    problem = problem_of(source[reason])
    assert zh in problem.localized("zh")
    assert en in problem.localized("en") and en in str(problem)


def test_ordinary_templates_still_render() -> None:
    source = (
        "Hi {{ name }}! {% for i in range(3) %}{{ i }}{% endfor %} "
        "{{ '{:>4}'.format(points) }} {{ '%d'|format(points) }} {{ 'ok'|center(6) }} "
        "{{ ['a', 'b']|join('-') }} {{ name ~ '!' }} {{ points * 2 }} {{ 2 ** 10 }}"
    )
    assert render_text(source, CONTEXT) == "Hi Li! 012   12 12   ok   a-b Li! 24 1024"


async def test_rendering_off_the_loop_leaves_the_loop_free() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        with pytest.raises(TemplateProblem) as caught:
            await render_text_off_loop(NESTED_10K, CONTEXT)
    finally:
        task.cancel()
    assert caught.value.reason == "too_slow"
    # About a second of rendering: the loop kept ticking (dozens of times), not frozen.
    assert ticks >= 20


async def test_another_shopper_is_answered_while_a_bad_preview_renders(
    app: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendering, rendered = threading.Event(), threading.Event()

    def watched_render(source: str, context: Mapping[str, Any]) -> str:
        rendering.set()
        try:
            return render_text(source, context)
        finally:
            rendered.set()

    monkeypatch.setattr(campaigns, "render_text", watched_render)
    await seed_shop(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="zh")
    await owner.send("/broadcast")
    await owner.expect("新建群发")
    await owner.press("所有会员（3）")
    await owner.expect("请发送中文版文案")
    shopper = app.user(4242, first_name="Ann", language_code="en")

    await owner.send(NESTED_10K)
    # A thread's event, not the loop's: polled (the render thread cannot set an asyncio.Event).
    while not rendering.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    await shopper.send("/help")
    await shopper.expect("/start")
    # The shopper was answered while the preview was still working through its budget.
    assert not rendered.is_set()
    problem = await owner.expect("计算量太大", timeout=10)
    assert "这段文本无法发送" in (problem.text or "")
    # The step is kept: a corrected text goes on to the English text, then the photo step.
    await owner.send("你好 {{ name }}")
    await owner.expect("请发送英文版文案")
    await owner.press("跳过")
    await owner.expect("发送一张图片")
