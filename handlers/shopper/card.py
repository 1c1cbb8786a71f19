"""/card and the menu's card button: the member card with its QR code."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.config import CareConfig
from care.core.formatting import format_count
from care.core.i18n import Translator, labels
from care.core.money import format_money
from care.loyalty.cards import CardPhotos, CardView, card_image_key, card_view, member_card_image
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


async def send_card(
    message: Message,
    t: Translator,
    view: CardView,
    config: CareConfig,
    photos: CardPhotos | None = None,
) -> None:
    """The card; its image by the ``file_id`` Telegram gave it the first time, when known."""
    caption = card_caption(t, view, config.currency)
    key = card_image_key(view, config.shop_name, t.locale)
    if photos is not None and (file_id := photos.file_id(key)) is not None:
        try:
            await message.answer_photo(file_id, caption=caption)
            return
        except TelegramBadRequest:  # Telegram no longer knows it: upload again
            photos.forget(key)
    png = member_card_image(view, config.shop_name, t.locale)
    sent = await message.answer_photo(
        BufferedInputFile(png, filename=f"card-{view.code}.png"), caption=caption
    )
    if photos is not None and sent.photo:
        photos.remember(key, sent.photo[-1].file_id)


async def cmd_card(
    message: Message,
    session: AsyncSession,
    member: Member,
    t: Translator,
    config: CareConfig,
    card_photos: CardPhotos | None = None,
) -> None:
    view = await card_view(session, member, t.locale)
    await send_card(message, t, view, config, card_photos)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_card, Command("card"))
    router.message.register(cmd_card, F.text.in_(labels("menu.card")))
    return router
