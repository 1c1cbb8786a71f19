"""The per-update query path: how many statements a shopper's update costs, and that the
in-process staff roles still follow every staff change made anywhere (another replica, a CLI).

Counted with a SQLAlchemy ``before_cursor_execute`` listener on the bot's own engine, after
warm-up updates (the first update of a process reads the FSM keys and the staff roles once, the
first /card the tiers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiogram.types import Message, Update
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.pool import ConnectionPoolEntry

from care.core.clock import FrozenClock
from care.loyalty.points import add_points
from care.staff.roles import add_staff, remove_staff
from handlers.shopper.points import history_wanted
from storage.db import create_engine
from storage.enums import PointsReason, StaffRole
from storage.models import DEFAULT_TIERS, Base, Member, ProcessedUpdate, Tier
from tests.conftest import RunningBot, fresh_postgres_database, postgres_url, running_bot
from tests.journey_helpers import label, settled, without_throttling
from tests.simulator import BotAPISimulator
from tests.staff_helpers import OWNER_ID, make_member


@contextmanager
def counted(app: RunningBot) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split())[:160])

    engine = app.services.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _member(app: RunningBot, telegram_id: int, locale: str) -> None:
    async with app.services.session_factory() as session:
        await make_member(
            session, app.config, app.clock, telegram_id, language_code=locale, locale=locale
        )
        await session.commit()


def _selects_and_writes(statements: list[str]) -> tuple[list[str], list[str]]:
    reads = [s for s in statements if s.upper().startswith("SELECT")]
    writes = [s for s in statements if s.upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    return reads, writes


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_members_update_costs_one_select_plus_the_handlers_own(
    app: RunningBot, locale: str
) -> None:
    without_throttling(app)
    await _member(app, 1001, locale)
    user = app.user(1001, language_code=locale)
    await user.send("/menu")  # warm-up: the FSM keys and the staff roles, once per process
    await user.wait_until(lambda m: label(locale, "menu.card") in str(m.reply_buttons))
    await settled(app)
    await user.send("/card")  # warm-up: the tiers, once per process until they change
    await user.wait_until(lambda _m: True)
    await settled(app)

    cases = [
        # (what the shopper sends, what the answer contains, SELECTs: member, then handler's)
        ("/points", "", 1),  # the ledger lines came along with the member
        ("/card", "", 1),  # the tiers came along with the member (kept in memory)
        (label(locale, "menu.help"), "", 1),  # the menu's help button: the member only
    ]
    for text, answer, expected in cases:
        with counted(app) as statements:
            await user.send(text)
            if answer:
                await user.expect(answer)
            else:
                await user.wait_until(lambda _m: True)
            await settled(app)
        reads, writes = _selects_and_writes(statements)
        assert len(reads) == expected, (text, statements)
        assert writes == [], (text, statements)
        assert "staff" not in " ".join(reads[1:]), (text, statements)
        assert "fsm" not in " ".join(statements), (text, statements)


async def test_a_staff_change_made_elsewhere_is_seen_at_the_next_update(
    app: RunningBot,
) -> None:
    """The roles are cached in the bot process; a change committed by anyone else (here: a
    session of its own, as another replica or the CLI would) reaches it at the next update."""
    without_throttling(app)
    await _member(app, 1002, "en")
    user = app.user(1002, language_code="en")
    await user.send("/inbox")
    shopper_answer = await user.wait_until(lambda _m: True)
    await settled(app)

    async with app.services.session_factory() as session:
        await add_staff(
            session,
            app.config,
            app.clock,
            actor_telegram_id=OWNER_ID,
            telegram_id=1002,
            role=StaffRole.CASHIER,
        )
        await session.commit()
    await user.send("/inbox")
    staff_answer = await user.wait_until(lambda _m: True)
    assert staff_answer.content != shopper_answer.content
    await settled(app)

    async with app.services.session_factory() as session:
        await remove_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=1002
        )
        await session.commit()
    await user.send("/inbox")
    again = await user.wait_until(lambda _m: True)
    assert again.content == shopper_answer.content


async def test_a_role_change_made_elsewhere_is_seen_at_the_next_update(
    app: RunningBot,
) -> None:
    without_throttling(app)
    await _member(app, 1003, "zh")
    user = app.user(1003, language_code="zh")
    async with app.services.session_factory() as session:
        await add_staff(
            session,
            app.config,
            app.clock,
            actor_telegram_id=OWNER_ID,
            telegram_id=1003,
            role=StaffRole.CASHIER,
        )
        await session.commit()
    await user.send("/stats")
    as_cashier = await user.wait_until(lambda _m: True)
    await settled(app)

    async with app.services.session_factory() as session:
        await add_staff(
            session,
            app.config,
            app.clock,
            actor_telegram_id=OWNER_ID,
            telegram_id=1003,
            role=StaffRole.ADMIN,
        )
        await session.commit()
    await user.send("/stats")
    as_admin = await user.wait_until(lambda m: m.content != as_cashier.content)
    assert as_admin.content != as_cashier.content


def test_aiogram_types_are_built_on_first_use_in_the_bot_and_the_tests() -> None:
    """carebot run defers aiogram's schema building (bot/lazy_schemas.py), as the tests do."""
    from aiogram.types import Update, Venue

    from bot.lazy_schemas import defer_aiogram_schemas

    assert defer_aiogram_schemas()
    update = Update.model_validate(
        {
            "update_id": 1,
            "message": {
                "message_id": 2,
                "date": 0,
                "chat": {"id": 3, "type": "private"},
                "text": "/points",
                "venue": {
                    "location": {"latitude": 1.5, "longitude": 2.5},
                    "title": "Shop",
                    "address": "Main St",
                },
            },
        }
    )
    assert update.message is not None and isinstance(update.message.venue, Venue)
    assert update.message.venue.location.latitude == 1.5


