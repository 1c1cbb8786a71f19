"""How the loyalty loop words what it gives: points with the plural right in English and one
number format everywhere, and a reward's coupon said as a shopper says it ("9 折", "立减 ¥20.00").

Dates and discounts come from ``care.core.formatting``, like every other text.
"""

from __future__ import annotations

from care.core.formatting import discount_label, format_count, plural_form
from care.core.i18n import Translator
from care.core.money import format_money
from storage.enums import OfferKind
from storage.models import Offer


def points_text(t: Translator, points: int) -> str:
    """``1 point`` / ``1,250 points`` / ``1,250 积分``: one number format everywhere."""
    form = "one" if plural_form(abs(points), t.locale) == "one" else "other"
    return t.plain(f"rewards.points_{form}", n=format_count(points))


def offer_gives(offer: Offer, t: Translator) -> str:
    """What a reward's coupon gives, said natively: "9 折", "立减 ¥20.00", "200 points"."""
    kind = OfferKind(offer.kind)
    if kind == OfferKind.PERCENT_OFF:
        if offer.value >= 100:
            return t.plain("rewards.gives.free")
        return discount_label(offer.value, t.locale)
    if kind == OfferKind.AMOUNT_OFF:
        amount = format_money(offer.value, offer.currency)
        return t.plain("rewards.gives.amount_off", amount=amount)
    if kind == OfferKind.POINTS:
        return points_text(t, offer.value)
    return t.plain("rewards.gives.gift")
