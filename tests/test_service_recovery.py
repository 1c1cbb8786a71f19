"""Service recovery that recovers: a low score's alert opens (or continues) the member's
conversation, staff write to them there and give goodwill points or a coupon with a reason; the
shopper is told, the grant shows in the thread and reads as a sentence in /audit. Driven through
the simulator by pressing the buttons the bot sent, in English and Chinese."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from care.core.clock import FrozenClock
from care.core.i18n import translator
from care.loyalty.offers import create_offer
from care.members.privacy import delete_member_data
from storage.enums import MessageKind, OfferKind, StaffRole, SurveyKind, TicketKind, TicketStatus
from storage.models import (
    AuditEntry,
    Coupon,
    Member,
    OutboxMessage,
    PointsEntry,
    SurveyInvitation,
    SurveyResponse,
)
from tests.conftest import RunningBot, running_bot
from tests.journey_helpers import wait_button
from tests.simulator import BotAPISimulator, SimUser
from tests.staff_helpers import OWNER_ID, make_staff
from tests.test_feedback import deliver, settled, tickets_of
from tests.test_surveys import invite, member_user

CASHIER_ID = 800002
ADMIN_ID = 800003
EN = translator("en")
ZH = translator("zh")


@pytest.fixture
async def shop(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[RunningBot]:
    async with running_bot(sim, sqlite_url, clock) as running:
        async with running.session() as session:
            await make_staff(session, running.config, running.clock, CASHIER_ID, name="Qian")
            await make_staff(
                session, running.config, running.clock, ADMIN_ID, StaffRole.ADMIN, "Zhao"
            )
            await session.commit()
        yield running


async def _staff(app: RunningBot, user_id: int, name: str, locale: str) -> SimUser:
    """A staff member who has written to the bot (so alerts can reach them), in ``locale``."""
    user = app.user(user_id, first_name=name, language_code=locale)
    await user.send("/staff")
    await user.next_message()
    await _deliver(app)  # the welcome each new staff member gets (kept out of later counts)
    return user


async def _deliver(app: RunningBot) -> int:
    """Drain the outbox once the bot has committed what it was handling."""
    await settled(app)
    return await deliver(app)


async def _member(app: RunningBot, member_id: int) -> Member:
    await settled(app)
    async with app.session() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        return member


async def _rows(app: RunningBot, model: Any, *where: Any) -> list[Any]:
    await settled(app)
    async with app.session() as session:
        return list(await session.scalars(select(model).where(*where)))


def _buttons(message: object) -> list[str]:
    return [label for row in message.inline_buttons for label in row]  # type: ignore[attr-defined]


async def _rate(user: SimUser, label: str, locale: str) -> None:
    """The shopper answers the rating invitation in their chat: a score, then skips the comment."""
    t = translator(locale)
    await user.wait_until(lambda m: any(label in b for b in _buttons(m)))
    await user.press(label)
    await user.wait_until(lambda m: t.plain("survey.comment.skip") in _buttons(m))
    await user.press(t.plain("survey.comment.skip"))


async def test_a_low_csat_is_written_to_and_given_goodwill_points_en(shop: RunningBot) -> None:
    app = shop
    admin = await _staff(app, ADMIN_ID, "Zhao", "en")
    owner = await _staff(app, OWNER_ID, "Chen", "en")
    member_id, shopper = await member_user(app, 6001, "en")
    code = (await _member(app, member_id)).member_code

    # The shopper rates 2/5 and is promised a word from the team.
    await invite(app, member_id, SurveyKind.CSAT)
    question = await shopper.expect("How satisfied were you")
    await shopper.press("2 🙁", question)
    await shopper.expect(EN.plain("survey.ask_expectation"))
    await shopper.press(EN.plain("survey.expectation.worse"))
    await shopper.expect(EN.plain("survey.ask_comment"))
    await shopper.press(EN.plain("survey.comment.skip"))
    await shopper.expect("someone from our team will get in touch")

    # The admin's alert carries a button that opens a conversation with the member.
    await _deliver(app)
    alert = await admin.wait_until(lambda m: "2/5" in m.content and "Ann" in m.content)
    assert _buttons(alert) == ["💬 Write to Ann"]
    await admin.press("💬 Write to Ann", alert)
    thread = await admin.wait_until(lambda m: m.content.startswith("🎫"))
    lines = thread.content.splitlines()
    assert lines[1].startswith("↪️ Follow-up of a 2/5 rating (CSAT) on ")
    assert ["✍️ Reply", "📋 Saved replies"] in thread.inline_buttons
    assert ["🎁 Goodwill"] in thread.inline_buttons
    [ticket] = await tickets_of(app)
    assert (ticket.kind, ticket.status, ticket.assigned_to) == (
        TicketKind.MESSAGE, TicketStatus.OPEN, ADMIN_ID,
    )  # fmt: skip
    assert ticket.messages == []  # nobody has written yet: the shop owes the member a word

    # The admin writes to the member; the shopper receives it; the score is followed up.
    await admin.press("✍️ Reply", thread)
    await admin.expect("Write your answer")
    await admin.send("We are sorry the coffee was cold. Please come by again!")
    await admin.expect("on its way")
    await _deliver(app)
    await shopper.expect("We are sorry the coffee was cold")
    [response] = await _rows(app, SurveyResponse)
    assert response.followed_up_by == ADMIN_ID

    # Goodwill points, with polite refusals of bad amounts first (nothing changes meanwhile).
    await admin.press("🎁 Goodwill", thread)
    choose = await admin.expect("Goodwill for Ann")
    assert _buttons(choose) == ["⭐ Points", "🎟 Coupon", "✖️ Cancel"]
    await admin.press("⭐ Points", choose)
    await admin.expect("How many points for Ann? Send a whole number from 1 to 5,000.")
    for bad in ("abc", "-5", "0", "1000000", "12.5"):
        await admin.send(bad)
        refusal = await admin.expect("is not a number of points I can give")
        assert f"“{bad}”" in refusal.content
    assert (await _member(app, member_id)).points_balance == 0
    await admin.send("200")
    await admin.expect("Why? Ann reads your reason together with 200 points")
    await admin.send("sorry   for the cold coffee")
    confirm = await admin.expect("Give Ann 200 points?")
    assert "Reason: “sorry for the cold coffee”" in confirm.content
    await admin.press("✅ Give", confirm)
    given = await admin.expect("got 200 points")
    assert (
        given.content
        == "✅ Ann got 200 points; their balance is now 200 points. They have been told."
    )

    assert (await _member(app, member_id)).points_balance == 200
    [entry] = await _rows(app, PointsEntry, PointsEntry.member_id == member_id)
    assert (entry.delta, entry.reason, entry.note) == (
        200,
        "goodwill",
        "sorry for the cold coffee",
    )
    await _deliver(app)
    told = await shopper.expect("🎁 200 points for you")
    assert (
        told.content
        == "🎁 200 points for you: sorry for the cold coffee. Your balance: 200 points."
    )

    # Other staff see the grant in the conversation's history.
    cashier = await _staff(app, CASHIER_ID, "Qian", "en")
    await cashier.send("/inbox")
    await cashier.expect("📥")
    await cashier.press_data(f"tk:open:{ticket.id}:0")
    seen = await cashier.wait_until(lambda m: m.content.startswith(f"🎫 #{ticket.id}"))
    assert "(Zhao) gave 200 points: “sorry for the cold coffee”" in seen.content
    assert "🎁 Goodwill" not in _buttons(seen)  # cashiers do not give value away

    # The audit log reads as sentences with names and amounts.
    await owner.send("/audit")
    log = (await owner.expect("Audit log")).content
    assert (
        f"Admin Zhao gave Ann ({code}) 200 points as goodwill: “sorry for the cold coffee”" in log
    )
    assert f"Admin Zhao opened conversation #{ticket.id} with Ann ({code}) to follow up" in log
    assert "their 2/5 rating" in log
    await owner.send("/audit goodwill")
    assert "200 points as goodwill" in (await owner.expect("Audit log")).content


async def test_a_closed_conversation_rated_low_reopens_and_gets_a_coupon_zh(
    shop: RunningBot,
) -> None:
    app = shop
    admin = await _staff(app, ADMIN_ID, "Zhao", "zh")
    cashier = await _staff(app, CASHIER_ID, "Qian", "zh")
    member_id, shopper = await member_user(app, 6002, "zh")
    async with app.session() as session:
        offer = await create_offer(
            session, app.clock, app.config, title="Sorry coupon", title_zh="致歉券",
            title_en="Sorry coupon", kind=OfferKind.PERCENT_OFF, value=20,
        )  # fmt: skip
        await session.commit()
        offer_id = offer.id

    # A plain conversation, answered and closed: the shopper is asked to rate it, once.
    await shopper.send("你们的咖啡是凉的")
    await shopper.expect("谢谢")
    [ticket] = await tickets_of(app)
    await cashier.send("/inbox")
    await cashier.expect("📥")
    await cashier.press_data(f"tk:close:{ticket.id}:0")
    await cashier.wait_until(lambda m: "已关闭" in m.content or "closed" in m.content)
    await _deliver(app)
    rating = await shopper.expect(ZH.plain("survey.ticket.question_message")[:8])
    assert "工单" not in rating.content  # a conversation, not a ticket
    await _rate(shopper, "1 😞", "zh")

    await _deliver(app)
    alert = await admin.wait_until(lambda m: "1/5" in m.content)
    await admin.press("💬 联系 Ann", alert)
    thread = await admin.wait_until(lambda m: m.content.startswith(f"🎫 #{ticket.id}"))
    assert "↪️ 跟进" in thread.content and "1/5 评分" in thread.content
    assert any("重新打开" in (a.text or "") for a in admin.callback_answers)
    [reopened] = await tickets_of(app)  # the rated conversation itself, not a new one
    assert reopened.status == TicketStatus.ANSWERED and reopened.followup_of is not None

    await admin.press("🎁 补偿", thread)
    await admin.expect("给 Ann 的补偿")
    await admin.press("🎟 优惠券")
    pick = await admin.expect("给 Ann 哪张优惠券")
    assert _buttons(pick)[0].startswith("致歉券 · ")
    await admin.press(_buttons(pick)[0], pick)
    await admin.expect("原因是什么？")
    await admin.send("")  # an empty caption-less text never arrives; a blank reason is refused
    await admin.send("   ")
    await admin.expect("请写一句简短的原因")
    await admin.send("x" * 201)
    await admin.expect("原因太长了（201 个字）")
    await admin.send("咖啡凉了，非常抱歉")
    confirm = await admin.expect("确认给 Ann 发放")
    await admin.press("✅ 确认发放", confirm)
    await admin.expect("已给 Ann 发放优惠券")

    [coupon] = await _rows(app, Coupon, Coupon.member_id == member_id)
    assert (coupon.offer_id, coupon.source) == (offer_id, "goodwill")
    await _deliver(app)
    told = await shopper.expect("为您送上一张优惠券")
    assert "咖啡凉了，非常抱歉" in told.content and coupon.code[:4] in told.content
    [told_row] = await _rows(app, OutboxMessage, OutboxMessage.rule == "goodwill")
    assert told_row.kind == MessageKind.SERVICE and "/stop" not in told_row.text

    # Closing the follow-up again does not ask for a second rating.
    await admin.press_data(f"tk:close:{ticket.id}:0", thread)
    await admin.wait_until(lambda m: "已关闭" in m.content or "关闭" in m.content)
    await settled(app)
    assert len(await _rows(app, SurveyInvitation, SurveyInvitation.ticket_id == ticket.id)) == 1
    owner = await _staff(app, OWNER_ID, "Chen", "zh")
    await owner.send("/audit goodwill")
    log = (await owner.expect("审计")).content
    assert "Zhao" in log and "给 Ann" in log and "作为补偿：“咖啡凉了，非常抱歉”" in log


async def test_goodwill_from_member_cancel_and_who_may_give(shop: RunningBot) -> None:
    app = shop
    owner = await _staff(app, OWNER_ID, "Chen", "en")
    member_id, shopper = await member_user(app, 6003, "en")
    code = (await _member(app, member_id)).member_code

    await owner.send(f"/member {code}")
    view = await owner.expect("Ann")
    assert _buttons(view) == ["🎁 Goodwill"]

    # Cancel by button mid-flow, then /cancel after the amount: nothing is given either time.
    await owner.press("🎁 Goodwill", view)
    await owner.press("⭐ Points", await owner.expect("Goodwill for Ann"))
    await owner.press("✖️ Cancel", await owner.expect("How many points"))
    await owner.expect("Cancelled: nothing was given.")
    await owner.send("300")  # no longer in the flow: not taken as an amount
    await owner.press("🎁 Goodwill", view)
    await owner.press("⭐ Points", await owner.expect("Goodwill for Ann"))
    await owner.expect("How many points")
    await owner.send("300")
    await owner.expect("Why?")
    await owner.send("/cancel")
    await owner.expect("Cancelled: nothing was given.")
    stale = await owner.press_data(f"gw:give:{member_id}:0:0")  # a Give from no flow
    await owner.wait_callback_answer(stale)
    assert (await _member(app, member_id)).points_balance == 0

    # From /member: the grant with no conversation open is still told and audited.
    await owner.press("🎁 Goodwill", view)
    await owner.press("⭐ Points", await owner.expect("Goodwill for Ann"))
    await owner.send("1,000")
    await owner.send("thank you for ten years with us")
    await owner.press("✅ Give", await owner.expect("Give Ann 1,000 points?"))
    await owner.expect("Ann got 1,000 points")
    assert (await _member(app, member_id)).points_balance == 1000
    await _deliver(app)
    await shopper.expect("🎁 1,000 points for you: thank you for ten years with us")
    assert await tickets_of(app) == []  # a grant from /member opens no conversation

    # A cashier sees no goodwill button, and a forged one is refused.
    cashier = await _staff(app, CASHIER_ID, "Qian", "en")
    await cashier.send(f"/member {code}")
    assert _buttons(await cashier.expect("Ann")) == []
    forged = await cashier.press_data(f"gw:start:{member_id}:0:0")
    answer = await cashier.wait_callback_answer(forged)
    assert answer.text == "Only an admin or the owner can give goodwill."
    entries = await _rows(app, AuditEntry, AuditEntry.action.like("goodwill.%"))
    assert [(e.action, e.actor_telegram_id) for e in entries] == [("goodwill.points", OWNER_ID)]


async def test_an_erased_member_gets_no_goodwill_and_no_follow_up(shop: RunningBot) -> None:
    app = shop
    admin = await _staff(app, ADMIN_ID, "Zhao", "en")
    member_id, shopper = await member_user(app, 6004, "en")
    await invite(app, member_id, SurveyKind.NPS)
    question = await shopper.expect("recommend")
    await shopper.press("3", question)
    await shopper.expect("Would you like to tell us why?")
    await _deliver(app)
    alert = await admin.wait_until(lambda m: "3/10" in m.content)
    await admin.press("💬 Write to Ann", alert)
    thread = await admin.wait_until(lambda m: m.content.startswith("🎫"))
    assert "Follow-up of a 3/10 rating" in thread.content
    [ticket] = await tickets_of(app)

    async with app.session() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        await delete_member_data(session, app.clock, member)
        await session.commit()

    # Before anyone types: the goodwill button and the alert's button both refuse.
    pressed = await admin.press_data(f"gw:start:{member_id}:{ticket.id}:0", thread)
    refusal = await admin.wait_callback_answer(pressed)
    assert refusal.text == "This member erased their data: there is no one to give anything to."
    write = alert.inline_button("💬 Write to Ann")
    assert write is not None
    again = await admin.press_data(write["callback_data"], alert)
    refusal = await admin.wait_callback_answer(again)
    assert refusal.text == "This member erased their data: they cannot be written to."
    await admin.no_message_within(0.3)
    await admin.press_data(f"tk:open:{ticket.id}:0", thread)
    reopened = await admin.wait_until(lambda m: "erased their data" in m.content)
    assert "🎁 Goodwill" not in _buttons(reopened)
    assert await _rows(app, PointsEntry, PointsEntry.member_id == member_id) == []


async def test_write_back_on_a_closed_ticket_continues_it(shop: RunningBot) -> None:
    app = shop
    _, shopper = await member_user(app, 6005, "en")
    await shopper.send("/feedback")
    await shopper.expect("What would you like to tell us?")
    await shopper.press(EN.plain("feedback.kind.complaint"))
    await shopper.expect("Please write it in one message")
    await shopper.send("The card reader failed")
    await shopper.expect("as ticket #")
    [ticket] = await tickets_of(app)
    cashier = await _staff(app, CASHIER_ID, "Qian", "en")
    await cashier.send("/inbox")
    await cashier.expect("📥")
    await cashier.press_data(f"tk:reply:{ticket.id}:0")
    await cashier.expect("Write your answer")
    await cashier.send("Fixed it, sorry!")
    await cashier.expect("on its way")
    await cashier.press_data(f"tk:close:{ticket.id}:0")
    await cashier.wait_until(lambda m: "· closed ·" in m.content)
    await _deliver(app)
    answer = await shopper.wait_until(lambda m: "Fixed it, sorry!" in m.content)

    # "Write back" under the answer still works after the ticket was closed.
    await shopper.press(EN.plain("feedback.reply.write_back"), answer)
    await shopper.expect(f"Write your message for ticket #{ticket.id}")
    await shopper.send("It failed again today")
    await shopper.expect(f"#{ticket.id}")
    [again] = await tickets_of(app)
    assert again.id == ticket.id and again.status == TicketStatus.OPEN
    assert again.closed_at is None and again.messages[-1].text == "It failed again today"


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_a_second_give_or_an_old_cancel_keeps_the_record_of_the_grant(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    owner = await _staff(app, OWNER_ID, "Chen", locale)
    member_id, shopper = await member_user(app, 6006, locale)
    code = (await _member(app, member_id)).member_code
    await owner.send(f"/member {code}")
    view = await owner.expect(code)
    await owner.press(t.plain("goodwill.button"), view)
    await owner.press(t.plain("goodwill.points_button"), await owner.expect("Ann"))
    await owner.send("200")
    reason_prompt = await owner.wait_until(lambda m: "200" in m.content)
    assert _buttons(reason_prompt) == [t.plain("goodwill.cancel_button")]
    cancel_data = reason_prompt.reply_markup["inline_keyboard"][0][0]["callback_data"]
    await owner.send("sorry for the wait")
    confirm = await owner.wait_until(lambda m: t.plain("goodwill.give_button") in _buttons(m))
    give_data = confirm.reply_markup["inline_keyboard"][0][0]["callback_data"]
    await owner.press(t.plain("goodwill.give_button"), confirm)
    given = await owner.wait_until(lambda m: "Ann" in m.content and not m.inline_buttons)
    record = given.content

    # A double tap on Give, then the reason prompt's old Cancel: refused with a note, and
    # neither rewrites the message that says what was given.
    again = await owner.press_data(give_data, confirm)
    assert (await owner.wait_callback_answer(again)).text == t.plain("goodwill.expired")
    old_cancel = await owner.press_data(cancel_data, reason_prompt)
    assert (await owner.wait_callback_answer(old_cancel)).text == t.plain("goodwill.expired")
    await settled(app)
    assert confirm.content == record
    assert t.plain("goodwill.cancelled") not in reason_prompt.content
    assert not reason_prompt.inline_buttons  # no live Cancel under a finished flow
    assert (await _member(app, member_id)).points_balance == 200
    await _deliver(app)
    await shopper.expect("sorry for the wait")


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_typing_where_goodwill_waits_for_a_button_says_so(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    owner = await _staff(app, OWNER_ID, "Chen", locale)
    member_id, _ = await member_user(app, 6007, locale)
    code = (await _member(app, member_id)).member_code
    await owner.send(f"/member {code}")
    view = await owner.expect(code)
    await owner.press(t.plain("goodwill.button"), view)
    choose = await owner.expect("Ann")
    await owner.send("200")  # an amount before choosing points: not an unknown command
    await owner.expect(t.plain("goodwill.use_buttons"))
    await owner.press(t.plain("goodwill.points_button"), choose)
    await owner.send("200")
    await owner.send("thanks for waiting")
    confirm = await owner.wait_until(lambda m: t.plain("goodwill.give_button") in _buttons(m))
    await owner.send("yes")  # typed instead of pressing Give: nothing given yet
    await owner.expect(t.plain("goodwill.use_buttons"))
    assert (await _member(app, member_id)).points_balance == 0
    await owner.press(t.plain("goodwill.give_button"), confirm)
    await owner.wait_until(lambda m: "Ann" in m.content and not m.inline_buttons)
    assert (await _member(app, member_id)).points_balance == 200
    await owner.send("ok")  # the flow is over: no longer held for it
    assert (await owner.wait_until(lambda m: True)).content != t.plain("goodwill.use_buttons")


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_an_erased_members_low_score_leaves_the_follow_up_list(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    admin = await _staff(app, ADMIN_ID, "Zhao", locale)
    member_id, shopper = await member_user(app, 6008, locale)
    await invite(app, member_id, SurveyKind.NPS)
    await shopper.press("3", await shopper.wait_until(lambda m: "3" in _buttons(m)))
    await shopper.wait_until(lambda m: t.plain("survey.comment.skip") in _buttons(m))
    await settled(app)
    followups = t.plain("inbox.followups", count=1)
    await admin.send("/inbox")
    assert [followups] in (await admin.expect("📥")).inline_buttons

    await shopper.send("/delete_me")
    await shopper.press(t.plain("delete.yes"), await wait_button(shopper, t.plain("delete.yes")))
    await shopper.expect("/start")  # all deleted; send /start to join again
    await settled(app)
    await admin.send("/inbox")
    inbox = await admin.expect("📥")
    assert not any(row[0].startswith("⚠️") for row in inbox.inline_buttons)


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_a_command_mid_goodwill_leaves_it_and_takes_its_buttons_off(
    shop: RunningBot, locale: str
) -> None:
    app, t = shop, translator(locale)
    owner = await _staff(app, OWNER_ID, "Chen", locale)
    member_id, _ = await member_user(app, 6008, locale)
    code = (await _member(app, member_id)).member_code
    await owner.send(f"/member {code}")
    view = await owner.expect(code)
    await owner.press(t.plain("goodwill.button"), view)
    prompt = await owner.expect("Ann")
    await owner.press(t.plain("goodwill.points_button"), prompt)
    await owner.wait_until(lambda _m: t.plain("goodwill.cancel_button") in _buttons(prompt))
    await owner.send("/inbox")  # changed their mind mid-flow
    await owner.expect(t.plain("roles.step_left")[:8])
    await owner.expect("📥")
    await settled(app)
    assert not prompt.inline_buttons  # no Cancel left under a step that is over
    await owner.send("200")  # no longer read as an amount
    await settled(app)
    assert (await _member(app, member_id)).points_balance == 0
