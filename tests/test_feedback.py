"""/feedback end to end: the shopper opens a ticket, staff answer, the shopper writes back,
staff close it and the shopper rates how it was handled — pressing the buttons the bot sent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from care.conversations.tickets import MAX_TEXT_CHARS, close_ticket, get_ticket, staff_reply
from care.core.i18n import translator
from care.messaging.delivery import DeliveryWorker
from care.messaging.ratelimit import RateLimiter
from storage.enums import MessageKind, SurveyKind, TicketStatus
from storage.models import OutboxMessage, SurveyResponse, Ticket
from tests.conftest import RunningBot
from tests.simulator import SimUser
from tests.staff_helpers import OWNER_ID, make_member


async def member_user(app: RunningBot, user_id: int, locale: str) -> SimUser:
    async with app.session() as session:
        await make_member(session, app.config, app.clock, user_id, "Ann", language_code=locale)
        await session.commit()
    return app.user(user_id, first_name="Ann", language_code=locale)


async def deliver(app: RunningBot) -> int:
    worker = DeliveryWorker(
        app.bot, app.services.session_factory, app.config, app.clock,
        limiter=RateLimiter(500.0, 0),
    )  # fmt: skip
    return await worker.drain_once()


async def settled(app: RunningBot) -> None:
    """Wait until the bot finished the updates it is handling: their commits are done."""
    assert await app.dp["update_log"].wait_idle(5.0)


async def tickets_of(app: RunningBot) -> list[Ticket]:
    await settled(app)
    async with app.session() as session:
        ids = list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))
        return [ticket for i in ids if (ticket := await get_ticket(session, i)) is not None]


async def alerts_to_owner(app: RunningBot) -> list[OutboxMessage]:
    await settled(app)
    async with app.session() as session:
        return list(
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == MessageKind.ALERT, OutboxMessage.chat_id == OWNER_ID)
                .order_by(OutboxMessage.id)
            )
        )


async def test_complaint_in_english_with_bad_input_first(app: RunningBot) -> None:
    user = await member_user(app, 3001, "en")
    t = translator("en")
    await user.send("/feedback")
    await user.expect("What would you like to tell us?")
    await user.press(t.plain("feedback.kind.complaint"))
    await user.expect("Please write it in one message")

    await user.send_dice()  # a sticker would do since conversations take media; a dice won't
    await user.expect(t.plain("conversation.unsupported")[:40])
    await user.send("x" * (MAX_TEXT_CHARS + 1))
    await user.expect(f"under {MAX_TEXT_CHARS} characters")
    assert await tickets_of(app) == []

    await user.send("The milk was <sour> again")
    reply = await user.expect("as ticket #")
    [ticket] = await tickets_of(app)
    assert f"your complaint as ticket #{ticket.id}" in reply.text
    assert ticket.kind == "complaint" and ticket.status == TicketStatus.OPEN
    assert [m.text for m in ticket.messages] == ["The milk was <sour> again"]
    [alert] = await alerts_to_owner(app)
    assert f"#{ticket.id}" in alert.text and "The milk was &lt;sour&gt; again" in alert.text

    # The flow is over and its Cancel is gone; the next message joins the open ticket, with
    # no second acknowledgement and no "unknown command".
    await app.settle()
    prompt = next(m for m in user.messages if "Please write it in one message" in m.content)
    assert prompt.inline_buttons == []
    await user.send("hello")
    await user.no_message_within(0.3)
    [ticket] = await tickets_of(app)
    assert [m.text for m in ticket.messages] == ["The milk was <sour> again", "hello"]


async def test_suggestion_with_photos_in_chinese_from_the_menu(app: RunningBot) -> None:
    user = await member_user(app, 3002, "zh")
    t = translator("zh")
    await user.send(t.plain("menu.feedback"))
    await user.expect("您想告诉我们什么？")
    await user.press(t.plain("feedback.kind.suggestion"))
    await user.expect("请用一条消息写下来")
    await user.send_photo(caption="货架标签太小了")
    await user.expect("您的建议已登记为工单")

    await user.send("/feedback")  # a ticket is open: add to it, or start a new one
    await user.expect("还在处理中")
    await user.press(t.plain("feedback.start_new"))
    await user.expect("您想告诉我们什么？")
    await user.press(t.plain("feedback.kind.praise"))
    await user.send_photo()  # a photo alone is enough
    await user.expect("您的表扬已登记为工单")

    first, second = await tickets_of(app)
    assert (first.kind, second.kind) == ("suggestion", "praise")
    assert first.messages[0].text == "货架标签太小了" and first.messages[0].file_id
    assert second.messages[0].text is None and second.messages[0].file_id


async def test_cancel_and_leaving_the_flow_open_nothing(app: RunningBot) -> None:
    user = await member_user(app, 3003, "en")
    t = translator("en")
    await user.send("/feedback")
    await user.expect("What would you like to tell us?")
    await user.press(t.plain("feedback.cancel"))
    await user.expect("Cancelled")

    await user.send("/feedback")
    await user.expect("What would you like to tell us?")
    await user.press(t.plain("feedback.kind.question"))
    await user.expect("Please write it in one message")
    await user.send("/points")  # another command ends the flow and runs
    await user.expect("Your points: 0")
    # The prompt is not left listening: its Cancel is gone.
    await app.settle()
    prompt = next(m for m in user.messages if "Please write it in one message" in m.content)
    assert prompt.inline_buttons == []
    # No question ticket came of it; the text typed afterwards is not lost either: it opens
    # a conversation with the shop.
    await user.send("Do you sell bread?")
    await user.expect(t.plain("conversation.ack")[:30])
    [ticket] = await tickets_of(app)
    assert ticket.kind == "message" and [m.text for m in ticket.messages] == ["Do you sell bread?"]


async def test_answer_write_back_close_and_rate(app: RunningBot) -> None:
    user = await member_user(app, 3004, "en")
    t = translator("en")
    await user.send("/feedback")
    await user.expect("What would you like to tell us?")
    await user.press(t.plain("feedback.kind.complaint"))
    await user.expect("Please write it in one message")
    await user.send("The card reader failed")
    await user.expect("as ticket #")
    [ticket] = await tickets_of(app)

    await settled(app)
    async with app.session() as session:
        await staff_reply(
            session, app.clock, app.config, ticket_id=ticket.id, staff_telegram_id=OWNER_ID,
            text="Sorry! Which till was it?",
        )  # fmt: skip
        await session.commit()
    assert await deliver(app) >= 1
    answer = await user.expect("Sorry! Which till was it?")
    assert f"Our answer to your ticket #{ticket.id}" in answer.text
    assert await deliver(app) == 0  # nothing is sent twice

    await user.press(t.plain("feedback.reply.write_back"), answer)
    await user.expect(f"Write your message for ticket #{ticket.id}")
    await user.send_dice()  # not something a ticket can keep
    await user.expect(t.plain("conversation.unsupported")[:40])
    await user.send("Till number 3")
    await user.expect(f"Added to ticket #{ticket.id}")

    await user.send("/feedback")  # the ticket is still open: offered to add to it
    await user.expect(f"Your ticket #{ticket.id} is still open")
    await user.press(t.plain("feedback.add_to_open", number=ticket.id))
    await user.expect(f"Write your message for ticket #{ticket.id}")
    await user.send_photo(caption="Here is the receipt")
    await user.expect(f"Added to ticket #{ticket.id}")

    [ticket] = await tickets_of(app)
    assert ticket.status == TicketStatus.OPEN
    assert [(m.author, m.text) for m in ticket.messages] == [
        ("member", "The card reader failed"),
        ("staff", "Sorry! Which till was it?"),
        ("member", "Till number 3"),
        ("member", "Here is the receipt"),
    ]
    assert ticket.messages[-1].file_id
    assert len(await alerts_to_owner(app)) == 3  # opened, and two messages written into it

    await settled(app)
    async with app.session() as session:
        await close_ticket(
            session, app.clock, app.config, ticket_id=ticket.id, staff_telegram_id=OWNER_ID
        )
        await session.commit()
    await deliver(app)
    invitation = await user.expect(f"Your ticket #{ticket.id} is closed")
    await user.press("2 🙁", invitation)
    await user.expect("Would you like to tell us why?")
    await user.press(t.plain("survey.comment.add"))
    await user.expect("Please write your comment")
    await user.send("Took three days")
    thanks = await user.expect("someone from our team will get in touch")

    await settled(app)
    async with app.session() as session:
        response = await session.scalar(select(SurveyResponse))
        closed = await session.get(Ticket, ticket.id)
    assert response is not None and closed is not None
    assert (response.kind, response.score, response.comment) == (
        SurveyKind.TICKET,
        2,
        "Took three days",
    )
    assert response.needs_followup and closed.handling_rating == 2
    texts = [alert.text for alert in await alerts_to_owner(app)]
    # The owner is no member: alerts speak the shop's default language (zh in tests).
    assert any(f"工单 #{ticket.id} 处理评分 2/5" in text for text in texts)
    assert any("Took three days" in text for text in texts)

    # Writing back into a closed ticket continues it: it waits for the shop again.
    await user.press(t.plain("feedback.reply.write_back"), answer)
    prompt = await user.expect(f"Write your message for ticket #{ticket.id}")
    assert user.messages[-2:] == [thanks, prompt]
    await user.send("And the receipt printer too")
    await user.expect(f"Added to ticket #{ticket.id}")
    [continued] = await tickets_of(app)
    assert continued.status == TicketStatus.OPEN and continued.closed_at is None
    assert continued.messages[-1].text == "And the receipt printer too"


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_feedback_over_an_open_chat_message_does_not_call_it_a_ticket(
    app: RunningBot, locale: str
) -> None:
    t = translator(locale)
    shopper = await member_user(app, 4101, locale)
    await shopper.send("Are you open on Sunday?")
    await shopper.expect(t.plain("conversation.ack")[:6])
    [ticket] = await tickets_of(app)

    await shopper.send("/feedback")
    ask = await shopper.expect(f"#{ticket.id}")
    asked = ask.content
    assert asked == t.plain("feedback.has_open_message", number=ticket.id).replace(
        "<b>", ""
    ).replace("</b>", "")
    await shopper.press(t.plain("feedback.add_to_open", number=ticket.id), ask)
    prompt = await shopper.wait_until(lambda m: m.content != asked)
    prompted = prompt.content
    await shopper.send("And on Monday?")
    added = await shopper.expect(f"#{ticket.id}")
    for text in (asked, prompted, added.content):
        assert "ticket" not in text and "工单" not in text, text
    [same] = await tickets_of(app)
    assert [m.text for m in same.messages] == ["Are you open on Sunday?", "And on Monday?"]
