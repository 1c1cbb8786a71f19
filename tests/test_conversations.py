"""Every message counts: whatever a shopper writes reaches the shop as a conversation, staff take
it, answer with text, media or a saved reply, close and reopen it; erased members' conversations
stay without personal data and cannot be answered. Driven through the simulator, zh and en."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from care.console.conversation_stats import open_and_waiting
from care.conversations.saved_replies import add_saved_reply
from care.core.audit import recent_audit
from care.core.clock import FrozenClock
from care.core.i18n import translator
from care.members.privacy import delete_member_data
from storage.enums import MemberStatus, MessageKind, StaffRole, TicketKind, TicketStatus
from storage.models import Member, OutboxMessage, SavedReply, Ticket
from tests.conftest import RunningBot, running_bot
from tests.journey_helpers import eventually, register, wait_button
from tests.simulator import BotAPISimulator, SimUser
from tests.simulator.users import TINY_PNG
from tests.staff_helpers import OWNER_ID, make_staff
from tests.test_feedback import deliver, member_user, settled, tickets_of

CASHIER_ID = 800002
ADMIN_ID = 800003
HOURS = "Mon-Sat 9:00-21:00"
STAFF_CHAT = -1009876543210


@pytest.fixture
async def shop(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[RunningBot]:
    async with running_bot(sim, sqlite_url, clock, opening_hours=HOURS) as running:
        async with running.session() as session:
            await make_staff(session, running.config, running.clock, CASHIER_ID, name="Qian")
            await make_staff(
                session, running.config, running.clock, ADMIN_ID, StaffRole.ADMIN, "Zhao"
            )
            await session.commit()
        yield running


async def _outbox(app: RunningBot, chat_id: int) -> list[OutboxMessage]:
    await settled(app)
    async with app.session() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def _open_thread(staff: SimUser, ticket_id: int) -> None:
    await staff.send("/inbox")
    await staff.expect("📥")
    await staff.press_data(f"tk:open:{ticket_id}:0")
    await staff.wait_until(lambda m: m.content.startswith(f"🎫 #{ticket_id}"))


async def test_free_text_album_and_sticker_reach_staff_and_the_answer_comes_back_zh(
    shop: RunningBot,
) -> None:
    app = shop
    shopper = await member_user(app, 5001, "zh")
    zh = translator("zh")

    await shopper.send("你们周日营业吗？")
    ack = await shopper.expect(zh.plain("conversation.ack")[:10])
    assert HOURS in ack.content
    await shopper.send_album(3, caption="这是小票")
    await shopper.send_sticker()
    await shopper.send_voice()
    await shopper.no_message_within(0.5)  # one acknowledgement per conversation, no more

    [ticket] = await tickets_of(app)
    assert (ticket.kind, ticket.status) == (TicketKind.MESSAGE, TicketStatus.OPEN)
    kinds = [(m.media_kind, m.text) for m in ticket.messages]
    assert kinds == [
        (None, "你们周日营业吗？"),
        ("photo", "这是小票"),
        ("photo", None),
        ("photo", None),  # every photo of the album, not only the first
        ("sticker", None),
        ("voice", None),
    ]
    assert all(m.file_id for m in ticket.messages[1:])
    alerts = [row for row in await _outbox(app, OWNER_ID) if row.kind == MessageKind.ALERT]
    # Opened, the album once, the sticker, the voice message.
    assert len(alerts) == 4
    assert "新消息" in alerts[0].text and "你们周日营业吗？" in alerts[0].text

    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="zh")
    await cashier.send("/inbox")
    inbox = await cashier.expect("📥 <b>收件箱</b>".replace("<b>", "").replace("</b>", ""))
    assert f"⏳ #{ticket.id} 留言 · Ann" in inbox.content
    assert "普通会员 · 0 积分" in inbox.content
    await cashier.press_data(f"tk:open:{ticket.id}:0")
    thread = await cashier.wait_until(lambda m: m.content.startswith(f"🎫 #{ticket.id}"))
    assert "[图片] 这是小票" in thread.content and "[贴纸]" in thread.content
    assert "[语音]" in thread.content
    await cashier.press(zh.plain("conversation.inbox.take"))
    taken = await cashier.wait_until(lambda m: "负责人：你" in m.content)
    assert zh.plain("conversation.inbox.take") not in [
        b for row in taken.inline_buttons for b in row
    ]

    # The attachments are shown to staff as themselves.
    await cashier.press(zh.plain("conversation.inbox.attachments", count=5))
    await cashier.wait_until(lambda m: m.payload.get("voice") is not None)
    shown = cashier.messages
    assert sum(1 for m in shown if m.photo == TINY_PNG) == 3
    assert any(m.payload.get("sticker") for m in shown)

    # A text answer, then a photo and a sticker as answers.
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("请输入对")
    await cashier.send("周日 10 点到 18 点营业。")
    await cashier.expect("正在发送给 Ann")
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("请输入对")
    await cashier.send_photo(caption="营业时间表")
    await cashier.expect("正在发送给 Ann")
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("请输入对")
    await cashier.send_sticker()
    await cashier.expect("正在发送给 Ann")
    assert await deliver(app) >= 3
    text_answer = await shopper.expect("周日 10 点到 18 点营业。")
    assert "Test Shop" in text_answer.content and text_answer.inline_buttons == []
    photo_answer = await shopper.wait_until(lambda m: m.photo is not None)
    assert "营业时间表" in photo_answer.content
    await shopper.wait_until(lambda m: m.payload.get("sticker") is not None)

    # The shopper simply writes back: same conversation, waiting for the shop again, no ack.
    await shopper.send("好的，谢谢！")
    await shopper.no_message_within(0.3)
    [ticket] = await tickets_of(app)
    assert ticket.status == TicketStatus.OPEN and ticket.assigned_to == CASHIER_ID
    assert ticket.messages[-1].text == "好的，谢谢！"
    assert [m.author for m in ticket.messages[-4:]] == ["staff", "staff", "staff", "member"]


async def test_a_stranger_writes_first_and_the_conversation_is_theirs_when_they_join_en(
    shop: RunningBot,
) -> None:
    app = shop
    en = translator("en")
    guest = app.user(5002, first_name="Grace", language_code="en")
    await guest.send("Hi, are you open on Sunday?")
    ack = await guest.expect(en.plain("conversation.ack")[:20])
    assert f"We answer during our opening hours: {HOURS}." in ack.content

    await guest.send("/whatever")  # unknown commands still get the help hint
    await guest.expect("Send /help to see what I can do")
    await guest.send_dice()
    await guest.expect("I cannot pass this kind of message on")
    await guest.send("y" * 5000)
    await guest.expect("too long (5000 characters)")

    [ticket] = await tickets_of(app)
    assert [m.text for m in ticket.messages] == ["Hi, are you open on Sunday?"]
    await register(guest, "en")
    await settled(app)
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == 5002))
        assert member is not None and member.status == MemberStatus.ACTIVE
        assert ticket.member_id == member.id

    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await _open_thread(cashier, ticket.id)
    await cashier.press("✍️ Reply")
    await cashier.expect("Write your answer")
    await cashier.send("Yes, 10:00-18:00.")
    await cashier.expect("on its way to Grace")
    # A file and a voice message go back as what they are.
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("Write your answer")
    await cashier.send_document("hours.pdf", b"%PDF-1.4 opening hours", "application/pdf")
    await cashier.expect("on its way to Grace")
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("Write your answer")
    await cashier.send_voice()
    await cashier.expect("on its way to Grace")
    await deliver(app)
    await guest.expect("Yes, 10:00-18:00.")
    document = await guest.wait_until(lambda m: m.document is not None)
    assert document.document == ("hours.pdf", b"%PDF-1.4 opening hours")
    await guest.wait_until(lambda m: m.payload.get("voice") is not None)
    rows = [row for row in await _outbox(app, 5002) if row.kind == MessageKind.SERVICE]
    assert [row.media_kind for row in rows] == [None, "document", "voice"]


async def test_a_menu_press_mid_prompt_loses_nothing_and_leaves_no_live_prompt(
    shop: RunningBot,
) -> None:
    app = shop
    for user_id, locale in ((5003, "zh"), (5004, "en")):
        t = translator(locale)
        shopper = await member_user(app, user_id, locale)
        await shopper.send("/feedback")
        await shopper.expect(t.plain("feedback.choose_kind")[:6])
        await shopper.press(t.plain("feedback.kind.complaint"))
        prompt = await shopper.expect(t.plain("feedback.ask_text")[:8])
        await shopper.send(t.plain("menu.points"))  # the menu button does what it says
        await shopper.expect(t.plain("points.no_history")[:8])
        await settled(app)
        assert prompt.inline_buttons == []  # the prompt's Cancel is gone
        await shopper.send("牛奶过期了" if locale == "zh" else "The milk was out of date")
        await shopper.expect(t.plain("conversation.ack")[:10])  # kept, not "unknown command"
        # A stale Cancel pressed anyway (an old client) cancels nothing.
        await shopper.press_data("fb:stop:0", prompt)
        await shopper.expect(t.plain("conversation.flow_over"))

    tickets = await tickets_of(app)
    assert [(x.kind, x.messages[0].text) for x in tickets] == [
        ("message", "牛奶过期了"),
        ("message", "The milk was out of date"),
    ]


async def test_filing_a_ticket_takes_the_cancel_off_its_prompt(shop: RunningBot) -> None:
    shopper = await member_user(shop, 5005, "en")
    t = translator("en")
    await shopper.send("/feedback")
    await shopper.expect("What would you like to tell us?")
    await shopper.press(t.plain("feedback.kind.question"))
    prompt = await shopper.expect("Please write it in one message")
    await shopper.send_album(2, caption="Is this in stock?")
    await shopper.expect("as ticket #")
    await settled(shop)
    assert prompt.inline_buttons == []
    [ticket] = await tickets_of(shop)
    # The album's second photo joined the ticket it opened.
    assert ticket.kind == "question" and [m.media_kind for m in ticket.messages] == [
        "photo",
        "photo",
    ]


async def test_saved_replies_managed_by_admins_used_by_staff(shop: RunningBot) -> None:
    app = shop
    admin = app.user(ADMIN_ID, first_name="Zhao", language_code="en")
    await admin.send("/replies")
    await admin.expect("none yet")
    await admin.send("/replies add Hours")
    await admin.expect("/replies add Title | the text")
    await admin.send("/replies add Hours | We are open 9:00-21:00 every day.")
    await admin.expect("Saved reply “Hours” added")
    await admin.send("/replies add hours | again")
    await admin.expect("exists already")
    await admin.send("/replies add Thanks | Thank you for writing to us!")
    listing_cmd = "/replies"
    await admin.send(listing_cmd)
    listing = await admin.expect("Saved replies</b> (2)".replace("</b>", ""))
    assert [row[0] for row in listing.inline_buttons] == ["🗑 Hours", "🗑 Thanks"]
    await admin.press("🗑 Thanks")
    await admin.wait_until(lambda m: "(1)" in m.content and "Thanks" not in m.content)

    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await cashier.send("/replies add Nope | cashiers cannot")
    await cashier.next_message()  # refused one way or another
    async with app.session() as session:
        assert len(list(await session.scalars(select(SavedReply)))) == 1

    shopper = await member_user(app, 5006, "en")
    await shopper.send("When are you open?")
    await shopper.expect("Thank you")
    [ticket] = await tickets_of(app)
    await _open_thread(cashier, ticket.id)
    await cashier.press("📋 Saved replies")
    await cashier.wait_until(lambda m: "Pick a saved reply" in m.content)
    await cashier.press("Hours")
    preview = await cashier.wait_until(lambda m: "This goes to" in m.content)
    assert "We are open 9:00-21:00 every day." in preview.content
    await cashier.press("📤 Send it")
    await cashier.wait_until(lambda m: "🧑‍💼" in m.content and "We are open" in m.content)
    await deliver(app)
    await shopper.expect("We are open 9:00-21:00 every day.")
    async with app.session() as session:
        actions = [e.action for e in await recent_audit(session)]
    assert actions[:1] == ["ticket.reply"] and "saved_reply.add" in actions


async def test_close_and_reopen_a_conversation(shop: RunningBot) -> None:
    app = shop
    shopper = await member_user(app, 5007, "en")
    await shopper.send("Is the bakery open?")
    await shopper.expect("Thank you")
    [ticket] = await tickets_of(app)
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await _open_thread(cashier, ticket.id)
    await cashier.press("✅ Close")
    await cashier.wait_until(lambda m: "· closed ·" in m.content)
    await cashier.press("↩️ Reopen")
    reopened = await cashier.wait_until(lambda m: "· answered ·" in m.content)
    assert ["✍️ Reply", "📋 Saved replies"] in reopened.inline_buttons
    await cashier.press("✍️ Reply")
    await cashier.send("Sorry, one more thing: yes, until 20:00.")
    await cashier.expect("on its way")
    [ticket] = await tickets_of(app)
    assert ticket.status == TicketStatus.ANSWERED and ticket.closed_at is None

    # After closing again, the shopper writing opens a new conversation (and a new ack).
    await _open_thread(cashier, ticket.id)
    await cashier.press("✅ Close")
    await cashier.wait_until(lambda m: "· closed ·" in m.content)
    await shopper.send("Thanks!")
    await shopper.wait_until(lambda m: "Thank you — your message has reached" in m.content)
    assert len(await tickets_of(app)) == 2


async def test_an_erased_member_cannot_be_answered_and_keeps_no_personal_data(
    shop: RunningBot,
) -> None:
    app = shop
    shopper = await member_user(app, 5008, "en")
    await shopper.send("My phone is 13800000000, call me")
    await shopper.send_photo(caption="receipt")
    await shopper.expect("Thank you")
    [ticket] = await tickets_of(app)
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await _open_thread(cashier, ticket.id)  # staff had it open before the erasure
    async with app.session() as session:
        member = await session.get(Member, ticket.member_id)
        assert member is not None
        await delete_member_data(session, app.clock, member)
        await session.commit()

    stale = await cashier.press_data(f"tk:reply:{ticket.id}:0")  # a stale Reply button
    refusal = await cashier.wait_callback_answer(stale)
    assert "deleted their data" in (refusal.text or ""), refusal
    await _open_thread(cashier, ticket.id)
    thread = cashier.messages[-1]
    assert "This member erased their data" in thread.content
    assert "✍️ Reply" not in [b for row in thread.inline_buttons for b in row]
    assert "📋 Saved replies" not in [b for row in thread.inline_buttons for b in row]
    await cashier.send("/inbox")
    inbox = await cashier.expect("📥")
    assert "member erased their data" in inbox.content

    [kept] = await tickets_of(app)
    assert kept.id == ticket.id
    assert all(m.text is None and m.file_id is None for m in kept.messages)
    assert await _outbox(app, 5008) == []
    async with app.session() as session:
        stored = await session.get(Ticket, ticket.id)
        assert stored is not None and stored.status == TicketStatus.OPEN


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_an_erased_member_reads_as_erased_not_as_a_question_mark(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    shopper = await member_user(app, 5010, locale)
    await shopper.send("Are you open on Sunday?")
    await shopper.expect(t.plain("conversation.ack")[:6])
    [ticket] = await tickets_of(app)
    async with app.session() as session:
        member = await session.get(Member, ticket.member_id)
        assert member is not None
        await delete_member_data(session, app.clock, member)
        await session.commit()

    cashier = app.user(CASHIER_ID, first_name="Qian", language_code=locale)
    await cashier.send("/inbox")
    inbox = await cashier.expect("📥")
    erased = t.plain("staff_language.erased_member")
    [label] = [row[0] for row in inbox.inline_buttons if row[0].startswith(f"#{ticket.id}")]
    assert erased in label and "?" not in label
    assert erased in inbox.content and " ? " not in inbox.content
    # Nobody can answer it: on record, but not waiting for the shop (in the inbox or /stats).
    waiting = "0 waiting for us" if locale == "en" else "0 条待我们回复"
    assert waiting in inbox.content.splitlines()[0], inbox.content
    assert f"🚫 #{ticket.id}" in inbox.content and f"⏳ #{ticket.id}" not in inbox.content
    async with app.session() as session:
        assert await open_and_waiting(session) == (1, 0)
    await cashier.press(label, inbox)
    thread = await cashier.wait_until(lambda m: m.content.startswith(f"🎫 #{ticket.id}"))
    assert erased in thread.content.splitlines()[0]


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_alerts_read_cleanly_and_the_kept_note_is_polite(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    shopper = await member_user(app, 5011, locale)
    await shopper.send("Hello")
    await shopper.expect(t.plain("conversation.ack")[:6])
    await shopper.send_sticker()
    await shopper.send_photo(caption="receipt")
    await settled(app)
    alerts = [row for row in await _outbox(app, OWNER_ID) if row.kind == MessageKind.ALERT]
    # The words and the media's icon, with no stray space before or after either.
    assert [row.text.splitlines()[1] for row in alerts] == ["Hello", "🖼", "receipt 📷"]
    # The shopper is addressed as everywhere else in the chat (您, not 你).
    assert "你" not in t.plain("conversation.kept")
    await shopper.send("/settings")
    await wait_button(shopper, t.plain("settings.btn_birthday"))
    await shopper.press(t.plain("settings.btn_birthday"))
    await shopper.send_sticker()
    assert (await shopper.expect(t.plain("conversation.kept"))).content.startswith("✉️")


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_a_photo_answered_without_a_caption_reads_cleanly(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    shopper = await member_user(app, 5012, locale)
    await shopper.send("Do you have oat milk?")
    await shopper.expect(t.plain("conversation.ack")[:6])
    [ticket] = await tickets_of(app)
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code=locale)
    await _open_thread(cashier, ticket.id)
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.wait_until(lambda m: f"#{ticket.id}" in m.content)
    await cashier.send_photo()
    await cashier.wait_until(lambda m: "✅" in m.content)
    await settled(app)
    await deliver(app)
    photo = await shopper.wait_until(lambda m: m.content.startswith("💬"))
    shop_line = t.plain("conversation.reply.to_member", shop="Test Shop", text="").splitlines()[0]
    # The shop's name, with no blank lines after it.
    assert photo.content == shop_line.replace("<b>", "").replace("</b>", "")


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_staff_answer_with_an_album_sends_every_photo(shop: RunningBot, locale: str) -> None:
    app, t = shop, translator(locale)
    shopper = await member_user(app, 5013, locale)
    await shopper.send("Which cakes do you have today?")
    await shopper.expect(t.plain("conversation.ack")[:6])
    [ticket] = await tickets_of(app)
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code=locale)
    await _open_thread(cashier, ticket.id)
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.wait_until(lambda m: f"#{ticket.id}" in m.content and "/cancel" in m.content)
    await cashier.send_album(3, caption="today's cakes")
    await cashier.send("/inbox")  # after the album: the inbox, with no "not sent" note
    await cashier.expect("📥")
    await settled(app)

    # One "on its way" for the album, no "unknown command" for its other photos.
    sent_note = t.plain("inbox.reply_sent", number=ticket.id, name="Ann")
    texts = [m.content for m in cashier.messages]
    assert texts.count(sent_note) == 1
    assert not any(t.plain("common.unknown_command")[:10] in text for text in texts)
    assert not any(t.plain("inbox.reply_left", number=ticket.id)[:10] in text for text in texts)
    [answered] = await tickets_of(app)
    staff_photos = [m for m in answered.messages if m.author == "staff"]
    assert [(m.media_kind, m.text) for m in staff_photos] == [
        ("photo", "today's cakes"), ("photo", None), ("photo", None),
    ]  # fmt: skip
    await deliver(app)
    await shopper.wait_until(
        lambda m: len([x for x in shopper.messages if "💬" in x.content]) >= 1
    )
    assert len(await _outbox(app, 5013)) >= 3

    # The next plain message is not taken as part of that answer.
    await cashier.send("thanks")
    await cashier.expect(t.plain("common.unknown_command")[:10])
    [after] = await tickets_of(app)
    assert len([m for m in after.messages if m.author == "staff"]) == 3


async def test_forum_mode_carries_media_both_ways(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> None:
    group = sim.group(STAFF_CHAT, "Staff", is_forum=True)
    settings = {"staff_chat_id": str(STAFF_CHAT), "default_locale": "en"}
    async with running_bot(sim, sqlite_url, clock, **settings) as app:
        async with app.session() as session:
            await make_staff(session, app.config, app.clock, CASHIER_ID, name="Qian")
            await session.commit()
        shopper = await member_user(app, 5009, "en")
        await shopper.send("The fridge is leaking")
        opened = await group.wait_until(lambda m: "The fridge is leaking" in m.content)
        [topic] = group.topics.values()
        assert opened.message_thread_id == topic.message_thread_id
        await shopper.send_album(2)
        await shopper.send_sticker()
        await group.wait_until(lambda m: m.payload.get("sticker") is not None)
        photos = [m for m in group.topic_messages(topic.message_thread_id) if m.photo]
        assert len(photos) == 2

        cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
        await cashier.send_to_group(group, "/take", topic.message_thread_id)
        await group.wait_until(lambda m: "is taken by Qian" in m.content)
        await cashier.send_photo_to_group(group, "This one?", topic.message_thread_id)
        await group.wait_until(lambda m: "sent to Ann" in m.content)
        await deliver(app)
        answer = await shopper.wait_until(lambda m: m.photo is not None)
        assert "This one?" in answer.content
        [ticket] = await tickets_of(app)
        assert ticket.assigned_to == CASHIER_ID
        assert ticket.messages[-1].media_kind == "photo"

        # A saved reply from the topic, then closing and reopening there.
        async with app.session() as session:
            await add_saved_reply(
                session, app.clock, raw="Sorry | We are sorry about that.",
                staff_telegram_id=OWNER_ID, staff_role="owner",
            )  # fmt: skip
            await session.commit()
        await cashier.send_to_group(group, "/saved", topic.message_thread_id)
        pick = await group.wait_until(lambda m: "Pick a saved reply" in m.content)
        [[button]] = pick.reply_markup["inline_keyboard"]  # type: ignore[index]
        assert button["text"] == "Sorry"
        await cashier.press_data(button["callback_data"], pick)

        async def two_sent() -> bool:
            return sum("sent to Ann" in m.content for m in group.messages) == 2

        await eventually(two_sent, "the saved reply went out")
        await deliver(app)
        await shopper.expect("We are sorry about that.")
        await cashier.send_to_group(group, "/close", topic.message_thread_id)
        await group.wait_until(lambda m: "closed by Qian" in m.content)
        await settled(app)  # the topic is closed right after the message
        assert topic.closed
        await cashier.send_to_group(group, "/reopen", topic.message_thread_id)
        await group.wait_until(lambda m: "is open again" in m.content)
        await settled(app)
        assert not topic.closed
        [ticket] = await tickets_of(app)
        assert ticket.status == TicketStatus.ANSWERED and ticket.closed_at is None

        # Once the member erased their data, the topic says so before anyone types, and closes.
        async with app.session() as session:
            member = await session.get(Member, ticket.member_id)
            assert member is not None
            await delete_member_data(session, app.clock, member)
            await session.commit()
        notice = await group.wait_until(lambda m: "This member erased their data" in m.content)
        assert notice.message_thread_id == topic.message_thread_id
        await settled(app)

        async def topic_closed() -> bool:
            return topic.closed

        await eventually(topic_closed, "the erased member's topic is closed")
        notices = [m for m in group.messages if "erased their data" in m.content]
        await asyncio.sleep(1.5)  # a relay pass later: told once only
        assert [m for m in group.messages if "erased their data" in m.content] == notices
        # Whoever types there anyway is refused, clearly.
        await cashier.send_to_group(group, "Are you still there?", topic.message_thread_id)
        await group.wait_until(lambda m: "deleted their data" in m.content)
        [kept] = await tickets_of(app)
        assert len(kept.messages) == len(ticket.messages)
        assert await _outbox(app, 5009) == []


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_leaving_the_timezone_step_for_the_menu_leaves_no_stale_keyboard(
    shop: RunningBot, locale: str
) -> None:
    t = translator(locale)
    shopper = await member_user(shop, 5010, locale)
    await shopper.send("/settings")
    await wait_button(shopper, t.plain("settings.btn_timezone"))
    await shopper.press(t.plain("settings.btn_timezone"))
    cities = await shopper.wait_until(
        lambda m: t.plain("tz.by_offset") in [b for row in m.inline_buttons for b in row]
    )
    await shopper.send("/card")  # a command instead of a city: it runs, the step ends
    await shopper.expect(t.plain("tz.unchanged"))
    await shopper.wait_until(lambda m: m.photo is not None)  # the member card
    await settled(shop)
    assert cities.inline_buttons == []  # the city buttons are gone
    # The main menu is back in place of the location keyboard.
    keyboard = shopper._chat.reply_keyboard
    assert keyboard is not None
    labels = [b for row in keyboard.reply_buttons for b in row]
    assert t.plain("menu.points") in labels and t.plain("tz.location_button") not in labels
