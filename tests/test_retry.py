"""The one retry policy (care.core.retry), the coverage record the scheduler and the engine
share (care.core.jobs), and the one "is this offer usable" predicate (care.loyalty.offers)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core import jobs, retry
from care.core.clock import FrozenClock
from care.core.retry import RetryPolicy, is_contention
from care.loyalty.offers import offer_usable, usable_offers
from storage.db import create_engine, create_session_factory
from storage.enums import OfferKind
from storage.models import Base, JobState, Offer

Factory = async_sessionmaker[AsyncSession]


def locked() -> OperationalError:
    return OperationalError("UPDATE x", {}, sqlite3.OperationalError("database is locked"))


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(retry.asyncio, "sleep", sleep)
    return slept


async def test_a_locked_database_is_tried_again_with_growing_pauses(sleeps: list[float]) -> None:
    calls: list[str] = []

    async def work() -> str:
        calls.append("work")
        if calls.count("work") < 3:
            raise locked()
        return "done"

    async def reload() -> None:
        calls.append("reload")

    assert await RetryPolicy().run(work, before_retry=reload) == "done"
    assert calls == ["work", "reload", "work", "reload", "work"]
    assert sleeps == [0.05, 0.1]


async def test_retries_are_bounded(sleeps: list[float]) -> None:
    tries = 0

    async def work() -> None:
        nonlocal tries
        tries += 1
        raise locked()

    with pytest.raises(OperationalError):
        await RetryPolicy(attempts=4).run(work)
    assert tries == 4 and len(sleeps) == 3


async def test_other_failures_are_raised_at_once(sleeps: list[float]) -> None:
    tries = 0

    async def work() -> None:
        nonlocal tries
        tries += 1
        raise IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    with pytest.raises(IntegrityError):
        await RetryPolicy().run(work)
    assert tries == 1 and sleeps == []


def test_contention_is_locks_serialization_and_deadlocks_only() -> None:
    assert is_contention(locked())
    for text in ("could not serialize access", "deadlock detected", "database is busy"):
        assert is_contention(OperationalError("x", {}, Exception(text)))
    assert not is_contention(OperationalError("x", {}, Exception("no such table: members")))
    assert not is_contention(ValueError("database is locked"))


@pytest.fixture
async def db(any_db_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def test_coverage_only_moves_forward(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    async with db() as session:
        assert await jobs.covered_until(session, "job") is None
        await jobs.mark_covered(session, "job", now)
        # A slower pass that started earlier finishes later: it must not undo the newer one.
        await jobs.mark_covered(session, "job", now - timedelta(minutes=1))
    async with db() as session:
        state = await session.get_one(JobState, "job")
        assert state.covered_until == now
        assert state.last_run_at == now - timedelta(minutes=1)
        await jobs.mark_covered(session, "job", now + timedelta(minutes=1))
        assert await jobs.covered_until(session, "job") == now + timedelta(minutes=1)


async def test_offer_usable_reads_the_same_in_python_and_in_sql(
    db: Factory, clock: FrozenClock
) -> None:
    now = clock.now()
    shapes = {
        "open": (True, None),
        "running": (True, now + timedelta(days=1)),
        "ended": (True, now - timedelta(seconds=1)),
        "ends_now": (True, now),
        "switched_off": (False, None),
    }
    async with db() as session:
        await session.execute(
            insert(Offer),
            [
                {
                    "title": title, "kind": str(OfferKind.PERCENT_OFF), "value": 10,
                    "currency": "CNY", "min_spend_minor": 0, "is_active": active,
                    "valid_until": until, "created_at": now,
                }
                for title, (active, until) in shapes.items()
            ],
        )  # fmt: skip
        offers = list(await session.scalars(select(Offer)))
        in_sql = set(await session.scalars(select(Offer.title).where(usable_offers(now))))
    in_python = {offer.title for offer in offers if offer_usable(offer, now)}
    assert in_python == in_sql == {"open", "running"}
    assert not offer_usable(None, now)
