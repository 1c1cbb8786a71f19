"""One aiosqlite thread trip per SQLite statement (storage/sqlite_hops.py), same results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine, create_session_factory, unit_of_work
from storage.sqlite_hops import OneTripConnection


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'hops.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        await connection.execute(text("INSERT INTO t (v) VALUES ('a'), ('b')"))
    yield engine
    await engine.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to aiosqlite's thread, by name."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return seen


async def test_a_read_only_unit_of_work_is_one_trip_per_statement(
    engine: AsyncEngine, trips: list[str]
) -> None:
    factory = create_session_factory(engine)
    async with unit_of_work(factory) as session:
        first = (await session.execute(text("SELECT v FROM t WHERE id = 1"))).scalar_one()
        both = (await session.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        assert type(raw.dbapi_connection) is OneTripConnection
        trips.clear()
        await session.execute(text("SELECT 1"))
    assert (first, both) == ("a", ["a", "b"])
    # One statement, no trip for the commit of a transaction that only read.
    assert trips == ["_run"]


async def test_writes_commit_and_roll_back_with_their_counts(
    engine: AsyncEngine, trips: list[str]
) -> None:
    factory = create_session_factory(engine)
    async with unit_of_work(factory) as session:
        inserted = await session.execute(text("INSERT INTO t (v) VALUES ('c') RETURNING id"))
        assert inserted.scalar_one() == 3
        updated = await session.execute(text("UPDATE t SET v = 'z' WHERE v IN ('a', 'b')"))
        assert isinstance(updated, CursorResult) and updated.rowcount == 2
    assert "commit" in trips
    with pytest.raises(RuntimeError):
        async with unit_of_work(factory) as session:
            await session.execute(text("DELETE FROM t"))
            raise RuntimeError("the handler failed")
    async with unit_of_work(factory) as session:
        values = (await session.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        streamed = [v async for v in (await session.stream_scalars(text("SELECT v FROM t")))]
    assert values == ["z", "z", "c"]
    assert sorted(streamed) == sorted(values)


async def test_statement_errors_are_the_drivers(engine: AsyncEngine) -> None:
    factory = create_session_factory(engine)
    with pytest.raises(Exception, match="no such table"):
        async with unit_of_work(factory) as session:
            await session.execute(text("SELECT * FROM missing"))
    async with unit_of_work(factory) as session:  # the connection is still good
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 2
