"""Insert a row unless a unique key already holds one, atomically, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignoring_conflicts(
    session: AsyncSession, target: Any, index_elements: Sequence[str]
) -> Insert | None:
    """``INSERT … ON CONFLICT (index_elements) DO NOTHING`` for the session's database, or None
    where the dialect has no such statement (the caller then falls back to a savepoint).

    ``target`` is a mapped class (rows come back as ORM objects) or a table (bulk rows).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(target).on_conflict_do_nothing(index_elements=list(index_elements))
    if dialect == "sqlite":
        return sqlite_insert(target).on_conflict_do_nothing(index_elements=list(index_elements))
    return None


async def insert_many_unless_exists(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], key: str
) -> set[Any]:
    """Insert ``rows`` in one statement, skipping those whose ``key`` is taken already; returns
    the keys that were inserted. (SQLite and PostgreSQL; other backends row by row.)"""
    if not rows:
        return set()
    statement = insert_ignoring_conflicts(session, table, [key])
    if statement is not None:
        keys = await session.scalars(statement.values(rows).returning(table.c[key]))
        return set(keys.all())
    inserted: set[Any] = set()
    for row in rows:
        if await insert_unless_exists(session, table, row, key) is not None:
            inserted.add(row[key])
    return inserted


async def insert_unless_exists(
    session: AsyncSession, table: Table, values: dict[str, Any], key: str
) -> int | None:
    """Insert ``values`` and return the new row's id, or None when ``key`` is taken already.

    ``INSERT … ON CONFLICT DO NOTHING`` on both supported backends: two writers racing on the
    same key never raise, and exactly one of them inserts. Other backends use a savepoint.
    """
    statement = insert_ignoring_conflicts(session, table, [key])
    if statement is not None:
        return await session.scalar(statement.values(**values).returning(table.c.id))
    existing = await session.scalar(select(table.c.id).where(table.c[key] == values[key]))
    if existing is not None:
        return None
    try:
        async with session.begin_nested():
            return await session.scalar(insert(table).values(**values).returning(table.c.id))
    except IntegrityError:
        return None
