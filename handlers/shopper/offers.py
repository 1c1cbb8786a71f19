"""/offers and the menu's offers button: the member's usable coupons, each with its QR code."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.codes import display_code
from care.core.formatting import format_day
from care.core.i18n import Translator, labels
from care.core.qr import qr_png
from care.loyalty.coupons import active_coupons
from care.loyalty.offers import describe_offer, offer_name
from handlers.shopper.menu import Registered
from storage.models import Coupon, Member

# One photo per coupon: past ten, a chat turns into a wall.
MAX_SHOWN = 10


def local_time(when: datetime, timezone: str) -> datetime:
    """``when`` on the member's wall clock."""
    return when.astimezone(ZoneInfo(timezone))


def coupon_caption(t: Translator, coupon: Coupon, timezone: str) -> str:
    offer = coupon.offer
    # Built-in offers carry an English working title; what the member reads is the
    # localised description. Offers staff named show the name in the member's language.
    # describe_offer's text comes from the catalogue: trusted HTML, not to be escaped again.
    what = Markup(describe_offer(offer, t))
    name = offer_name(offer, t.locale)
    if name is not None:
        lines = [t("offers.coupon_title", title=name), what]
    else:
        lines = [t("offers.coupon_title", title=what)]
    lines.append(t("offers.coupon_code", code=display_code(coupon.code)))
    if coupon.expires_at is None:
        lines.append(t("offers.no_expiry"))
    else:
        local = local_time(coupon.expires_at, timezone)
        lines.append(
            t("offers.until", date=format_day(local, t.locale), time=local.strftime("%H:%M"))
        )
    return "\n".join(lines)


async def cmd_offers(
    message: Message, session: AsyncSession, member: Member, t: Translator, clock: Clock
) -> None:
    # The one to use first leads: soonest expiry first, coupons without an end date last.
    coupons = sorted(
        await active_coupons(session, clock, member.id),
        key=lambda coupon: (coupon.expires_at is None, coupon.expires_at or clock.now()),
    )
    if not coupons:
        await message.answer(t("offers.empty"))
        return
    await message.answer(t("offers.header", count=len(coupons)))
    for coupon in coupons[:MAX_SHOWN]:
        photo = BufferedInputFile(qr_png(coupon.code), filename=f"coupon-{coupon.code}.png")
        await message.answer_photo(photo, caption=coupon_caption(t, coupon, member.timezone))
    if len(coupons) > MAX_SHOWN:
        await message.answer(t("offers.more", count=len(coupons) - MAX_SHOWN))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_offers, Command("offers"))
    router.message.register(cmd_offers, F.text.in_(labels("menu.offers")))
    return router
