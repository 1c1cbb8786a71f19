"""/member: staff find a member by code, phone, @username or name and see the 360° view."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from care.conversations.tickets import open_ticket
from care.core.audit import recent_audit
from care.loyalty.purchases import record_purchase
from care.members.registration import set_consent
from care.messaging.outbox import enqueue
from storage.enums import ConsentKind, MessageKind, StaffRole, TicketKind
from storage.models import (
    Member,
    MemberInterest,
    MemberValue,
    SurveyInvitation,
    SurveyResponse,
)
from tests.conftest import RunningBot
from tests.staff_helpers import make_member, make_staff

CASHIER_ID = 800002
CODE = "K7QX2M9P"


async def _rich_member(app: RunningBot) -> int:
    """A member with a bit of everything: consent, purchases, segments, a survey, a ticket."""
    clock, config = app.clock, app.config
    async with app.session() as session:
        member = await make_member(
            session, config, clock, 2001, "Li <Lei>", phone="+8613800138000", username="lilei",
            birthday=date(1990, 5, 17), source="poster",
        )  # fmt: skip
        member.member_code = CODE
        friend = await make_member(session, config, clock, 2002, "Han Meimei")
        friend.referrer_id = member.id
        await set_consent(session, clock, member, ConsentKind.PROFILE, True, "registration")
        await set_consent(session, clock, member, ConsentKind.MARKETING, True, "registration")
        session.add(MemberInterest(member_id=member.id, category="beauty"))
        clock.advance(days=-30)
        await record_purchase(
            session, config, clock, member_id=member.id, amount_minor=12000,
            receipt_id="R-OLD", category="fresh",
        )  # fmt: skip
        clock.advance(days=30)
        await record_purchase(
            session, config, clock, member_id=member.id, amount_minor=8850,
            receipt_id="R-NEW", category="grocery",
        )  # fmt: skip
        member.rfm_r, member.rfm_f, member.rfm_m = 5, 3, 4
        member.value_tier, member.lifecycle_stage, member.churn_risk = "high", "at_risk", 0.42
        await set_consent(session, clock, member, ConsentKind.SURVEYS, False, "settings")
        invitation = SurveyInvitation(
            member_id=member.id, kind="nps", nonce="n", created_at=clock.now(),
            expires_at=clock.now() + timedelta(days=7), answered_at=clock.now(),
        )  # fmt: skip
        session.add(invitation)
        await session.flush()
        session.add(
            SurveyResponse(
                invitation_id=invitation.id, member_id=member.id, kind="nps", score=3,
                comment="the queue was long", created_at=clock.now(), needs_followup=True,
            )
        )  # fmt: skip
        await open_ticket(
            session, clock, member=member, kind=TicketKind.COMPLAINT,
            text="The milk was sour",
        )  # fmt: skip
        await enqueue(
            session, clock, config, key="test:welcome", chat_id=2001, text="Welcome!",
            kind=MessageKind.MARKETING, member=member, rule="welcome",
        )  # fmt: skip
        await make_staff(session, config, clock, CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
        return member.id


async def test_the_360_view_shows_everything_the_shop_knows(app: RunningBot) -> None:
    member_id = await _rich_member(app)
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send(f"/member {CODE}")
    view = await cashier.next_message()
    lines = view.text.splitlines()
    assert lines[0] == f"👤 Li <Lei> · {CODE}"
    assert "<b>Li &lt;Lei&gt;</b>" in view.html  # names are escaped, never markup
    assert lines[1] == "📞 +8613800138000 · @lilei · 中文 · China Time (UTC+8)"
    assert "🎂 17 May 1990" in lines
    assert "Member since 2 Mar 2026 · source: poster" in lines
    assert "Invited by — · invited 1 friend" in lines
    assert "profile data: ✅ 2026-03-02 11:00" in lines
    assert "offers: ✅ 2026-03-02 11:00" in lines
    assert "surveys: ❌ 2026-03-02 11:00" in lines
    assert "Reachable in the chat: ✅" in lines
    assert "💳 Member · 208 points · 0 active coupons" in lines
    assert "Spent ¥208.50 in 2 purchases; ¥208.50 in the last 12 months" in lines
    assert "First 31 Jan 2026 · last 2 Mar 2026 · usually every 30 days" in lines
    assert "📊 RFM 5-3-4 · value: high · stage: at risk · churn risk: 42%" in lines
    assert "Interests: Beauty" in lines
    purchases = lines.index("Recent purchases")
    assert lines[purchases + 1] == "• 03-02 11:00 ¥88.50 · Grocery +88 · R-NEW"
    assert lines[purchases + 2] == "• 01-31 11:00 ¥120.00 · Fresh food +120 · R-OLD"
    assert "• 03-02 11:00 NPS 3/10 · “the queue was long” ⚠️ follow up" in lines
    assert "Feedback (1 open)" in lines
    assert any(line.endswith("complaint · open: The milk was sour") for line in lines)
    # The welcome, and a receipt for each of the two purchases (each was made "now").
    assert "Messages received (0 sent · 0 skipped · 3 waiting)" in lines
    assert "• 03-02 11:00 Welcome · waiting" in lines  # the rule by its name, not "welcome"

    await app.settle()
    async with app.session() as session:
        entries = await recent_audit(session, action="member.view")
    assert [(e.actor_telegram_id, e.actor_role, e.target) for e in entries] == [
        (CASHIER_ID, "cashier", f"member:{member_id}")
    ]
    assert not any(line.startswith("🔮") for line in lines)  # no value model fitted yet


PREDICTED = {
    "en": "🔮 Chance they still shop here: 73% · expect about 1.2 purchases in the next "
    "90 days, about ¥104.50 each · likely to spend ¥482.30 in the next 12 months",
    "zh": "🔮 仍在本店购物的可能性：73% · 预计未来 90 天购买约 1.2 次，每次约 ¥104.50 · "
    "预计未来 12 个月消费 ¥482.30",
}


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_view_says_what_the_value_model_predicts_in_plain_words(
    app: RunningBot, language: str
) -> None:
    member_id = await _rich_member(app)
    async with app.session() as session:
        session.add(
            MemberValue(
                member_id=member_id, p_alive=0.734, purchases_30d=0.41, purchases_90d=1.18,
                spend_per_purchase_minor=10450, value_12m_minor=48230,
                refreshed_at=app.clock.now(),
            )
        )  # fmt: skip
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code=language)
    await cashier.send(f"/member {CODE}")
    view = await cashier.next_message()
    assert PREDICTED[language] in view.text.splitlines()


async def test_found_by_phone_username_and_name_in_chinese(app: RunningBot) -> None:
    await _rich_member(app)
    cashier = app.user(CASHIER_ID, language_code="zh")
    for query in ("13800138000", "+86 138 0013 8000", "@LiLei", "li <lei>", CODE.lower()):
        await cashier.send(f"/member {query}")
        view = (await cashier.next_message()).text
        assert view.startswith(f"👤 Li <Lei> · {CODE}"), query
        assert "授权" in view and "阶段：有流失风险" in view


async def test_several_matches_give_a_short_list_to_pick_from(app: RunningBot) -> None:
    await _rich_member(app)
    async with app.session() as session:
        for number in range(3):
            await make_member(session, app.config, app.clock, 3000 + number, f"Li Na {number}")
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/member li")
    listing = await cashier.next_message()
    assert listing.text == "4 members match “li”. Which one?"
    labels = [row[0] for row in listing.inline_buttons]
    assert len(labels) == 4 and f"Li <Lei> · {CODE}" in labels
    await cashier.press(f"Li <Lei> · {CODE}")
    view = await cashier.next_message()
    assert view.text.startswith(f"👤 Li <Lei> · {CODE}")

    await app.settle()
    async with app.session() as session:
        [search] = await recent_audit(session, action="member.search")
        # Whom the cashier saw, never what they typed (a name erasure could not find again).
        assert search.details is not None and set(search.details) == {"matches", "member_ids"}
        assert search.details["matches"] == 4 and len(set(search.details["member_ids"])) == 4
        assert len(await recent_audit(session, action="member.view")) == 1


async def test_more_matches_than_fit_say_so(app: RunningBot) -> None:
    async with app.session() as session:
        for number in range(12):
            await make_member(session, app.config, app.clock, 3000 + number, f"Wang {number}")
        await session.commit()
    owner = app.user(900001, language_code="en")
    await owner.send("/member wang")
    listing = await owner.next_message()
    assert listing.text.startswith("8+ members match “wang”; here are the first 8.")
    assert len(listing.inline_buttons) == 8


async def test_no_match_and_no_query_are_answered_politely(app: RunningBot) -> None:
    await _rich_member(app)
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/member Nobody Here")
    assert (await cashier.next_message()).text.startswith("No member found for “Nobody Here”")
    await cashier.send("/member")
    assert "followed by a member code" in (await cashier.next_message()).text
    await cashier.send("/member " + "x" * 300)
    assert "No member found" in (await cashier.next_message()).text
    await app.settle()
    async with app.session() as session:
        assert await recent_audit(session, action="member.view") == []


async def test_a_member_who_deleted_their_data_is_gone(app: RunningBot) -> None:
    member_id = await _rich_member(app)
    async with app.session() as session:
        await make_member(session, app.config, app.clock, 3001, "Li Na")
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/member Li")
    assert len((await cashier.next_message()).inline_buttons) == 2
    async with app.session() as session:
        member = await session.get(Member, member_id)
        assert member is not None
        member.status = "deleted"
        await session.commit()
    await cashier.press(f"Li <Lei> · {CODE}")
    assert "no longer here" in (await cashier.next_message()).text
    await cashier.send(f"/member {CODE}")
    assert "No member found" in (await cashier.next_message()).text
    async with app.session() as session:
        assert await session.scalar(select(Member.status).where(Member.id == member_id)) == (
            "deleted"
        )
