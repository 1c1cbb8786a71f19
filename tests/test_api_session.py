"""The bot's Bot API session: a JSON body with what aiogram's form carries, a form for uploads."""

from __future__ import annotations

import json
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.enums import ChatAction, ParseMode
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageText,
    SendChatAction,
    SendMessage,
    SendPhoto,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MessageEntity,
    ReplyKeyboardMarkup,
)

from bot.api_session import BotApiSession
from bot.app import create_bot
from care.messaging.delivery.wire import usable
from tests.conftest import TEST_TOKEN, make_settings
from tests.simulator import BotAPISimulator
from tests.simulator.users import TINY_PNG

MENU = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="积分"), KeyboardButton(text="Card")]])
BUTTONS = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="領取 Claim", callback_data="offer:7")]]
)
CALLS: list[TelegramMethod[Any]] = [
    SendMessage(chat_id=42, text="您有 <b>30</b> 积分 & 1 coupon", reply_markup=MENU),
    SendMessage(chat_id=42, text="hi", reply_markup=BUTTONS, disable_notification=False),
    SendMessage(
        chat_id=-100,
        text="x",
        message_thread_id=7,
        entities=[MessageEntity(type="bold", offset=0, length=1)],
    ),
    SendMessage(chat_id=42, text="Why?", reply_markup=ForceReply(force_reply=True)),
    SendPhoto(chat_id=42, photo="AgAD-file-id", caption="", reply_markup=BUTTONS),
    EditMessageText(chat_id=42, message_id=9, text="done", reply_markup=None),
    AnswerCallbackQuery(callback_query_id="c1", text="已领取", show_alert=True),
    SendChatAction(chat_id=42, action=ChatAction.UPLOAD_PHOTO),
    SetMyCommands(commands=[BotCommand(command="points", description="积分")], language_code="zh"),
]


def form_fields(bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
    """What aiogram's own form carries, each value decoded from its form text."""
    form = AiohttpSession.build_form_data(bot.session, bot, method)  # type: ignore[arg-type]
    fields: dict[str, Any] = {}
    for options, _headers, value in form._fields:
        name = options["name"]
        try:
            fields[name] = json.loads(value) if name not in {"text", "caption"} else value
        except ValueError:
            fields[name] = value  # a plain string: a file id, "HTML", an action
    return fields


async def test_a_call_goes_as_json_with_what_aiogram_s_form_carries() -> None:
    defaults = DefaultBotProperties(
        parse_mode=ParseMode.HTML, link_preview_is_disabled=True, protect_content=True
    )
    bot = Bot(TEST_TOKEN, session=BotApiSession(), default=defaults)
    try:
        for method in CALLS:
            body = bot.session.json_body(bot, method)  # type: ignore[attr-defined]
            assert body is not None, method
            assert json.loads(body) == form_fields(bot, method), method
        sent = json.loads(bot.session.json_body(bot, CALLS[0]))  # type: ignore[attr-defined]
        assert sent["parse_mode"] == "HTML" and sent["link_preview_options"] == {
            "is_disabled": True
        }
        assert sent["reply_markup"]["keyboard"][0][0]["text"] == "积分"
    finally:
        await bot.session.close()


async def test_an_upload_goes_as_aiogram_s_multipart_form() -> None:
    bot = Bot(TEST_TOKEN, session=BotApiSession())
    try:
        upload = SendPhoto(chat_id=42, photo=BufferedInputFile(b"\x89PNG", filename="card.png"))
        assert bot.session.json_body(bot, upload) is None  # type: ignore[attr-defined]
    finally:
        await bot.session.close()


async def test_the_simulator_reads_the_bot_s_json_calls() -> None:
    """End to end: the bot's session against the Bot API simulator, text, keyboard and upload."""
    async with BotAPISimulator() as sim:
        bot = create_bot(make_settings("sqlite+aiosqlite://", sim.base_url))
        try:
            user = sim.user(user_id=5001, first_name="Li")
            await user.send("/start")  # the chat exists once the person wrote
            sent = await bot.send_message(user.chat_id, "您好 <b>Li</b>", reply_markup=MENU)
            assert sent.text == "您好 Li"
            photo = await bot.send_photo(
                user.chat_id, BufferedInputFile(TINY_PNG, filename="card.png"), caption="卡"
            )
            assert photo.photo and photo.caption == "卡"
            shown = [await user.next_message(), await user.next_message()]
            assert shown[0].content == "您好 Li" and shown[1].content == "卡"
            assert shown[0].reply_buttons == [["积分", "Card"]]
        finally:
            await bot.session.close()


def test_the_bot_s_own_session_takes_the_delivery_worker_s_lean_path() -> None:
    """``carebot run`` and ``carebot deliver`` build their bot with ``create_bot``: the delivery
    worker's lean sending must apply to it, not only to a plain aiogram session."""
    bot = create_bot(make_settings("sqlite+aiosqlite://", "http://127.0.0.1:1"))
    assert isinstance(bot.session, BotApiSession)
    assert usable(bot)
