"""Referrals that motivate, end to end in zh and en: /invite names the reward and offers a
share button; the inviter hears when a friend joins and when the reward lands, with the
friend's first name and never a code."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from care.automation import engine
from storage.enums import StaffRole
from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, register, without_throttling
from tests.staff_helpers import make_staff
from tests.test_loyalty_loop import CASHIER_ID, deliver

TEXTS = {
    "en": {
        "reward": "When a friend you invite makes their first purchase, you get 200 points.",
        "share": "📨 Send the invitation to a friend",
        "joined": "👋 Your friend Mei just joined Test Shop through your invitation!",
        "landed": "Thank you, Host! Your friend Mei has made their first purchase at Test Shop.",
        "ledger": "Friend referral",
    },
    "zh": {
        "reward": "您邀请的好友完成首次消费后，您将获得 200 积分。",
        "share": "📨 把邀请发给好友",
        "joined": "👋 您的好友Mei刚刚通过您的邀请加入了Test Shop！",
        "landed": "谢谢您，Host！您邀请的好友Mei已在Test Shop完成首次消费。",
        "ledger": "推荐好友",
    },
}


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_the_inviter_is_told_when_a_friend_joins_and_when_the_reward_lands(
    app: RunningBot, locale: str
) -> None:
    without_throttling(app)
    texts = TEXTS[locale]
    host = app.user(5101, first_name="Host", language_code=locale)
    await register(host, locale)
    await host.press(label(locale, "menu.invite"))
    invite = await host.expect(texts["reward"])
    host_member = await member_of(app, 5101)
    assert host_member is not None
    link = f"https://t.me/carebot_test_bot?start=ref_{host_member.member_code}"
    assert link in invite.content
    [[button]] = invite.reply_markup["inline_keyboard"]  # type: ignore[index]
    assert button["text"] == texts["share"]
    assert button["url"].startswith(f"https://t.me/share/url?url={quote(link, safe='')}&text=")

    friend = app.user(5102, first_name="Mei", language_code="en")
    await register(friend, "en", start=f"/start ref_{host_member.member_code}")
    assert await deliver(app) == 1
    joined = await host.expect(texts["joined"])
    friend_member = await member_of(app, 5102)
    assert friend_member is not None
    assert friend_member.member_code not in joined.content

    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await cashier.send(f"/purchase {friend_member.member_code} 50")
    await cashier.next_message()
    await app.settle()  # the reply comes before the purchase's commit
    outcomes = await engine.evaluate(
        app.services.session_factory, app.config, app.clock, only="referral_reward"
    )
    assert [o.sent for o in outcomes] == [1]
    await deliver(app)
    landed = await host.expect(texts["landed"])
    assert friend_member.member_code not in landed.content
    await host.send("/points")
    points = await host.expect(texts["ledger"])
    assert "Mei" in points.content and friend_member.member_code not in points.content