async def test_a_tier_edited_elsewhere_is_seen_at_the_next_card(app: RunningBot) -> None:
    """The tiers are kept in memory while the update's own SELECT sees them unchanged; an edit
    made by hand (an operator's SQL, another replica) shows on the very next /card, and the
    next one after that is served from memory again."""
    without_throttling(app)
    await _member(app, 1004, "en")
    user = app.user(1004, language_code="en")
    await user.send("/card")
    first = await user.wait_until(lambda m: m.caption is not None)
    assert "Member" in (first.caption or "")
    await settled(app)

    async with app.services.session_factory() as session:
        await session.execute(
            update(Tier).where(Tier.code == "member").values(name_en="Friend of the Shop")
        )
        await session.commit()
    with counted(app) as statements:
        await user.send("/card")
        renamed = await user.wait_until(lambda m: m is not first and m.caption is not None)
        await settled(app)
    assert "Friend of the Shop" in (renamed.caption or ""), renamed.caption
    assert any("FROM tiers ORDER BY" in s for s in statements), statements

    with counted(app) as statements:
        await user.send("/card")
        again = await user.wait_until(lambda m: m is not renamed and m.caption is not None)
        await settled(app)
    assert "Friend of the Shop" in (again.caption or "")
    assert not any("FROM tiers ORDER BY" in s for s in statements), statements


async def test_points_come_with_the_member_in_one_select(app: RunningBot) -> None:
    """/points reads the latest ten ledger lines in the member's own SELECT: newest first, the
    older ones left out, and no second statement."""
    without_throttling(app)
    async with app.services.session_factory() as session:
        member = await make_member(session, app.config, app.clock, 1005, language_code="en")
        for delta in range(101, 113):
            app.clock.advance(hours=1)
            await add_points(
                session, app.clock, member_id=member.id, delta=delta, reason=PointsReason.PURCHASE
            )
        await session.commit()
    user = app.user(1005, language_code="en")
    await user.send("/menu")  # warm-up: the FSM keys and the staff roles, once per process
    await user.wait_until(lambda _m: True)
    await settled(app)

    with counted(app) as statements:
        await user.send("/points")
        reply = await user.expect("Your points")
        await settled(app)
    reads, writes = _selects_and_writes(statements)
    assert len(reads) == 1 and writes == [], statements
    shown = [int(part) for part in reply.content.split() if part.startswith("+")]
    assert shown == list(range(112, 102, -1)), reply.content
    assert f"{sum(range(101, 113)):,}" in reply.content


