"""Tests for the Bot API simulator, driven by the real aiogram Bot."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiohttp import web

from tests.simulator import BotAPISimulator, SimMessage
from tests.simulator.tg_html import HTMLParseError, parse_html

if TYPE_CHECKING:
    from aiogram.types import MediaUnion

TOKEN = "123456789:TEST-token_abc"
ROOT = Path(__file__).resolve().parent.parent


def make_bot(sim: BotAPISimulator, token: str = TOKEN) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sim.base_url))
    return Bot(token, session=session)


@pytest.fixture
async def sim() -> AsyncIterator[BotAPISimulator]:
    async with BotAPISimulator() as simulator:
        yield simulator


@pytest.fixture
async def bot(sim: BotAPISimulator) -> AsyncIterator[Bot]:
    bot = make_bot(sim)
    yield bot
    await bot.session.close()


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=f"cb:{label}")] for label in labels
        ]
    )


# --------------------------------------------------------------------------- basics
async def test_get_me_uses_token_id(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot is True
    assert me.username == "carebot_test_bot"
    assert me.first_name == "Carebot Test"
    assert me.can_join_groups is True


async def test_bad_token_is_unauthorized(sim: BotAPISimulator) -> None:
    sim.valid_tokens = {TOKEN}
    other = make_bot(sim, "42:wrong")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await other.get_me()
    finally:
        await other.session.close()
    assert sim.stats.errors_401 == 1


async def test_unknown_method_and_json_body(sim: BotAPISimulator) -> None:
    sim.user(5, "Ann", started=True)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.base_url}/bot{TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        # Method names are case-insensitive and JSON bodies keep their types.
        url = f"{sim.base_url}/bot{TOKEN}/SENDMESSAGE"
        async with http.post(url, json={"chat_id": 5, "text": "123"}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert body["result"]["text"] == "123"
        async with http.post(f"{sim.base_url}/botnotatoken/getMe") as resp:
            assert resp.status == 401
    assert sim.chat_messages(5)[0].text == "123"


async def test_chat_not_found_until_user_writes(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(777, "Bo")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "hi")
    await user.send("/start")
    await bot.send_message(777, "hi")
    assert [m.text for m in user.messages] == ["hi"]


# ------------------------------------------------------------------ messages & keys
async def test_html_message_inline_button_press_and_callback_answer(
    sim: BotAPISimulator, bot: Bot
) -> None:
    user = sim.user(111, "Li", username="li", language_code="zh")
    start = await user.send("/start ref_ABC")
    assert start.payload["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    updates = await bot.get_updates()
    assert updates[0].message is not None
    assert updates[0].message.text == "/start ref_ABC"
    assert updates[0].message.from_user is not None
    assert updates[0].message.from_user.language_code == "zh"

    sent = await bot.send_message(
        111,
        "<b>Hello</b> &amp; welcome, <i>Li</i>",
        parse_mode="HTML",
        reply_markup=keyboard("Join", "Later"),
    )
    assert sent.text == "Hello & welcome, Li"
    assert sent.reply_markup is not None
    msg = user.last_message
    assert msg is not None
    assert msg.text == "Hello & welcome, Li"
    assert msg.html == "<b>Hello</b> &amp; welcome, <i>Li</i>"
    assert msg.inline_buttons == [["Join"], ["Later"]]

    callback_id = await user.press(" Join ")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1)
    assert len(updates) == 1
    query = updates[0].callback_query
    assert query is not None
    assert query.id == callback_id
    assert query.data == "cb:Join"
    assert query.from_user.id == 111
    assert query.message is not None
    assert query.message.message_id == sent.message_id

    await bot.answer_callback_query(query.id, text="Joined!", show_alert=True)
    answer = await user.wait_callback_answer(str(callback_id), timeout=1)
    assert (answer.text, answer.show_alert) == ("Joined!", True)
    assert user.callback_answers == [answer]
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)


async def test_press_unknown_label_lists_visible_buttons(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(112, "Ma", started=True)
    await bot.send_message(112, "Pick", reply_markup=keyboard("Yes", "No"))
    with pytest.raises(AssertionError, match=r"'Maybe'.*\['Yes', 'No'\]"):
        await user.press("Maybe")
    with pytest.raises(AssertionError):
        await user.press("yes")  # case-sensitive


async def test_long_polling_wakes_on_update_and_offset_confirms(
    sim: BotAPISimulator, bot: Bot
) -> None:
    user = sim.user(200, "Po")
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    await user.send("hello")
    updates = await asyncio.wait_for(poll, 2)
    assert loop.time() - started < 2
    assert [u.message.text for u in updates if u.message] == ["hello"]

    # Unconfirmed updates are delivered again; confirming with offset drops them.
    again = await bot.get_updates()
    assert [u.update_id for u in again] == [updates[0].update_id]
    await user.send("second")
    confirmed = await bot.get_updates(offset=updates[0].update_id + 1)
    assert [u.message.text for u in confirmed if u.message] == ["second"]
    assert await bot.get_updates(offset=confirmed[0].update_id + 1, timeout=0) == []

    # limit and allowed_updates filtering
    for i in range(3):
        await user.send(f"m{i}")
    assert len(await bot.get_updates(limit=2)) == 2
    await bot.send_message(200, "menu")
    callback_id = await user.press_data("forged:1")
    only_callbacks = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.callback_query.id for u in only_callbacks if u.callback_query] == [callback_id]
    assert len(only_callbacks) == 1  # the remaining message updates were dropped


async def test_send_photo_keeps_bytes_and_user_photo_downloads(
    sim: BotAPISimulator, bot: Bot
) -> None:
    user = sim.user(300, "Qi", started=True)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (64).to_bytes(4, "big") * 2 + b"rest"
    sent = await bot.send_photo(
        300, BufferedInputFile(png, "qr.png"), caption="<b>Your QR</b>", parse_mode="HTML"
    )
    assert sent.photo is not None
    assert sent.photo[-1].width == 64
    assert sent.caption == "Your QR"
    msg = await user.next_message(timeout=1)
    assert msg.photo == png
    assert msg.caption == "Your QR"

    await bot.send_document(300, BufferedInputFile(b"a,b\n1,2\n", "export.csv"))
    doc = await user.next_message(timeout=1)
    assert doc.document == ("export.csv", b"a,b\n1,2\n")

    # A photo the user sends can be fetched with getFile + download.
    user_photo = await user.send_photo(caption="receipt")
    file_id = user_photo.payload["photo"][-1]["file_id"]
    file = await bot.get_file(file_id)
    assert file.file_path is not None
    data = await bot.download_file(file.file_path)
    assert data is not None
    assert data.read() == user_photo.photo


async def test_edit_message_text_and_not_modified(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(400, "Ed", started=True)
    sent = await bot.send_message(400, "Step 1", reply_markup=keyboard("Next"))
    edited = await bot.edit_message_text("Step 2", chat_id=400, message_id=sent.message_id)
    assert not isinstance(edited, bool)
    assert edited.text == "Step 2"
    assert edited.edit_date is not None
    msg = user.messages[0]
    assert (msg.text, msg.edited) == ("Step 2", 1)
    assert msg.inline_buttons == []  # editing without reply_markup drops the keyboard
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Step 2", chat_id=400, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=400, message_id=999)
    await bot.edit_message_reply_markup(
        chat_id=400, message_id=sent.message_id, reply_markup=keyboard("Done")
    )
    assert msg.inline_buttons == [["Done"]]
    assert await bot.delete_message(400, sent.message_id) is True
    assert msg.deleted
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(400, sent.message_id)


async def test_expect_sees_edits_and_no_message_within(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(401, "Ex", started=True)
    sent = await bot.send_message(401, "Loading…")
    await user.send("go")

    async def later() -> None:
        await asyncio.sleep(0.05)
        await bot.edit_message_text("Done: 3 points", chat_id=401, message_id=sent.message_id)

    task = asyncio.create_task(later())
    found = await user.expect("3 points", timeout=2)
    await task
    assert found.message_id == sent.message_id
    await user.no_message_within(0.05)
    assert (await user.next_message(timeout=0.1)).message_id == sent.message_id
    with pytest.raises(AssertionError, match="no new bot message"):
        await user.next_message(timeout=0.01)
    await bot.send_message(401, "surprise")
    with pytest.raises(AssertionError, match="surprise"):
        await user.no_message_within(0.01)
    assert (await user.next_message(timeout=0.1)).text == "surprise"


# -------------------------------------------------------------------------- errors
async def test_block_gives_forbidden_and_member_updates(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(500, "Bl", started=True)
    await bot.send_message(500, "before")
    await user.block()
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(500, "after")
    await user.unblock()
    await bot.send_message(500, "back")
    updates = await bot.get_updates(allowed_updates=["my_chat_member"])
    changes = [
        (u.my_chat_member.old_chat_member.status, u.my_chat_member.new_chat_member.status)
        for u in updates
        if u.my_chat_member
    ]
    assert changes == [("member", "kicked"), ("kicked", "member")]
    assert [m.text for m in user.messages] == ["before", "back"]
    assert sim.stats.errors_403 == 1


async def test_per_chat_rate_limit_answers_retry_after(sim: BotAPISimulator, bot: Bot) -> None:
    sim.user(600, "Rl", started=True)
    sim.user(601, "R2", started=True)
    await bot.send_message(600, "one")  # limits are off by default
    await bot.send_message(600, "two")
    sim.enforce_limits(global_rate=30, per_chat_rate=1.0)
    await bot.send_message(600, "three")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(600, "four")
    assert info.value.retry_after >= 1
    await bot.send_message(601, "other chat is fine")
    assert sim.stats.errors_429 == 1
    assert sim.stats.sent == 4


async def test_global_rate_limit(sim: BotAPISimulator, bot: Bot) -> None:
    sim.register_chats(10_000, 100)
    sim.enforce_limits(global_rate=5, per_chat_rate=1.0)
    for i in range(5):
        await bot.send_message(10_000 + i, "hi")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(10_050, "hi")
    assert info.value.retry_after == 1
    sim.disable_limits()
    await bot.send_message(10_050, "hi")
    assert sim.stats.errors_429 == 1


async def test_injected_server_error_and_latency(sim: BotAPISimulator, bot: Bot) -> None:
    sim.user(700, "Fa", started=True)
    sim.fail_next(method="sendMessage", status=502, count=1)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(700, "x")
    await bot.send_message(700, "y")
    assert sim.stats.injected == 1
    sim.method_latency["getme"] = 0.2
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("text", "parse_mode", "error"),
    [
        ("x" * 4097, None, "message is too long"),
        ("<b>" + "x" * 4096 + "</b>", "HTML", None),  # tags do not count
        ("&amp;" * 4096, "HTML", None),
        ("   ", None, "message text is empty"),
        ("<b>bold</i>", "HTML", "can't parse entities"),
        ("<script>x</script>", "HTML", "Unsupported start tag"),
        ("1 < 2", "HTML", "can't parse entities"),
        ("Tom & Jerry", "HTML", "can't parse entities"),
        ("<b>open", "HTML", "Can't find end tag"),
        ('<a href="https://x.org">ok</a> <span class="tg-spoiler">s</span>', "HTML", None),
    ],
)
async def test_text_validation(
    sim: BotAPISimulator, bot: Bot, text: str, parse_mode: str | None, error: str | None
) -> None:
    sim.user(800, "Va", started=True)
    if error is None:
        await bot.send_message(800, text, parse_mode=parse_mode)
        assert len(sim.chat_messages(800)) == 1
    else:
        with pytest.raises(TelegramBadRequest, match=error):
            await bot.send_message(800, text, parse_mode=parse_mode)
        assert sim.chat_messages(800) == []


async def test_caption_and_callback_data_limits(sim: BotAPISimulator, bot: Bot) -> None:
    sim.user(801, "Ca", started=True)
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(801, BufferedInputFile(b"img", "a.png"), caption="c" * 1025)
    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(801, "hi", reply_markup=too_long)
    assert sim.chat_messages(801) == []


def test_html_parser_visible_text() -> None:
    assert parse_html("<b>a</b> &lt;3 &#128512; <tg-spoiler>s</tg-spoiler>") == "a <3 😀 s"
    assert parse_html('<pre><code class="language-py">x = 1</code></pre>') == "x = 1"
    with pytest.raises(HTMLParseError):
        parse_html("<span>no class</span>")
    with pytest.raises(HTMLParseError):
        parse_html("&nbsp;")


# -------------------------------------------------------------- reply keyboards etc.
async def test_reply_keyboard_contact_button_shares_own_contact(
    sim: BotAPISimulator, bot: Bot
) -> None:
    user = sim.user(900, "Co", last_name="Ntact", started=True)
    markup = ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text="📱 Share phone", request_contact=True)],
            [KeyboardButton(text="Menu")],
        ],
        resize_keyboard=True,
    )
    sent = await bot.send_message(900, "Please share your phone", reply_markup=markup)
    assert sent.reply_markup is None  # Telegram only echoes inline keyboards
    assert user.messages[0].reply_buttons == [["📱 Share phone"], ["Menu"]]
    shared = await user.press("📱 Share phone")
    assert isinstance(shared, SimMessage)
    await user.press("Menu")
    updates = await bot.get_updates()
    contact = updates[0].message.contact if updates[0].message else None
    assert contact is not None
    assert contact.user_id == 900
    assert contact.phone_number == "+8613800000000"
    assert updates[1].message is not None and updates[1].message.text == "Menu"

    forged = await user.share_contact("+100", user_id=901)
    assert forged.payload["contact"]["user_id"] == 901


async def test_forward_location_sticker_updates_parse(sim: BotAPISimulator, bot: Bot) -> None:
    boss = sim.user(1001, "Boss")
    staff = sim.user(1002, "Staff", birthdate=datetime.date(1990, 5, 17))
    await staff.forward_to_bot(boss, "hi from boss")
    await staff.send_location(31.2, 121.5)
    await staff.send_sticker()
    updates = await bot.get_updates()
    origin = updates[0].message.forward_origin if updates[0].message else None
    assert origin is not None and origin.type == "user"
    assert origin.sender_user.id == 1001  # type: ignore[union-attr]
    assert updates[1].message is not None and updates[1].message.location is not None
    assert updates[2].message is not None and updates[2].message.sticker is not None
    chat = await bot.get_chat(1002)
    assert chat.birthdate is not None and (chat.birthdate.day, chat.birthdate.month) == (17, 5)


async def test_group_forum_topics(sim: BotAPISimulator, bot: Bot) -> None:
    group = sim.group(chat_id=-100123, title="Staff", is_forum=True)
    member = sim.user(1100, "Mem")
    topic = await bot.create_forum_topic(-100123, "Complaints")
    assert group.topics[topic.message_thread_id].name == "Complaints"
    await bot.send_message(-100123, "new ticket", message_thread_id=topic.message_thread_id)
    assert group.messages[0].message_thread_id == topic.message_thread_id
    assert group.topic_messages(topic.message_thread_id)[0].text == "new ticket"
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(-100123, "x", message_thread_id=99999)
    assert await bot.close_forum_topic(-100123, topic.message_thread_id) is True
    assert group.topics[topic.message_thread_id].closed
    sent = await member.send_to_group(group, "/done", message_thread_id=topic.message_thread_id)
    updates = await bot.get_updates()
    message = updates[0].message
    assert message is not None and message.chat.id == -100123
    assert message.message_thread_id == topic.message_thread_id
    forwarded = await bot.forward_message(-100123, -100123, sent.message_id)
    assert forwarded.text == "/done"
    assert forwarded.forward_origin is not None


async def test_commands_menu_and_webhook_info(sim: BotAPISimulator, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="menu", description="菜单")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="zh",
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    zh = await bot.get_my_commands(scope=BotCommandScopeAllPrivateChats(), language_code="zh")
    assert [c.description for c in zh] == ["菜单"]
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.delete_webhook(drop_pending_updates=True) is True
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0
    await bot.set_chat_menu_button()
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_chat_action(-1, "typing")
    sim.user(1200, "Ac", started=True)
    assert await bot.send_chat_action(1200, "typing") is True


async def test_copy_message_keeps_photo(sim: BotAPISimulator, bot: Bot) -> None:
    customer = sim.user(1300, "Cu")
    staff_group = sim.group(chat_id=-100500, title="Ops")
    photo = await customer.send_photo(caption="broken item")
    result = await bot.copy_message(-100500, 1300, photo.message_id)
    copied = staff_group.messages[0]
    assert copied.message_id == result.message_id
    assert copied.caption == "broken item"
    assert copied.photo == photo.photo


async def test_media_group_and_webhook_delivery(sim: BotAPISimulator, bot: Bot) -> None:
    user = sim.user(1400, "We", started=True)
    media: list[MediaUnion] = [
        InputMediaPhoto(media=BufferedInputFile(b"one", "1.png"), caption="first"),
        InputMediaPhoto(media=BufferedInputFile(b"two", "2.png")),
    ]
    album = await bot.send_media_group(1400, media)
    assert len(album) == 2 and album[0].media_group_id == album[1].media_group_id
    assert [m.photo for m in user.messages] == [b"one", b"two"]

    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        assert request.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
        received.append(await request.json())
        # Answer with a method call in the webhook response, like aiogram can.
        return web.json_response({"method": "sendMessage", "chat_id": 1400, "text": "via hook"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        assert (await bot.get_webhook_info()).url.endswith("/hook")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        await user.send("hello hook")
        reply = await user.expect("via hook", timeout=3)
        assert reply.text == "via hook"
        assert received[0]["message"]["text"] == "hello hook"  # type: ignore[index]
        await bot.delete_webhook()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------- benchmark support
async def test_control_api_and_no_history_mode() -> None:
    async with BotAPISimulator(keep_history=False) as sim:
        bot = make_bot(sim)
        try:
            async with aiohttp.ClientSession() as http:
                base = f"{sim.base_url}/_sim"
                async with http.post(f"{base}/chats", json={"first_id": 1000, "count": 1_000_000}):
                    pass
                async with http.post(f"{base}/block", json={"ids": [1005]}):
                    pass
                for chat_id in range(1000, 1010):
                    with contextlib.suppress(TelegramForbiddenError):
                        await bot.send_message(chat_id, f"hi {chat_id}")
                with pytest.raises(TelegramBadRequest, match="chat not found"):
                    await bot.send_message(999, "nope")
                async with http.get(f"{base}/stats") as resp:
                    stats = await resp.json()
                assert stats["sent"] == 9
                assert stats["errors_403"] == 1
                assert stats["errors_400"] == 1
                assert stats["per_method"]["sendmessage"] == 11
                assert stats["registered_chats"] == 1_000_000
                assert stats["max_sent_per_second"] >= 1
                assert sim.chat_messages(1000) == []  # nothing stored without history
                async with http.post(f"{base}/limits", json={"per_chat_rate": 1}):
                    pass
                await bot.send_message(2000, "a")
                with pytest.raises(TelegramRetryAfter):
                    await bot.send_message(2000, "b")
                async with http.post(f"{base}/updates", json={"first_id": 5, "count": 3}):
                    pass
                assert len(await bot.get_updates()) == 3
                async with http.post(f"{base}/reset"):
                    pass
                async with http.get(f"{base}/stats") as resp:
                    stats = await resp.json()
                assert stats["sent"] == 0 and stats["registered_chats"] == 0
        finally:
            await bot.session.close()


async def test_standalone_process_serves_control_api(unused_tcp_port: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.simulator",
        "--port",
        str(unused_tcp_port),
        "--limits",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{unused_tcp_port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"{url}/_sim/stats") as resp:
                        stats = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("standalone simulator did not start")
            assert stats["limits"] == {"global_rate": 30, "per_chat_rate": 1.0}
            async with http.post(f"{url}/_sim/chats", json={"first_id": 1, "count": 10}) as resp:
                assert (await resp.json())["registered"] == 10
            form = {"chat_id": "3", "text": "hello"}
            async with http.post(f"{url}/bot{TOKEN}/sendMessage", data=form) as resp:
                assert resp.status == 200
            async with http.post(f"{url}/bot{TOKEN}/sendMessage", data=form) as resp:
                assert resp.status == 429
                body = await resp.json()
                assert body["parameters"]["retry_after"] >= 1
            async with http.get(f"{url}/_sim/stats") as resp:
                stats = await resp.json()
            assert (stats["sent"], stats["errors_429"]) == (1, 1)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 5)
