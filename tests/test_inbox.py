"""/inbox: staff read open conversations oldest first, answer in the chat (the answer reaches the
shopper through the outbox), close it, and follow up low scores."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from care.console.audit_log import AuditFilter, audit_page
from care.conversations.tickets import Media, add_member_message, open_ticket
from care.core.audit import recent_audit
from care.core.clock import FrozenClock
from care.core.i18n import translator
from care.staff.profiles import SeenAs, set_staff_locale
from storage.enums import MediaKind, MessageKind, StaffRole, TicketKind, TicketStatus
from storage.models import OutboxMessage, SurveyInvitation, SurveyResponse, Ticket
from tests.conftest import RunningBot, running_bot
from tests.simulator import BotAPISimulator
from tests.simulator.users import TINY_PNG
from tests.staff_helpers import make_member, make_staff

CASHIER_ID = 800002
SHOPPER_ID = 2001
STAFF_CHAT = -1009876543210


async def _tickets(app: RunningBot, count: int, first: int = 0) -> list[int]:
    """``count`` open tickets from different members, one hour apart, oldest first."""
    ids = []
    async with app.session() as session:
        if first == 0:
            await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER, "Qian")
        for number in range(first, first + count):
            member = await make_member(
                session, app.config, app.clock, SHOPPER_ID + number, f"Shopper {number}",
                language_code="en",
            )  # fmt: skip
            ticket = await open_ticket(
                session, app.clock, member=member, kind=TicketKind.COMPLAINT,
                text=f"Problem number {number}",
            )  # fmt: skip
            ids.append(ticket.id)
            app.clock.advance(hours=1)
        await session.commit()
    return ids


async def _ticket(app: RunningBot, ticket_id: int) -> Ticket:
    await app.settle()
    async with app.session() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket is not None
        return ticket


async def _outbox(app: RunningBot, chat_id: int) -> list[OutboxMessage]:
    await app.settle()
    async with app.session() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def test_the_inbox_pages_oldest_first(app: RunningBot) -> None:
    ids = await _tickets(app, 7)
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/inbox")
    inbox = await cashier.next_message()
    title, legend, first_item, first_context = inbox.text.split("\n")[:4]
    assert title == "📥 Inbox — 7 waiting for us · 7 open · page 1/2"
    assert legend == "⏳ waiting for us · 💬 waiting for the shopper"
    assert first_item == f"⏳ #{ids[0]} complaint · Shopper 0 · 7 h"
    assert first_context.strip() == "Member · 0 points · 1 open complaint"
    buttons = [row[0] for row in inbox.inline_buttons]
    assert buttons[:5] == [
        f"#{ids[n]} · complaint · Shopper {n} · {7 - n} h" for n in range(5)
    ]  # the clock moved 7 hours past the first
    assert inbox.inline_buttons[5] == ["Older ▶"]
    await cashier.press("Older ▶")
    page_two = await cashier.wait_until(lambda m: "page 2/2" in m.text)
    assert page_two.message_id == inbox.message_id  # edited in place
    assert [row[0] for row in page_two.inline_buttons[:2]] == [
        f"#{ids[5]} · complaint · Shopper 5 · 2 h",
        f"#{ids[6]} · complaint · Shopper 6 · 1 h",
    ]
    assert page_two.inline_buttons[2] == ["◀ Newer"]


async def test_open_reply_and_close_a_ticket(app: RunningBot) -> None:
    [ticket_id] = await _tickets(app, 1)
    # Staff are shown by the name Telegram shows for them, refreshed when they write.
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await cashier.send("/inbox")
    await cashier.next_message()
    await cashier.press(f"#{ticket_id} · complaint · Shopper 0 · 1 h")
    thread = await cashier.wait_until(lambda m: m.text.startswith("🎫"))
    assert f"#{ticket_id} complaint · open · from Shopper 0" in thread.text
    assert "👤 03-02 11:00: Problem number 0" in thread.text
    assert thread.inline_buttons == [
        ["✍️ Reply", "📋 Saved replies"],
        ["🙋 Take it", "✅ Close"],
        ["◀ Back to the inbox"],
    ]

    await cashier.press("✍️ Reply")
    prompt = await cashier.wait_until(lambda m: "Write your answer" in m.text)
    assert "Your next message goes to Shopper 0" in prompt.text
    await cashier.send_dice()  # a sticker could be sent as an answer; a dice cannot
    await cashier.expect("cannot be sent as an answer")
    await cashier.send("x" * 3001)
    await cashier.expect("That is too long (3001 characters)")
    await cashier.send("So sorry! <b>Come by</b> for a fresh bottle.")
    sent = await cashier.expect("on its way")
    assert sent.text == f"✅ Your answer to #{ticket_id} is on its way to Shopper 0."
    [answer] = await _outbox(app, SHOPPER_ID)
    assert answer.kind == MessageKind.SERVICE
    assert "&lt;b&gt;Come by&lt;/b&gt;" in answer.text  # staff text is escaped
    assert (await _ticket(app, ticket_id)).status == TicketStatus.ANSWERED

    # The next message is an ordinary one again: the reply state is over.
    await cashier.send("/inbox")
    inbox = await cashier.expect("📥 Inbox")
    assert f"#{ticket_id} · complaint · Shopper 0 · 1 h · answered" in inbox.inline_buttons[0][0]
    assert "💬" in inbox.text and "🙋 yours" in inbox.text  # answering assigned it
    await cashier.press(inbox.inline_buttons[0][0])
    await cashier.wait_until(lambda m: "🧑‍💼 03-02 12:00 (Qian): So sorry!" in m.text)
    await cashier.press("✅ Close")
    closed = await cashier.wait_until(lambda m: "· closed ·" in m.text)
    assert closed.inline_buttons == [["↩️ Reopen"], ["◀ Back to the inbox"]]
    assert any("is asked to rate" in (a.text or "") for a in cashier.callback_answers)
    ticket = await _ticket(app, ticket_id)
    assert (ticket.status, ticket.closed_by) == (TicketStatus.CLOSED, CASHIER_ID)
    rating = (await _outbox(app, SHOPPER_ID))[-1]
    assert rating.idempotency_key == f"ticket:{ticket_id}:rating"

    async with app.session() as session:
        actions = [(e.action, e.target) for e in await recent_audit(session)]
    assert actions[:2] == [
        ("ticket.close", f"ticket:{ticket_id}"),
        ("ticket.reply", f"ticket:{ticket_id}"),
    ]

    await cashier.press("◀ Back to the inbox")
    empty = await cashier.wait_until(lambda m: "No open conversations" in m.text)
    assert empty.text.startswith("📥")


async def test_cancel_a_reply_and_a_ticket_closed_meanwhile(app: RunningBot) -> None:
    [ticket_id] = await _tickets(app, 1)
    cashier = app.user(CASHIER_ID, language_code="zh")
    await cashier.send("/inbox")
    await cashier.next_message()
    await cashier.press_data(f"tk:reply:{ticket_id}:0")
    await cashier.wait_until(lambda m: "请输入对" in m.text)
    await cashier.send("/cancel")
    assert (await cashier.expect("已取消")).text == "已取消，未发送任何内容。"

    await cashier.press_data(f"tk:reply:{ticket_id}:0")
    await cashier.wait_until(lambda m: "请输入对" in m.text)
    owner = app.user(900001, language_code="en")
    await owner.send("/inbox")
    await owner.next_message()
    await owner.press_data(f"tk:close:{ticket_id}:0")
    await owner.wait_until(lambda m: "· closed ·" in m.text)
    await app.settle()
    await cashier.send("您好")
    assert (await cashier.expect("已经关闭")).text == f"#{ticket_id} 已经关闭。"
    assert await _outbox(app, SHOPPER_ID) != []  # only the rating invitation
    assert all("您好" not in row.text for row in await _outbox(app, SHOPPER_ID))


async def test_low_scores_wait_for_a_follow_up(app: RunningBot) -> None:
    clock = app.clock
    async with app.session() as session:
        await make_staff(session, app.config, clock, CASHIER_ID, StaffRole.CASHIER)
        member = await make_member(session, app.config, clock, SHOPPER_ID, "Li Lei")
        member.member_code = "K7QX2M9P"
        invitation = SurveyInvitation(
            member_id=member.id, kind="csat", nonce="n", created_at=clock.now(),
            expires_at=clock.now() + timedelta(days=7), answered_at=clock.now(),
        )  # fmt: skip
        session.add(invitation)
        await session.flush()
        response = SurveyResponse(
            invitation_id=invitation.id, member_id=member.id, kind="csat", score=1,
            comment="=cmd|' /C calc'!A0", created_at=clock.now(), needs_followup=True,
        )  # fmt: skip
        session.add(response)
        await session.commit()
        response_id = response.id
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/inbox")
    inbox = await cashier.next_message()
    assert inbox.text == "📥 No open conversations: nobody is waiting for an answer. Well done!"
    assert inbox.inline_buttons[0] == ["⚠️ Low scores to follow up (1)"]
    await cashier.press("⚠️ Low scores to follow up (1)")
    listing = await cashier.wait_until(lambda m: "Low scores to follow up" in m.text)
    assert "CSAT 1/5 · Li Lei (K7QX2M9P)" in listing.text  # the score says its scale
    await cashier.press("✔ Followed up: Li Lei")
    done = await cashier.wait_until(lambda m: "No low scores waiting" in m.text)
    assert done.inline_buttons == [["◀ Back to the inbox"]]
    await app.settle()
    async with app.session() as session:
        saved = await session.get(SurveyResponse, response_id)
        assert saved is not None
        assert (saved.followed_up_by, saved.followed_up_at) == (CASHIER_ID, clock.now())
        [entry] = await recent_audit(session, action="survey.followed_up")
        assert entry.target == f"response:{response_id}"
    # Pressing the stale button again changes nothing.
    await cashier.press_data(f"fd:{response_id}", done)
    await app.settle()
    async with app.session() as session:
        entries = await recent_audit(session, action="survey.followed_up")
        saved = await session.get(SurveyResponse, response_id)
    assert len(entries) == 1
    assert saved is not None and saved.followed_up_at == clock.now()


async def test_forum_mode_gives_each_ticket_a_topic_where_staff_answer(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> None:
    group = sim.group(STAFF_CHAT, "Staff", is_forum=True)
    settings = {"staff_chat_id": str(STAFF_CHAT), "default_locale": "en"}
    async with running_bot(sim, sqlite_url, clock, **settings) as app:
        [ticket_id] = await _tickets(app, 1)
        opened = await group.wait_until(lambda m: "Problem number 0" in m.content)
        [topic] = group.topics.values()
        assert topic.name == f"#{ticket_id} complaint · Shopper 0"
        assert opened.message_thread_id == topic.message_thread_id
        assert "Answer by writing in this topic" in opened.content

        # The shopper writes again: it follows into the same topic, once.
        async with app.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            assert ticket is not None
            await add_member_message(session, app.clock, ticket=ticket, text="Still waiting")
            await session.commit()
        await group.wait_until(lambda m: m.content == "👤 Shopper 0: Still waiting")

        cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
        await cashier.send_to_group(group, "We will call you", topic.message_thread_id)
        sent = await group.wait_until(lambda m: m.content.startswith("✅ sent to"))
        assert sent.content == "✅ sent to Shopper 0"
        [answer] = await _outbox(app, SHOPPER_ID)
        assert "We will call you" in answer.text

        # Someone in the group who is not staff is not relayed to the shopper.
        stranger = app.user(4242, first_name="Guest", language_code="en")
        await stranger.send_to_group(group, "I am not staff", topic.message_thread_id)
        await group.no_message_within(0.3)
        assert len(await _outbox(app, SHOPPER_ID)) == 1

        await cashier.send_to_group(group, "/close", topic.message_thread_id)
        await group.wait_until(lambda m: f"#{ticket_id} closed by Qian" in m.content)
        assert (await _ticket(app, ticket_id)).status == TicketStatus.CLOSED  # settles too
        assert topic.closed
        topic_posts = [m.content for m in group.topic_messages(topic.message_thread_id)]
        assert topic_posts.count("👤 Shopper 0: Still waiting") == 1
        # The audit log says the answer and the closing were done in the staff group.
        async with app.session() as session:
            entries = await recent_audit(session, actor_telegram_id=CASHIER_ID)
            assert [(e.action, (e.details or {}).get("via")) for e in entries] == [
                ("ticket.close", "forum"),
                ("ticket.reply", "forum"),
            ]
            log = await audit_page(
                session, app.config, translator("en"), page=0,
                filter=AuditFilter(actor=CASHIER_ID),
            )  # fmt: skip
        closing = log.lines[0]
        assert f"· Cashier Qian closed conversation #{ticket_id} with Shopper 0 (" in closing
        assert closing.endswith(") (in the staff group)")

        # Closed from the inbox instead: the topic hears of it and closes too.
        [second] = await _tickets(app, 1, first=1)
        await group.wait_until(lambda m: f"🎫 #{second}" in m.content)
        [new_topic] = [t for t in group.topics.values() if not t.closed]
        await cashier.send("/inbox")
        await cashier.expect("📥 Inbox")
        await cashier.press_data(f"tk:close:{second}:0")
        await group.wait_until(lambda m: f"#{second} closed by Qian" in m.content)
        await app.settle()  # the topic is closed right after the message
        assert new_topic.closed


async def test_photos_in_a_ticket_can_be_seen(app: RunningBot) -> None:
    sizes = app.sim.register_photo(TINY_PNG)
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        member = await make_member(session, app.config, app.clock, SHOPPER_ID, "Li Lei")
        ticket = await open_ticket(
            session, app.clock, member=member, kind=TicketKind.COMPLAINT,
            text="Look at this", media=Media(MediaKind.PHOTO, sizes[-1]["file_id"]),
        )  # fmt: skip
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/inbox")
    await cashier.next_message()
    await cashier.press_data(f"tk:open:{ticket.id}:0")
    thread = await cashier.wait_until(lambda m: m.text.startswith("🎫"))
    assert "[photo] Look at this" in thread.text
    await cashier.press("📷 Show the photos (1)")
    photo = await cashier.wait_until(lambda m: m.photo is not None)
    assert photo.photo == TINY_PNG
    assert photo.caption == f"#{ticket.id} · 03-02 11:00 Look at this"


async def test_the_inbox_names_who_has_each_conversation_in_both_languages(
    app: RunningBot,
) -> None:
    first, second = await _tickets(app, 2)
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, 800003, StaffRole.ADMIN, "Zhao")
        await session.commit()
    qian = app.user(CASHIER_ID, first_name="Qian", username="qian", language_code="en")
    await qian.send("/inbox")
    await qian.expect("📥 Inbox")
    await qian.press_data(f"tk:take:{first}:0")
    await qian.wait_until(lambda m: "🙋 Assigned to you" in m.text)
    await qian.press_data(f"tk:reply:{first}:0")
    await qian.wait_until(lambda m: "Write your answer" in m.text)
    await qian.send("On it")
    await qian.expect("on its way")

    zhao = app.user(800003, first_name="Zhao", language_code="en")
    await zhao.send("/inbox")
    inbox = await zhao.expect("📥 Inbox")
    assert f"#{first} complaint · Shopper 0 · 2 h · 🙋 Qian (@qian)" in inbox.text
    assert f"#{second} complaint · Shopper 1 · 1 h\n" in inbox.text  # nobody has it yet
    assert "9002" not in inbox.text and str(CASHIER_ID) not in inbox.text
    await zhao.press_data(f"tk:open:{first}:0")
    thread = await zhao.wait_until(lambda m: m.text.startswith("🎫"))
    assert "🙋 Assigned to Qian (@qian)" in thread.text
    assert "(Qian (@qian)): On it" in thread.text

    zh = app.user(800003, first_name="Zhao", language_code="zh")
    async with app.session() as session:
        await set_staff_locale(
            session, app.config, app.clock, SeenAs(800003, "Zhao", None, "zh"),
            StaffRole.ADMIN, "zh",
        )  # fmt: skip
        await session.commit()
    await zh.send("/inbox")
    zh_inbox = await zh.expect("📥 收件箱")
    assert f"#{first} 投诉 · Shopper 0 · 2 小时 · 🙋 Qian（@qian） 负责" in zh_inbox.text
    await zh.press_data(f"tk:open:{first}:0")
    zh_thread = await zh.wait_until(lambda m: m.text.startswith("🎫") and "负责人" in m.text)
    assert "🙋 负责人：Qian（@qian）" in zh_thread.text


async def test_a_command_or_menu_press_mid_reply_leaves_the_reply_unsent(app: RunningBot) -> None:
    """The reply step closes before the command runs: later chatter never reaches the customer."""
    [ticket_id] = await _tickets(app, 1)
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/inbox")
    await cashier.next_message()
    await cashier.press_data(f"tk:reply:{ticket_id}:0")
    await cashier.wait_until(lambda m: f"#{ticket_id}" in m.text)
    await cashier.send("/inbox")  # changed their mind: the inbox again
    left = await cashier.expect("was not sent")
    assert left.text.startswith(f"↩️ Your reply to #{ticket_id} was not sent")
    assert "📥" in (await cashier.wait_until(lambda m: "Inbox" in m.text)).text
    await cashier.send("note to self: call the supplier")
    await app.settle()
    assert all("supplier" not in row.text for row in await _outbox(app, SHOPPER_ID))
    assert (await _ticket(app, ticket_id)).status == TicketStatus.OPEN

    # In Chinese, a press of the shopper menu's button mid-reply: left too, and it does its job.
    zh = app.user(CASHIER_ID + 1, language_code="zh")
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID + 1, StaffRole.CASHIER)
        await session.commit()
    await zh.send("/inbox")
    await zh.next_message()
    await zh.press_data(f"tk:reply:{ticket_id}:0")
    await zh.wait_until(lambda m: "请输入对" in m.text)
    await zh.send(translator("zh").plain("menu.help"))
    assert (await zh.expect("未发送")).text.startswith(f"↩️ 你对 #{ticket_id} 的回复未发送")
    await zh.send("下班了")
    await app.settle()
    assert all("下班了" not in row.text for row in await _outbox(app, SHOPPER_ID))


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_the_console_speaks_of_conversations_not_feedback(
    app: RunningBot, locale: str
) -> None:
    t = translator(locale)
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER, "Qian")
        await session.commit()
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code=locale)
    await cashier.send("/staff")
    help_text = (await cashier.expect("/inbox")).content
    [line] = [row for row in help_text.splitlines() if row.startswith("/inbox")]
    assert ("feedback" not in line) and ("反馈" not in line)
    await cashier.send("/inbox")
    empty = await cashier.expect("📥")
    assert empty.content == t.plain("inbox.empty")
    assert ("feedback" not in empty.content) and ("反馈" not in empty.content)
