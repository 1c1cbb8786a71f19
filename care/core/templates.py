"""Message templates: sandboxed Jinja2 that renders Telegram HTML.

Two kinds of template go through here. Care-rule templates are files we ship
(``care/core/rule_templates/<locale>/<rule>.html.j2``); broadcast texts are written by staff in
the chat.
Both render in an immutable sandbox (a staff text cannot reach Python internals or mutate the
values it is given), with autoescape (a member called ``<b>`` stays a name under Telegram's HTML
parse mode), and with strict undefined values (a misspelt ``{{ nmae }}`` is an error at preview
time, not an empty gap in ten thousand messages), within a budget of time, size and loop bounds
that the sandbox enforces itself (``care.core.template_sandbox``; ``render_text_off_loop`` keeps
an event loop free while a staff text renders). The result is checked the way Telegram will
check it: only the tags Telegram knows, balanced, and at most 4096 visible characters.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Mapping
from datetime import date
from functools import cache, lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SecurityError
from jinja2.utils import pass_context
from markupsafe import Markup

from care.core.config import CareConfig
from care.core.formatting import Count, format_count, format_day
from care.core.i18n import LOCALES, translator
from care.core.money import format_money
from care.core.template_sandbox import (
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    TIME_BUDGET_SECONDS,
    BudgetedSandbox,
    OverBudget,
    render_within_budget,
)
from storage.models import DEFAULT_TIERS, Member

TEMPLATES_DIR = Path(__file__).parent / "rule_templates"
MAX_VISIBLE_CHARS = 4096
MAX_SOURCE_CHARS = 64_000

# What staff may write in a broadcast. Each has a description in every locale under
# ``placeholders.<name>`` in the rules catalogue.
PLACEHOLDERS: tuple[str, ...] = ("name", "code", "tier", "points", "spent_12m", "shop")

# The tags Telegram's HTML parse mode understands (https://core.telegram.org/bots/api#html-style).
TELEGRAM_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler",
        "a", "tg-emoji", "code", "pre", "blockquote",
    }
)  # fmt: skip
_TAG_RE = re.compile(r"<[^>]*>")


class TemplateProblem(ValueError):
    """A template that cannot become a message, with a reason a shop owner can act on.

    ``reason`` is one of ``syntax``, ``undefined``, ``forbidden``, ``empty``, ``too_long``,
    ``bad_tag``, ``unclosed_tag``, ``missing``, and for a template over its budget ``too_slow``,
    ``too_big`` or ``range``; ``str(problem)`` is the English explanation
    and ``problem.localized(locale)`` the same in the reader's language.
    """

    def __init__(self, reason: str, **values: Any) -> None:
        self.reason = reason
        self.values = values
        super().__init__(html.unescape(translator("en")(self.key, **values)))

    @property
    def key(self) -> str:
        return f"template_problem.{self.reason}"

    def localized(self, locale: str) -> str:
        """The explanation as HTML in ``locale`` (values escaped), ready for a staff chat.

        Marked safe, so putting it into another catalogue text does not escape it twice.
        """
        return Markup(translator(locale)(self.key, **self.values))


def _format_money(amount_minor: int, currency: str = "CNY") -> str:
    return format_money(int(amount_minor), currency)


def _local_date(value: Any, tz_name: str = "Asia/Shanghai", fmt: str = "%Y-%m-%d") -> str:
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return value.astimezone(zone).strftime(fmt)


@pass_context
def _day(context: Any, value: Any) -> str:
    """``{{ coupon.expires|day }}``: a date (or its ISO text) as it reads in a sentence in the
    template's ``locale`` — 11月30日 / 30 Nov."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return format_day(value, str(context.get("locale", LOCALES[0])))


def _number(value: Any) -> str:
    return format_count(int(value))


