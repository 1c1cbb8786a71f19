"""Offers: the care rules' built-in offers, staff-made ones, what each gives, and whether
one is usable now (the one predicate every caller uses, in Python and in SQL).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.formatting import discount_label, format_count
from care.core.i18n import Translator
from care.core.money import format_money, minor_digits
from care.loyalty.purchases import MAX_AMOUNT_MINOR
from storage.enums import OfferKind
from storage.models import Offer
from storage.repos.loyalty import OfferRepo


def offer_usable(offer: Offer | None, now: datetime) -> bool:
    """The offer exists, is switched on, and has not ended by ``now``."""
    if offer is None or not offer.is_active:
        return False
    return offer.valid_until is None or offer.valid_until > now


def usable_offers(now: datetime) -> ColumnElement[bool]:
    """``offer_usable`` as a WHERE clause over ``offers``."""
    return Offer.is_active.is_(True) & or_(Offer.valid_until.is_(None), Offer.valid_until > now)


# Built-in offers of the care rules: kind, value (percent, whole currency units or points),
# minimum spend in whole units, days a coupon stays valid.
RULE_OFFERS: dict[str, tuple[str, OfferKind, int, int, int]] = {
    "welcome": ("Welcome: 10% off", OfferKind.PERCENT_OFF, 10, 0, 30),
    "birthday": ("Birthday: 20 off over 100", OfferKind.AMOUNT_OFF, 20, 100, 30),
    "winback": ("We miss you: 15% off", OfferKind.PERCENT_OFF, 15, 0, 21),
    "last_chance": ("Last chance: 30 off over 150", OfferKind.AMOUNT_OFF, 30, 150, 14),
    "referral": ("Referral thanks: 200 points", OfferKind.POINTS, 200, 0, 60),
    "anniversary": ("Anniversary gift", OfferKind.GIFT, 0, 0, 30),
}


def _validate_offer(kind: OfferKind, value: int, min_spend_minor: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an offer's value is a whole number")
    if kind == OfferKind.PERCENT_OFF and not 1 <= value <= 100:
        raise ValueError("a percentage off is between 1 and 100")
    if kind in (OfferKind.AMOUNT_OFF, OfferKind.POINTS) and not 1 <= value <= MAX_AMOUNT_MINOR:
        raise ValueError("an amount or a number of points must be positive")
    if kind == OfferKind.GIFT and value < 0:
        raise ValueError("a gift has no negative value")
    if not 0 <= min_spend_minor <= MAX_AMOUNT_MINOR:
        raise ValueError("the minimum spend is out of range")


async def rule_offer(session: AsyncSession, clock: Clock, config: CareConfig, key: str) -> Offer:
    """The built-in offer of a care rule, created with sensible defaults on first use.

    Staff may change it afterwards (the row is found by its key); it is never recreated.
    """
    repo = OfferRepo(session)
    offer = await repo.by_key(key)
    if offer is not None:
        return offer
    if key not in RULE_OFFERS:
        raise KeyError(f"no built-in offer {key!r}")
    title, kind, value, min_spend_units, days = RULE_OFFERS[key]
    unit = 10 ** minor_digits(config.currency)
    if kind == OfferKind.AMOUNT_OFF:
        value *= unit
    await repo.insert_keyed(
        {
            "key": key,
            "title": title,
            "kind": str(kind),
            "value": value,
            "currency": config.currency,
            "min_spend_minor": min_spend_units * unit,
            "coupon_valid_days": days,
            "is_active": True,
            "created_at": clock.now(),
        }
    )
    offer = await repo.by_key(key)
    assert offer is not None
    return offer


async def create_offer(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    title: str,
    kind: OfferKind,
    value: int,
    title_zh: str | None = None,
    title_en: str | None = None,
    min_spend_minor: int = 0,
    valid_until: datetime | None = None,
    coupon_valid_days: int | None = 30,
    created_by: int | None = None,
) -> Offer:
    """A staff-made offer. ``value`` is a percentage, minor units, or points by ``kind``.

    ``title`` is the staff's name for it; ``title_zh`` / ``title_en`` what members read (one
    may be empty: its readers see the other).

    Raises ``ValueError`` for an empty title, an impossible value or an end in the past.
    """
    kind = OfferKind(kind)
    title = title.strip()
    if not title or len(title) > 120:
        raise ValueError("an offer needs a title of 1–120 characters")
    _validate_offer(kind, value, min_spend_minor)
    now = clock.now()
    if valid_until is not None and valid_until <= now:
        raise ValueError("the offer would end before it starts")
    if coupon_valid_days is not None and not 1 <= coupon_valid_days <= 3650:
        raise ValueError("coupons are valid for 1–3650 days")
    return await OfferRepo(session).add(
        Offer(
            title=title,
            title_zh=(title_zh or "").strip()[:120] or None,
            title_en=(title_en or "").strip()[:120] or None,
            kind=str(kind),
            value=value,
            currency=config.currency,
            min_spend_minor=min_spend_minor,
            valid_from=now,
            valid_until=valid_until,
            coupon_valid_days=coupon_valid_days,
            is_active=True,
            created_by=created_by,
            created_at=now,
        )
    )


def coupon_expiry(offer: Offer, issued_at: datetime) -> datetime | None:
    """A coupon lasts ``coupon_valid_days``, and never beyond the offer's own end."""
    ends = [offer.valid_until] if offer.valid_until is not None else []
    if offer.coupon_valid_days is not None:
        ends.append(issued_at + timedelta(days=offer.coupon_valid_days))
    return min(ends) if ends else None


def offer_name(offer: Offer, locale: str) -> str | None:
    """The offer's name as a member reading ``locale`` sees it, or None to show no name.

    The name in their language, else the other language's; an offer staff made before names
    had languages shows the title staff gave it. A care rule's built-in offer has only an
    English working title, which members never read: it shows what it gives instead.
    """
    own, other = (
        (offer.title_en, offer.title_zh) if locale == "en" else (offer.title_zh, offer.title_en)
    )
    if own or other:
        return own or other
    return offer.title if offer.key is None else None


def describe_offer(offer: Offer, t: Translator) -> str:
    """What the offer gives, in the reader's language: "10% off", "¥20 off orders over ¥100"."""
    kind = OfferKind(offer.kind)
    values: dict[str, object] = {}
    if kind == OfferKind.PERCENT_OFF:
        values["discount"] = discount_label(offer.value, t.locale)
    elif kind == OfferKind.AMOUNT_OFF:
        values["amount"] = format_money(offer.value, offer.currency)
    elif kind == OfferKind.POINTS:
        values["points"] = format_count(offer.value)
    key = f"loyalty.offer.{kind}"
    if offer.min_spend_minor > 0 and kind != OfferKind.POINTS:
        key += "_min"
        values["min_spend"] = format_money(offer.min_spend_minor, offer.currency)
    return t(key, **values)