@pytest.fixture
async def pg_app(sim: BotAPISimulator, clock: FrozenClock) -> AsyncIterator[RunningBot]:
    """The real bot on a fresh PostgreSQL database, schema and tiers in place."""
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set (make test sets it when PostgreSQL answers)")
    async with fresh_postgres_database(base) as url:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
        await engine.dispose()
        async with running_bot(sim, url, clock) as running:
            yield without_throttling(running)


@contextmanager
def transaction_commands(app: RunningBot) -> Iterator[list[str]]:
    """BEGIN, COMMIT and ROLLBACK as asyncpg sends them (SQLAlchemy's own begin and commit
    events fire whether or not a round trip is made)."""
    sent: list[str] = []

    def logged(record: Any) -> None:
        word = record.query.strip().rstrip(";").split()[0].upper()
        if word in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(word)

    watched: list[Any] = []

    def checked_out(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver not in watched:
            driver.add_query_logger(logged)
            watched.append(driver)

    engine = app.services.engine.sync_engine
    event.listen(engine, "checkout", checked_out)
    try:
        yield sent
    finally:
        event.remove(engine, "checkout", checked_out)
        for driver in watched:
            driver.remove_query_logger(logged)


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_on_postgres_a_read_only_update_sends_no_begin_or_commit(
    pg_app: RunningBot, locale: str
) -> None:
    """The update's SELECT runs before its transaction begins; with nothing after it, nothing
    is begun or committed (one round trip instead of three). An update that writes still
    writes in one transaction, its update id with it."""
    app = pg_app
    await _member(app, 1006, locale)
    user = app.user(1006, language_code=locale)
    await user.send("/menu")  # warm-up, as above
    await user.wait_until(lambda m: label(locale, "menu.card") in str(m.reply_buttons))
    await settled(app)
    await user.send("/card")
    await user.wait_until(lambda _m: True)
    await settled(app)

    for text in ("/points", "/card", label(locale, "menu.help")):
        with transaction_commands(app) as sent, counted(app) as statements:
            await user.send(text)
            await user.wait_until(lambda _m: True)
            await settled(app)
        reads, writes = _selects_and_writes(statements)
        assert len(reads) == 1 and writes == [], (text, statements)
        assert sent == [], (text, sent)

    async with app.services.session_factory() as session:
        recorded = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
    stranger = app.user(1007, language_code=locale)
    with transaction_commands(app) as sent, counted(app) as statements:
        await stranger.send("/start")
        await stranger.wait_until(lambda _m: True)
        await settled(app)
    _reads, writes = _selects_and_writes(statements)
    assert writes, statements
    assert sent == ["BEGIN", "COMMIT"], sent
    async with app.services.session_factory() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == 1007))
        assert member is not None
        now_recorded = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        assert now_recorded == (recorded or 0) + 1


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("/points", True),
        ("/points@carebot_test_bot", True),
        ("/points extra", True),
        ("/pointsx", False),
        ("/card", False),
        ("\r", False),  # only a line break: nothing to look at, and no error (found by fuzzing)
        (" \n\t ", False),
        ("", False),
    ],
)
def test_which_updates_bring_their_points_history(text: str, wanted: bool) -> None:
    message = Message.model_validate(
        {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": text}
    )
    update = Update(update_id=1, message=message)
    assert (history_wanted(update) > 0) is wanted
