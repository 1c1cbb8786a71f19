"""Insert a row unless a unique key already holds one, atomically, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


async def insert_many_unless_exists(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], key: str
) -> set[Any]:
    """Insert ``rows`` in one statement, skipping those whose ``key`` is taken already; returns
    the keys that were inserted. (SQLite and PostgreSQL; other backends row by row.)"""
    if not rows:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect in ("sqlite", "postgresql"):
        make = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = (
            make(table).values(rows).on_conflict_do_nothing(index_elements=[key])
        ).returning(table.c[key])
        return set((await session.scalars(statement)).all())
    inserted = set()
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
    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect in ("sqlite", "postgresql"):
        make = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = (
            make(table).values(**values).on_conflict_do_nothing(index_elements=[key])
        ).returning(table.c.id)
        return await session.scalar(statement)
    existing = await session.scalar(select(table.c.id).where(table.c[key] == values[key]))
    if existing is not None:
        return None
    try:
        async with session.begin_nested():
            return await session.scalar(insert(table).values(**values).returning(table.c.id))
    except IntegrityError:
        return None
