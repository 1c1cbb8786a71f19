"""/card and the menu's card button: the member card with its QR code."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.config import CareConfig
from care.core.formatting import format_count
from care.core.i18n import Translator, labels
from care.core.money import format_money
from care.loyalty.cards import CardView, card_view, member_card_image
from handlers.shopper.menu import Registered
from storage.models import Member


def card_caption(t: Translator, view: CardView, currency: str) -> str:
    lines = [
        t("card.title"),
        t("card.name", name=view.name),
        t("card.code", code=view.code),
        t("card.tier", tier=view.tier_name),
        t("card.points", points=format_count(view.points)),
    ]
    if view.next_tier_name is None:
        lines.append(t("card.top_tier"))
    else:
        lines.append(
            t(
                "card.progress",
                amount=format_money(view.remaining_minor, currency),
                tier=view.next_tier_name,
            )
        )
    lines.append(t("card.hint"))
    return "\n".join(lines)


async def send_card(message: Message, t: Translator, view: CardView, config: CareConfig) -> None:
    png = member_card_image(view, config.shop_name, t.locale)
    photo = BufferedInputFile(png, filename=f"card-{view.code}.png")
    await message.answer_photo(photo, caption=card_caption(t, view, config.currency))


async def cmd_card(
    message: Message, session: AsyncSession, member: Member, t: Translator, config: CareConfig
) -> None:
    await send_card(message, t, await card_view(session, member, t.locale), config)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_card, Command("card"))
    router.message.register(cmd_card, F.text.in_(labels("menu.card")))
    return router
