"""Invite a friend: the personal deep link, and the count of friends who joined through it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, register, walk_to, without_throttling


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


LINK = re.compile(r"https://t\.me/(\w+)\?start=(ref_\w+)")


@pytest.mark.parametrize(
    ("locale", "count_text"),
    [("zh", "通过您的链接加入的好友：{n} 位"), ("en", "through your link: {n}")],
)
async def test_the_link_brings_friends_and_the_count_follows(
    app: RunningBot, locale: str, count_text: str
) -> None:
    host = app.user(5001, first_name="Host", language_code=locale)
    await register(host, locale)
    await host.press(label(locale, "menu.invite"))
    first = await host.expect(count_text.format(n=0))
    match = LINK.search(first.text or "")
    assert match is not None
    member = await member_of(app, 5001)
    assert member is not None
    assert match.group(1) == "carebot_test_bot"
    assert match.group(2) == f"ref_{member.member_code}"

    # One friend finishes registering through the link; another stops half-way.
    friend = app.user(5002, first_name="Friend", language_code="en")
    await register(friend, "en", start=f"/start {match.group(2)}")
    dawdler = app.user(5003, language_code="en")
    await dawdler.send(f"/start {match.group(2)}")
    await walk_to(dawdler, "en", "name")

    await host.send("/invite")
    await host.expect(count_text.format(n=1))
    friend_member = await member_of(app, 5002)
    assert friend_member is not None and friend_member.referrer_id == member.id


async def test_strangers_get_no_link(app: RunningBot) -> None:
    stranger = app.user(5004, language_code="zh")
    await stranger.send("/invite")
    reply = await stranger.expect("/start")
    assert "t.me" not in (reply.text or "")
