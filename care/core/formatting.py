"""How values read in prose, the same for shoppers and staff, in Chinese and English.

Lists (``日用百货、生鲜食品`` / ``Grocery, Fresh food``), counts and points (``1,378`` for
everyone), dates in sentences (``11月30日`` / ``30 Nov``), discounts as shoppers say them
(``9 折`` / ``10% off``) and time zones by name with their offset (``北京时间（UTC+8）`` /
``China Time (UTC+8)``, never ``Etc/GMT-8``). Zone names, month names and plural rules come from
CLDR through Babel rather than from hand-made tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from babel import Locale
from babel.dates import format_skeleton, get_timezone_name
from babel.lists import format_list
from babel.units import format_unit

from care.core.i18n import Translator
from care.core.timezones import utc_offset_label

# The CLDR locale each of our locales reads like: simplified Chinese as written in China, and
# English with the day before the month ("30 Nov"), as in most of the world outside the US.
CLDR_LOCALES: dict[str, str] = {"zh": "zh_Hans_CN", "en": "en_GB"}
LIST_SEPARATORS: dict[str, str] = {"zh": "、", "en": ", "}
# Where the CLDR name is not what people say: in China the time is "北京时间".
ZONE_NAMES: dict[tuple[str, str], str] = {("Asia/Shanghai", "zh"): "北京时间"}


def _cldr(locale: str) -> str:
    return CLDR_LOCALES.get(locale, CLDR_LOCALES["zh"])


def join_list(items: Iterable[str], locale: str) -> str:
    """``美妆护肤、生鲜食品`` in zh; ``Beauty, Fresh food`` in en."""
    return LIST_SEPARATORS.get(locale, LIST_SEPARATORS["zh"]).join(items)


def format_count(value: int) -> str:
    """Points, members and other counts, grouped by thousands alike for everyone: ``1,378``."""
    return f"{value:,}"


class Count(int):
    """An int that prints grouped (``1,378``) in a template yet still compares as a number, so
    ``{{ points }}`` in a staff-written broadcast reads like everywhere else and
    ``{% if points > 100 %}`` keeps working."""

    __slots__ = ()

    def __str__(self) -> str:
        return format_count(self)

    def __html__(self) -> str:
        return format_count(self)


def plural_form(count: int, locale: str) -> str:
    """The CLDR plural category of ``count`` (``one`` / ``other``; Chinese has only ``other``)."""
    return str(Locale.parse(_cldr(locale)).plural_form(abs(count)))


def format_day(day: date | datetime, locale: str, *, with_year: bool = False) -> str:
    """A date as it reads in a sentence: ``11月30日`` / ``30 Nov`` (with the year on request)."""
    if isinstance(day, datetime):
        day = day.date()
    return str(format_skeleton("yMMMd" if with_year else "MMMd", day, locale=_cldr(locale)))


def format_day_time(when: datetime, locale: str, *, with_year: bool = False) -> str:
    """``11月30日 18:30`` / ``30 Nov 18:30``: an already-local time in a sentence."""
    return f"{format_day(when, locale, with_year=with_year)} {when:%H:%M}"


def format_average(value: float) -> str:
    """An average score with one decimal, a whole one without: ``4.5``, ``4``."""
    return f"{value:.1f}".removesuffix(".0")


# The units a duration reads in, largest first, with their length in seconds.
_DURATION_UNITS: tuple[tuple[str, int], ...] = (
    ("duration-day", 86_400),
    ("duration-hour", 3_600),
    ("duration-minute", 60),
)


def format_duration(span: timedelta, locale: str) -> str:
    """A span of time as people say it, in its two largest units, by CLDR through Babel:
    ``2小时15分钟`` / ``2 hrs 15 mins``, ``3天4小时`` / ``3 days 4 hrs``; under a minute it reads
    in seconds (``45秒`` / ``45 secs``). Rounded to the minute (to the hour from a day on)."""
    cldr = _cldr(locale)
    seconds = max(0, round(span.total_seconds()))
    if seconds < 60:
        return str(format_unit(seconds, "duration-second", length="short", locale=cldr))
    # Round to the smallest unit shown, so "1 day 23 hrs 59 mins" does not read "1 day 23 hrs".
    step = 3_600 if seconds >= 86_400 else 60
    seconds = (seconds + step // 2) // step * step
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(str(format_unit(amount, unit, length="short", locale=cldr)))
    return str(format_list(parts, style="unit-narrow", locale=cldr))


def discount_label(percent: int | Decimal, locale: str) -> str:
    """A percentage off as shoppers say it: 10 → ``9 折`` / ``10% off``; 15 → ``8.5 折``."""
    if locale == "zh":
        # 折 counts tenths of the price paid: 10% off is 9 折, 15% off 8.5 折, 5% off 9.5 折.
        paid = (Decimal(100) - Decimal(percent)) / Decimal(10)
        return f"{paid.normalize():f} 折"
    return f"{Decimal(percent).normalize():f}% off"


def zone_label(zone: str, locale: str, now: datetime) -> str:
    """A time zone by its name and offset: ``北京时间（UTC+8）``, ``India Time (UTC+5:30)``.

    Fixed offsets (``Etc/GMT-8``, stored when a member picks one) read as the offset alone.
    """
    offset = utc_offset_label(zone, now)
    if zone in ("Etc/UTC", "UTC"):
        return "UTC"
    if zone.startswith("Etc/") or zone in ("UTC", "GMT"):
        return offset
    name = ZONE_NAMES.get((zone, locale)) or get_timezone_name(zone, locale=_cldr(locale))
    if not name or "GMT" in name or "UTC" in name:
        return offset
    return f"{name}（{offset}）" if locale == "zh" else f"{name} ({offset})"


LANGUAGE_NAMES: dict[str, str] = {"zh": "中文", "en": "English"}


def language_name(locale: str) -> str:
    """A language by its own name (``中文``, ``English``), never by its code."""
    return LANGUAGE_NAMES.get(locale, locale)


def rule_label(t: Translator, rule: str) -> str:
    """A care rule by its name in ``t``'s language (``购后问卷``), or "" when it has none: the
    caller then describes the message another way instead of showing ``purchase_survey``."""
    key = f"stats.rule.{rule}"
    return t.plain(key) if t.has(key) else ""


def category_label(t: Translator, category: str) -> str:
    """A shop category's name in ``t``'s language; a category the shop added without a
    translation shows as configured (it is the shop's own word, not one of our keys)."""
    key = f"interest.{category}"
    return t.plain(key) if t.has(key) else category


def category_list(t: Translator, categories: Iterable[str]) -> str:
    return join_list((category_label(t, category) for category in categories), t.locale)
