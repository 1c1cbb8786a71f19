"""At the till: what a cashier types, checked, then booked through loyalty — and audited.

The chat's /purchase and /redeem and the CSV importer share these checks, so a line the
importer rejects is exactly an input the till would refuse.

Amounts are read as people type them, in either convention (hand-written because no library
reads both conventions at once: Babel's ``parse_decimal`` needs to be told the locale):

* ``12.50`` and ``12,50`` are twelve fifty: a single ``.`` or ``,`` followed by one or two
  digits is the decimal mark (``12,5`` is 12.50);
* ``1,250``, ``1 250``, ``12,345,678`` and ``1.250.000`` are grouped thousands: groups of
  exactly three digits after the first;
* with both marks, the last one is the decimal mark (``1,250.50`` and ``1.250,50``);
* ``1.250`` is ambiguous — one dot followed by three digits is 1,250 in Germany and a mistyped
  1.25 elsewhere — so it is asked back instead of guessed (``ambiguous_amount``), as is any mark
  followed by three digits that cannot be a thousands group (``0,125``);
* zero and negative amounts are refused.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, catalogue
from care.core.money import SYMBOLS, minor_digits
from care.loyalty.coupons import RedeemResult, redeem_coupon
from care.loyalty.purchases import MAX_AMOUNT_MINOR, PurchaseResult, record_purchase
from care.members.lookup import find_by_code_or_phone
from storage.models import Coupon, Member
from storage.repos.members import MemberRepo

RECEIPT_MAX = 64
NO_CATEGORY = "-"
TillProblem = Literal[
    "bad_amount",
    "ambiguous_amount",
    "absurd_amount",
    "unknown_category",
    "unknown_member",
    "ambiguous_member",
    "bad_receipt",
]


class TillInputError(Exception):
    """Input the till refuses; ``reason`` names the problem, ``value`` what was typed."""

    def __init__(self, reason: TillProblem, value: str = "") -> None:
        super().__init__(f"{reason}: {value!r}")
        self.reason: TillProblem = reason
        self.value = value


# Spaces people and spreadsheets put between thousands: plain, no-break, thin, narrow no-break.
_GROUP_SPACES = re.compile(r"(?<=\d)[ \u00a0\u2009\u202f](?=\d{3}(?!\d))")
_GROUPED = re.compile(r"^[1-9]\d{0,2}(?:(?P<mark>[.,])\d{3})(?:(?P=mark)\d{3})*$")
_PLAIN = re.compile(r"^\d{1,12}$")


def read_typed_amount(text: str) -> Decimal:
    """The amount a person typed, as a ``Decimal`` in whole units (the rules are above).

    Raises ``TillInputError`` with ``bad_amount`` (not a number) or ``ambiguous_amount``.
    """
    # NFKC folds what a Chinese keyboard types (１２，５０ ￥) into ASCII digits and marks.
    cleaned = unicodedata.normalize("NFKC", text).strip()
    for symbol in sorted({*SYMBOLS.values(), "￥", "元", "RMB", "CNY"}, key=len, reverse=True):
        cleaned = cleaned.removeprefix(symbol).removesuffix(symbol).strip()
    if cleaned.startswith("-"):
        raise TillInputError("bad_amount", text)
    cleaned = _GROUP_SPACES.sub("", cleaned)
    marks = [(index, ch) for index, ch in enumerate(cleaned) if ch in ".,"]
    whole, fraction = cleaned, ""
    if marks:
        last_index, last_mark = marks[-1]
        tail = cleaned[last_index + 1 :]
        others = {ch for _, ch in marks[:-1]}
        if len(tail) in (1, 2) and tail.isdigit() and last_mark not in others:
            # A decimal mark; anything before it must be plain or grouped by the other mark.
            whole, fraction = cleaned[:last_index], tail
            if others:
                if not _GROUPED.match(whole):
                    raise TillInputError("bad_amount", text)
                whole = whole.replace(others.pop(), "")
        elif len(tail) == 3 and tail.isdigit():
            if _GROUPED.match(cleaned) and (last_mark == "," or len(marks) > 1):
                whole = cleaned.replace(last_mark, "")
            elif len(marks) == 1 and cleaned[:last_index].isdigit():
                # "1.250" (a German thousand or a mistyped 1.25) or "0,125": ask, do not guess.
                raise TillInputError("ambiguous_amount", text)
            else:
                raise TillInputError("bad_amount", text)
        else:
            raise TillInputError("bad_amount", text)
    if not _PLAIN.match(whole):
        raise TillInputError("bad_amount", text)
    return Decimal(f"{whole}.{fraction or '0'}")


def parse_till_amount(text: str, config: CareConfig) -> int:
    """What a cashier typed → minor units; zero, negative, malformed, ambiguous or absurd
    amounts are refused (``TillInputError``)."""
    value = read_typed_amount(text)
    digits = minor_digits(config.currency)
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise TillInputError("bad_amount", text)
    amount = int(value.scaleb(digits))
    if amount <= 0:
        raise TillInputError("bad_amount", text)
    if amount > MAX_AMOUNT_MINOR:
        raise TillInputError("absurd_amount", text)
    return amount


def match_category(text: str | None, config: CareConfig) -> str | None:
    """The shop's category ``text`` names: its key or its name in any language, case-insensitive
    (``fresh``, ``生鲜食品``, ``Fresh food``); empty or ``-`` is no category."""
    cleaned = (text or "").strip()
    if not cleaned or cleaned == NO_CATEGORY:
        return None
    wanted = cleaned.casefold()
    for category in config.categories:
        names = {category} | {
            catalogue(locale)[f"interest.{category}"]
            for locale in LOCALES
            if f"interest.{category}" in catalogue(locale)
        }
        if wanted in {name.casefold() for name in names}:
            return category
    raise TillInputError("unknown_category", cleaned)


def check_receipt(text: str | None) -> str | None:
    cleaned = (text or "").strip()
    if not cleaned:
        return None
    if len(cleaned) > RECEIPT_MAX or any(ch.isspace() for ch in cleaned):
        raise TillInputError("bad_receipt", cleaned)
    return cleaned


async def till_member(session: AsyncSession, text: str) -> Member:
    """The one member a member code or phone number names."""
    found = await find_by_code_or_phone(session, text, limit=2)
    if not found:
        raise TillInputError("unknown_member", text)
    if len(found) > 1:
        raise TillInputError("ambiguous_member", text)
    return found[0]


async def record_till_purchase(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member: Member,
    amount_minor: int,
    category: str | None,
    receipt_id: str,
    staff_telegram_id: int,
    staff_role: str,
) -> PurchaseResult:
    """Book a purchase a cashier rang up; a new one is audited, a repeated receipt is not.

    Raises ``care.loyalty.purchases.PurchaseError`` as ``record_purchase`` does.
    """
    result = await record_purchase(
        session,
        config,
        clock,
        member_id=member.id,
        amount_minor=amount_minor,
        receipt_id=receipt_id,
        category=category,
        source="till",
        recorded_by=staff_telegram_id,
    )
    if not result.duplicate:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="purchase.record",
            target=f"member:{member.id}",
            details={
                "purchase_id": result.purchase_id,
                "receipt_id": receipt_id,
                "amount_minor": amount_minor,
                "currency": config.currency,
                "points": result.points_earned,
            },
        )
    return result


async def redeem_at_till(
    session: AsyncSession,
    clock: Clock,
    *,
    code: str,
    staff_telegram_id: int,
    staff_role: str,
) -> RedeemResult:
    """Redeem a coupon (atomically, in loyalty); a successful redemption is audited."""
    result = await redeem_coupon(session, clock, code=code, staff_telegram_id=staff_telegram_id)
    if result.status == "redeemed" and result.coupon is not None:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="coupon.redeem",
            target=f"coupon:{result.coupon.code}",
            details={"member_id": result.coupon.member_id, "offer_id": result.coupon.offer_id},
        )
    return result


async def coupon_holder(session: AsyncSession, coupon: Coupon) -> Member | None:
    """The member a coupon was issued to (to name them at the till)."""
    return await MemberRepo(session).get(coupon.member_id)
