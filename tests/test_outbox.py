"""The outbox: idempotent queueing on both databases, bulk queueing, quiet-hours deferral."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.core.quiet_hours import in_quiet_window, next_allowed_time
from care.messaging.outbox import (
    OutboxItem,
    campaign_counts,
    enqueue,
    enqueue_many,
    visible_length,
)
from storage.db import create_engine, create_session_factory
from storage.enums import MessageKind, OutboxStatus
from storage.models import Base, Campaign, Member, OutboxMessage
from tests.conftest import T0

CONFIG = CareConfig()


@pytest.fixture
async def factory(any_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield create_session_factory(engine)
    await engine.dispose()


async def add_member(
    session: AsyncSession, n: int, *, tz: str = "Asia/Shanghai", now: datetime = T0
) -> Member:
    member = Member(
        telegram_id=5000 + n,
        chat_id=5000 + n,
        member_code=f"M{n:07d}",
        status="active",
        timezone=tz,
        created_at=now,
    )
    session.add(member)
    await session.flush()
    return member


# ---------------------------------------------------------------- quiet hours


def local(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


@pytest.mark.parametrize(
    ("local_now", "expected_local"),
    [
        ((2026, 3, 2, 11, 0), (2026, 3, 2, 11, 0)),  # daytime: at once
        ((2026, 3, 2, 22, 30), (2026, 3, 3, 9, 0)),  # evening: next morning
        ((2026, 3, 2, 3, 15), (2026, 3, 2, 9, 0)),  # small hours: this morning
        ((2026, 3, 2, 21, 0), (2026, 3, 3, 9, 0)),  # the window's first minute is quiet
        ((2026, 3, 2, 9, 0), (2026, 3, 2, 9, 0)),  # its end is not
    ],
)
def test_quiet_window_wraps_midnight(
    local_now: tuple[int, ...], expected_local: tuple[int, ...]
) -> None:
    tz = "Asia/Shanghai"
    got = next_allowed_time(local(tz, *local_now), tz, time(21), time(9))
    assert got == local(tz, *expected_local)
    assert got.tzinfo == UTC


def test_quiet_window_that_does_not_wrap() -> None:
    assert in_quiet_window(time(2), time(1), time(6))
    assert not in_quiet_window(time(7), time(1), time(6))
    assert not in_quiet_window(time(3), time(4), time(4))  # empty window
    now = local("Europe/Berlin", 2026, 6, 1, 2, 0)
    assert next_allowed_time(now, "Europe/Berlin", time(1), time(6)) == local(
        "Europe/Berlin", 2026, 6, 1, 6, 0
    )


def test_quiet_hours_across_daylight_saving_jumps() -> None:
    ny = "America/New_York"
    # Spring forward (2026-03-08 02:00 → 03:00): a 02:30 window end does not exist that day;
    # the member is not woken before the clocks have passed it.
    got = next_allowed_time(local(ny, 2026, 3, 8, 1, 0), ny, time(21), time(2, 30))
    assert got == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT, after the gap
    # Fall back (2026-11-01): 09:00 is an ordinary local morning, 14:00 UTC (EST) …
    got = next_allowed_time(local(ny, 2026, 11, 1, 0, 30), ny, time(21), time(9))
    assert got == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    # … and a 01:30 window end, which happens twice that night, ends it the first time.
    got = next_allowed_time(local(ny, 2026, 11, 1, 0, 30), ny, time(21), time(1, 30))
    assert got == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT


def test_unknown_timezone_counts_as_utc() -> None:
    now = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert next_allowed_time(now, "Mars/Olympus", time(21), time(9)) == datetime(
        2026, 3, 3, 9, 0, tzinfo=UTC
    )


# --------------------------------------------------------------------- enqueue


async def test_enqueue_is_idempotent_by_key(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with factory() as session:
        member = await add_member(session, 1)
        first = await enqueue(
            session,
            clock,
            CONFIG,
            key="welcome:1",
            chat_id=member.chat_id or 0,
            text="<b>Welcome</b>",
            kind=MessageKind.MARKETING,
            member=member,
            rule="welcome",
            reply_markup={"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]},
        )
        assert first is not None and first.id is not None
        assert first.status == OutboxStatus.QUEUED and first.not_before == T0
        again = await enqueue(
            session,
            clock,
            CONFIG,
            key="welcome:1",
            chat_id=member.chat_id or 0,
            text="<b>Welcome again</b>",
            kind=MessageKind.MARKETING,
            member=member,
        )
        assert again is None
        await session.commit()
    async with factory() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
        assert [(r.idempotency_key, r.text) for r in rows] == [("welcome:1", "<b>Welcome</b>")]
        assert rows[0].reply_markup == {
            "inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]
        }


async def test_two_sessions_racing_for_one_key_queue_it_once(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with factory() as session:
        member = await add_member(session, 2)
        await session.commit()

    async def attempt(text: str) -> bool:
        async with factory() as session:
            queued = await enqueue(
                session,
                clock,
                CONFIG,
                key="birthday:2:2026",
                chat_id=member.chat_id or 0,
                text=text,
                kind=MessageKind.MARKETING,
                member=member,
            )
            await session.commit()
            return queued is not None

    outcomes = await asyncio.gather(attempt("one"), attempt("two"), attempt("three"))
    assert sorted(outcomes) == [False, False, True]
    async with factory() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


async def test_enqueue_defers_out_of_the_members_quiet_hours(
    factory: async_sessionmaker[AsyncSession],
) -> None:
    # 23:30 in Shanghai (15:30 UTC), 10:30 in New York.
    clock = FrozenClock(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))
    async with factory() as session:
        shanghai = await add_member(session, 3)
        new_york = await add_member(session, 4, tz="America/New_York")

        async def queue(
            key: str, member: Member | None, kind: MessageKind, respect: bool = True
        ) -> datetime:
            row = await enqueue(
                session,
                clock,
                CONFIG,
                key=key,
                chat_id=42,
                text="hello",
                kind=kind,
                member=member,
                respect_quiet_hours=respect,
            )
            assert row is not None
            return row.not_before

        next_morning = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
        assert await queue("m:sh", shanghai, MessageKind.MARKETING) == next_morning
        assert await queue("s:sh", shanghai, MessageKind.SERVICE) == next_morning
        assert await queue("m:ny", new_york, MessageKind.MARKETING) == clock.now()
        assert await queue("a:sh", shanghai, MessageKind.ALERT) == clock.now()
        assert await queue("t:sh", shanghai, MessageKind.SERVICE, respect=False) == clock.now()
        assert await queue("staff", None, MessageKind.SERVICE) == clock.now()
        # A requested time inside the window is pushed to its end too.
        later = await enqueue(
            session,
            clock,
            CONFIG,
            key="later",
            chat_id=42,
            text="hello",
            kind=MessageKind.MARKETING,
            member=new_york,
            not_before=datetime(2026, 3, 3, 3, 0, tzinfo=UTC),  # 22:00 in New York
        )
        assert later is not None
        assert later.not_before == datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # 09:00 NY


async def test_enqueue_refuses_what_telegram_would_refuse(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with factory() as session:
        ok = await enqueue(
            session,
            clock,
            CONFIG,
            key="long-but-fine",
            chat_id=1,
            text="<b>" + "x" * 4096 + "</b>",  # the tags are not shown
            kind=MessageKind.SERVICE,
        )
        assert ok is not None
        assert visible_length("a &amp; b") == 5
        for text, photo in (
            ("x" * 4097, None),
            ("<i> </i>", None),
            ("y" * 1025, "SIMFILE1"),
        ):
            with pytest.raises(ValueError):
                await enqueue(
                    session,
                    clock,
                    CONFIG,
                    key=f"bad:{len(text)}",
                    chat_id=1,
                    text=text,
                    kind=MessageKind.SERVICE,
                    photo=photo,
                )
        with pytest.raises(ValueError):
            await enqueue(
                session, clock, CONFIG, key="", chat_id=1, text="x", kind=MessageKind.SERVICE
            )
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


async def test_enqueue_many_inserts_new_keys_and_skips_existing_ones(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    async with factory() as session:
        campaign = Campaign(name="spring", audience={"kind": "all"}, template="hi", created_at=T0)
        session.add(campaign)
        await session.flush()
        await session.execute(
            insert(Member),
            [
                {
                    "telegram_id": 10_000 + n,
                    "chat_id": 10_000 + n,
                    "member_code": f"B{n:07d}",
                    "timezone": "Asia/Shanghai" if n % 2 else "Europe/London",
                    "created_at": T0,
                }
                for n in range(5000)
            ],
        )
        members = (await session.execute(select(Member.id, Member.chat_id, Member.timezone))).all()

        def items(texts: str) -> list[OutboxItem]:
            return [
                OutboxItem(
                    key=f"campaign:{campaign.id}:{m.id}",
                    chat_id=m.chat_id,
                    text=f"{texts} {m.id}",
                    kind=MessageKind.MARKETING,
                    member_id=m.id,
                    timezone=m.timezone,
                    campaign_id=campaign.id,
                )
                for m in members
            ]

        await enqueue(
            session,
            clock,
            CONFIG,
            key=f"campaign:{campaign.id}:{members[0].id}",
            chat_id=members[0].chat_id,
            text="already queued",
            kind=MessageKind.MARKETING,
        )
        assert await enqueue_many(session, clock, CONFIG, iter(items("first"))) == 4999
        assert await enqueue_many(session, clock, CONFIG, items("second")) == 0
        await session.commit()
        counts = await campaign_counts(session, campaign.id)
        assert counts == {"queued": 4999, "sending": 0, "sent": 0, "failed": 0, "skipped": 0}
        texts = set(await session.scalars(select(OutboxMessage.text)))
        assert not any(text.startswith("second") for text in texts)
        # 03:00 UTC is 11:00 in Shanghai but 03:00 in London: those wait until 09:00 there.
        london_due = await session.scalar(
            select(func.min(OutboxMessage.not_before))
            .join(Member, Member.id == OutboxMessage.member_id)
            .where(Member.timezone == "Europe/London")
        )
        assert london_due == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        assert clock.now() + timedelta(hours=6) == london_due
