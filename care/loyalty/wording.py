"""How the loyalty loop words numbers for shoppers and staff alike: points with the plural
right in English, dates as people say them ("11月30日", "Nov 30, 2026"), and a percentage off
as a Chinese shopper reads it (10% off is "9 折"; "10% 折扣" can be misread as 1 折).
"""

from __future__ import annotations

import calendar
from datetime import date

from care.core.i18n import Translator
from care.core.money import format_money
from storage.enums import OfferKind
from storage.models import Offer


def points_text(t: Translator, points: int) -> str:
    """``1 point`` / ``1,250 points`` / ``1,250 积分``: one number format everywhere."""
    key = "rewards.points_one" if abs(points) == 1 else "rewards.points_other"
    return t.plain(key, n=f"{points:,}")


def spoken_date(t: Translator, day: date) -> str:
    month: str | int = day.month if t.locale == "zh" else calendar.month_abbr[day.month]
    return t.plain("rewards.date", year=day.year, month=month, day=day.day)


def discount_rate(percent: int, locale: str) -> str:
    """``10`` (percent off) → ``9`` in Chinese (9 折), ``10%`` in English."""
    if locale != "zh":
        return f"{percent}%"
    tenths = 100 - percent
    return str(tenths // 10) if tenths % 10 == 0 else f"{tenths / 10:g}"


def offer_gives(offer: Offer, t: Translator) -> str:
    """What a reward's coupon gives, said natively: "9 折", "立减 ¥20.00", "200 points"."""
    kind = OfferKind(offer.kind)
    if kind == OfferKind.PERCENT_OFF:
        if offer.value >= 100:
            return t.plain("rewards.gives.free")
        return t.plain("rewards.gives.percent_off", rate=discount_rate(offer.value, t.locale))
    if kind == OfferKind.AMOUNT_OFF:
        amount = format_money(offer.value, offer.currency)
        return t.plain("rewards.gives.amount_off", amount=amount)
    if kind == OfferKind.POINTS:
        return points_text(t, offer.value)
    return t.plain("rewards.gives.gift")
