"""The member card: a scannable QR code of the member code, and the card's facts in the caption."""

from __future__ import annotations

import io
from typing import Any

import pytest
from aiogram.methods import SendPhoto
from aiogram.types import InputFile
from PIL import Image

from care.loyalty.cards import (
    CARD_SIZE,
    CardPhotos,
    card_image_key,
    card_view,
    member_card_image,
    member_card_png,
)
from care.loyalty.purchases import record_purchase
from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, register, walk_to, without_throttling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def buy(app: RunningBot, telegram_id: int, amount_minor: int, receipt: str) -> None:
    member = await member_of(app, telegram_id)
    assert member is not None
    async with app.session() as session:
        await record_purchase(
            session,
            app.config,
            app.clock,
            member_id=member.id,
            amount_minor=amount_minor,
            receipt_id=receipt,
        )
        await session.commit()


def test_the_qr_code_is_a_png_that_depends_on_the_code() -> None:
    png = member_card_png("ABCD2345")
    assert png.startswith(PNG_MAGIC)
    assert member_card_png("ABCD2345") == png
    assert member_card_png("ABCD2346") != png


async def test_the_card_in_chinese_shows_code_tier_points_and_progress(app: RunningBot) -> None:
    user = app.user(4001, first_name="小美", language_code="zh")
    await register(user, "zh")
    await buy(app, 4001, 120_000, "R-4001-1")  # ¥1,200: silver

    await user.send("/card")
    card = await user.wait_until(lambda m: m.photo is not None)
    member = await member_of(app, 4001)
    assert member is not None
    # The real card (shop, name, code, tier, points beside the QR), not a bare coupon-like QR.
    async with app.session() as session:
        view = await card_view(session, member, "zh")
    assert card.photo == member_card_image(view, "Test Shop", "zh")
    assert card.photo != member_card_png(member.member_code)
    assert Image.open(io.BytesIO(card.photo)).size == CARD_SIZE
    caption = card.caption or ""
    assert f"会员号：{member.member_code}" in caption
    assert "等级：银卡会员" in caption
    assert f"积分：{member.points_balance:,}" in caption and member.points_balance > 0
    assert "再消费 ¥3,800.00 即可升级为金卡会员" in caption
    assert "<" not in caption  # the HTML was rendered, not shown


async def test_the_menu_button_opens_the_card_in_english(app: RunningBot) -> None:
    user = app.user(4002, first_name="Ann", language_code="en")
    await register(user, "en")
    await user.press(label("en", "menu.card"))
    card = await user.wait_until(lambda m: m.photo is not None)
    caption = card.caption or ""
    assert "Tier: Member" in caption
    assert "Points: 0" in caption
    assert "Spend ¥1,000.00 more within 12 months to reach Silver" in caption


async def test_the_top_tier_says_so_instead_of_a_next_tier(app: RunningBot) -> None:
    user = app.user(4003, language_code="en")
    await register(user, "en")
    await buy(app, 4003, 2_500_000, "R-4003-1")
    await user.send("/card")
    card = await user.wait_until(lambda m: m.photo is not None)
    assert "Tier: Platinum" in (card.caption or "")
    assert "highest tier" in (card.caption or "")


async def test_strangers_and_half_registered_shoppers_are_told_what_to_do(
    app: RunningBot,
) -> None:
    stranger = app.user(4004, language_code="en")
    await stranger.send("/card")
    await stranger.expect("send /start")

    halfway = app.user(4005, language_code="zh")
    await walk_to(halfway, "zh", "phone")
    await halfway.send("/card")
    await halfway.expect("我们先完成注册吧")
    assert not any(m.photo for m in halfway.messages)


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_menu_brings_back_the_keyboard_and_help_explains(
    app: RunningBot, locale: str
) -> None:
    user = app.user(4006, language_code=locale)
    await register(user, locale)
    await user.send("/menu")
    menu = await user.wait_until(lambda m: bool(m.reply_buttons))
    assert [label(locale, "menu.invite"), label(locale, "menu.settings")] in menu.reply_buttons
    await user.press(label(locale, "menu.help"))
    await user.expect("/delete_me")


def uploads_of_photos(app: RunningBot) -> list[bool]:
    """Per sendPhoto the bot makes from now on: True when it uploaded the image."""
    seen: list[bool] = []

    async def spy(make_request: Any, bot: Any, method: Any) -> Any:
        if isinstance(method, SendPhoto):
            seen.append(isinstance(method.photo, InputFile))
        return await make_request(bot, method)

    app.bot.session.middleware(spy)
    return seen


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_the_card_image_is_uploaded_once_then_sent_by_its_file_id(
    app: RunningBot, locale: str
) -> None:
    user = app.user(4010, language_code=locale)
    await register(user, locale)
    uploads = uploads_of_photos(app)
    member = await member_of(app, 4010)
    assert member is not None

    await user.send("/card")
    first = await user.wait_until(lambda m: m.photo is not None)
    await user.press(label(locale, "menu.card"))
    second = await user.wait_until(lambda m: m.photo is not None and m is not first)
    assert uploads == [True, False]
    async with app.session() as session:
        view = await card_view(session, member, locale)
    card = member_card_image(view, app.config.shop_name, locale)
    assert first.photo == second.photo == card
    assert first.caption == second.caption

    # A file_id Telegram no longer knows: the card is uploaded again, and that id kept.
    photos: CardPhotos = app.dp["card_photos"]
    key = card_image_key(view, app.config.shop_name, locale)
    photos.remember(key, "SIMFILE99999999AgACAgIAAxkBAAI-gone")
    await user.send("/card")
    third = await user.wait_until(lambda m: m.photo is not None and m not in (first, second))
    assert third.photo == card
    assert uploads == [True, False, False, True]
    assert photos.file_id(key) not in (None, "SIMFILE99999999AgACAgIAAxkBAAI-gone")


def test_card_photos_keep_the_newest() -> None:
    photos = CardPhotos(limit=2)
    photos.remember("A", "1")
    photos.remember("B", "2")
    assert photos.file_id("A") == "1"  # A is now the newest
    photos.remember("C", "3")
    assert (photos.file_id("A"), photos.file_id("B"), photos.file_id("C")) == ("1", None, "3")
