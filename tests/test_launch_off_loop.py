"""A campaign launch whose staff text is slow to render does not stall anyone else.

Each member's text may take up to the template's time budget (a second): a batch of them on the
event loop froze every shopper for minutes, and on SQLite a batch rendering inside its write
transaction held the file's one write lock, so shoppers' writes waited and then failed. The
launch renders a batch in a worker thread, before its first write.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from care.campaigns import launch as campaigns
from care.campaigns.launch import launch_campaign
from care.campaigns.schedule import create_campaign
from care.core.templates import render_text
from care.segments.audience import Audience
from storage.models import Member
from tests.conftest import RunningBot
from tests.console_helpers import seed_member
from tests.journey_helpers import wait_button
from tests.staff_helpers import OWNER_ID

# Within the range bound, but 10^8 iterations: the time budget (about a second) stops each.
SLOW = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}hi"
MEMBERS = 6


async def test_shoppers_are_answered_and_registered_while_a_slow_launch_renders(
    app: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = 0
    first_render = threading.Event()

    def counted_render(source: str, context: Mapping[str, Any]) -> str:
        nonlocal renders
        renders += 1
        first_render.set()
        return render_text(source, context)

    monkeypatch.setattr(campaigns, "render_text", counted_render)
    async with app.session() as session:
        for _ in range(MEMBERS):
            await seed_member(session, app.clock.now())
        campaign = await create_campaign(
            session,
            app.clock,
            audience=Audience("all"),
            template=SLOW,
            created_by=OWNER_ID,
            locale="en",
        )
        await session.commit()

    started = time.monotonic()
    launch = asyncio.create_task(
        launch_campaign(app.services.session_factory, app.config, app.clock, campaign.id)
    )
    while not first_render.is_set():  # noqa: ASYNC110 (a thread's event)
        await asyncio.sleep(0.005)
    # A stranger's /start writes their member row: neither the loop nor the write lock is taken.
    shopper = app.user(4343, first_name="Bea", language_code="en")
    asked = time.monotonic()
    await shopper.send("/start")
    await wait_button(shopper, "English", timeout=3)
    answered_in = time.monotonic() - asked
    assert not launch.done()
    result = await launch
    took = time.monotonic() - started

    # On the loop, the answer came after the whole launch (six seconds); now it waits only
    # for its share of the one CPU-bound interpreter (the GIL), on a loaded machine.
    assert answered_in < 3.0, answered_in
    # The launch rendered each member once, each to its budget, and sent nobody a broken text.
    assert renders == MEMBERS
    assert took > MEMBERS * 0.8
    assert result is not None and result.queued == 0
    assert dict(result.skipped) == {"template": MEMBERS}
    async with app.session() as session:
        assert await session.get(Member, 1) is not None