@cache
def _environment() -> BudgetedSandbox:
    env = BudgetedSandbox(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["money"] = _format_money
    env.filters["local_date"] = _local_date
    env.filters["day"] = _day
    env.filters["number"] = _number
    env.guard_filters()
    return env


class _TelegramHTMLCheck(HTMLParser):
    """Walks rendered HTML the way Telegram's parser will, collecting the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.visible: list[str] = []
        self.problem: TemplateProblem | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.problem:
            return
        if tag not in TELEGRAM_TAGS:
            self.problem = TemplateProblem("bad_tag", tag=tag)
            return
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.problem:
            self.problem = TemplateProblem("bad_tag", tag=tag)

    def handle_endtag(self, tag: str) -> None:
        if self.problem:
            return
        if not self.open or self.open[-1] != tag:
            self.problem = TemplateProblem("unclosed_tag", tag=tag)
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def visible_text(text: str) -> str:
    """What the reader sees of a Telegram HTML text: tags removed, entities decoded."""
    return html.unescape(_TAG_RE.sub("", text))


def visible_length(text: str) -> int:
    """Telegram's 4096 limit counts UTF-16 code units of the visible text (emoji count 2)."""
    return len(visible_text(text).encode("utf-16-le")) // 2


def check_message(text: str) -> str:
    """Raise ``TemplateProblem`` unless ``text`` is a sendable Telegram HTML message."""
    checker = _TelegramHTMLCheck()
    checker.feed(text)
    checker.close()
    if checker.problem:
        raise checker.problem
    if checker.open:
        raise TemplateProblem("unclosed_tag", tag=checker.open[-1])
    return _check_length(text)


def _check_length(text: str) -> str:
    if not visible_text(text).strip():
        raise TemplateProblem("empty")
    length = visible_length(text)
    if length > MAX_VISIBLE_CHARS:
        raise TemplateProblem("too_long", length=length, limit=MAX_VISIBLE_CHARS)
    return text


def _render(template: Template, context: Mapping[str, Any], *, check_html: bool = True) -> str:
    try:
        result = render_within_budget(lambda: template.generate(dict(context)))
    except OverBudget as over:
        raise TemplateProblem(over.reason, **_BUDGET_VALUES) from None
    except UndefinedError as exc:
        name = _undefined_name(str(exc.message or exc))
        raise TemplateProblem("undefined", name=name, known=", ".join(PLACEHOLDERS)) from None
    except SecurityError:
        raise TemplateProblem("forbidden") from None
    except TemplateError as exc:
        raise TemplateProblem("syntax", line="?", detail=str(exc.message or exc)) from None
    # Our own rule templates are checked for Telegram HTML by the tests, once; only what staff
    # write needs the parser on every render.
    return check_message(result.strip()) if check_html else _check_length(result.strip())


_BUDGET_VALUES: dict[str, Any] = {
    "seconds": TIME_BUDGET_SECONDS,
    "limit": MAX_OUTPUT_CHARS,
    "range": MAX_RANGE,
}


def _undefined_name(message: str) -> str:
    match = re.search(r"'([^']+)' is undefined", message)
    return match.group(1) if match else message


def render_text(source: str, context: Mapping[str, Any]) -> str:
    """Render a staff-written broadcast text for one member.

    ``{{ name }}``-style placeholders (see ``PLACEHOLDERS``) are filled with escaped values.
    Raises ``TemplateProblem`` for a syntax error, an unknown placeholder, something the sandbox
    forbids, a tag Telegram does not support, an empty result or more than 4096 visible
    characters.
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateProblem("too_long", length=len(source), limit=MAX_VISIBLE_CHARS)
    return _render(_compiled(source), context)


async def render_text_off_loop(source: str, context: Mapping[str, Any]) -> str:
    """``render_text`` in a worker thread: the event loop keeps answering others meanwhile.

    The budget ends the render within about ``TIME_BUDGET_SECONDS`` whatever the text, so the
    thread is never left behind running (a thread cannot be killed; this one stops itself).
    """
    return await asyncio.to_thread(render_text, source, dict(context))


@lru_cache(maxsize=64)
def _compiled(source: str) -> Template:
    """A broadcast renders one text for every member: compile it once, not once per member."""
    try:
        return _environment().from_string(source)
    except OverBudget as over:
        # Constant parts are computed while compiling, under the same size checks.
        raise TemplateProblem(over.reason, **_BUDGET_VALUES) from None
    except TemplateSyntaxError as exc:
        raise TemplateProblem("syntax", line=exc.lineno, detail=exc.message or "") from None
    except SecurityError:
        raise TemplateProblem("forbidden") from None


def render_rule(rule: str, locale: str, context: Mapping[str, Any]) -> str:
    """Render the template of care rule ``rule`` in ``locale`` (falls back to the first locale).

    Files live in ``care/core/rule_templates/<locale>/<rule>.html.j2``. Raises ``TemplateProblem``.
    """
    locale = locale if locale in LOCALES else LOCALES[0]
    try:
        template = _environment().get_template(f"{locale}/{rule}.html.j2")
    except TemplateNotFound:
        raise TemplateProblem("missing", name=f"{locale}/{rule}.html.j2") from None
    except TemplateSyntaxError as exc:
        raise TemplateProblem("syntax", line=exc.lineno, detail=exc.message or "") from None
    return _render(template, context, check_html=False)


def tier_name(code: str, locale: str) -> str:
    """The display name of a tier code in ``locale`` (the built-in tiers; else the code)."""
    for tier in DEFAULT_TIERS:
        if tier["code"] == code:
            return str(tier["name_zh" if locale == "zh" else "name_en"])
    return code


def member_context(member: Member, config: CareConfig, **extra: Any) -> dict[str, Any]:
    """The values a template may use about ``member``: every name in ``PLACEHOLDERS`` and more.

    ``extra`` adds or overrides values (a rule's coupon, the next tier, a survey …).
    """
    locale = member.locale if member.locale in LOCALES else config.default_locale
    context: dict[str, Any] = {
        "name": member.name or translator(locale).plain("rules.friend"),
        "code": member.member_code,
        "tier": tier_name(member.tier_code, locale),
        "points": Count(member.points_balance or 0),
        "spent_12m": format_money(member.spend_12m_minor or 0, config.currency),
        "shop": config.shop_name,
        "currency": config.currency,
        "timezone": member.timezone or config.default_timezone,
        "locale": locale,
    }
    context.update(extra)
    return context


def describe_placeholders(locale: str) -> list[tuple[str, str]]:
    """``[("name", "the member's name"), …]`` for a staff help text in ``locale``."""
    t = translator(locale)
    return [(name, t.plain(f"placeholders.{name}")) for name in PLACEHOLDERS]
