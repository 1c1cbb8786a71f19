"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, select

from storage import migrate
from storage.db import create_engine
from storage.models import DEFAULT_TIERS, Base, Tier


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrations_match_the_models(any_db_url: str) -> None:
    engine = create_engine(any_db_url)
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
            tiers = (await connection.execute(select(Tier.code).order_by(Tier.rank))).all()
        assert differences == []
        assert [row.code for row in tiers] == [tier["code"] for tier in DEFAULT_TIERS]
    finally:
        await engine.dispose()


async def test_every_migration_goes_down_and_up_again(any_db_url: str) -> None:
    """The stairway: each revision upgrades, downgrades to its parent, and upgrades again."""
    script = ScriptDirectory.from_config(migrate.alembic_config(any_db_url))
    revisions = list(reversed(list(script.walk_revisions())))
    engine = create_engine(any_db_url)
    try:
        for revision in revisions:
            await migrate.upgrade(engine, revision.revision)
            down = revision.down_revision
            assert down is None or isinstance(down, str), "a merge revision needs its own walk"
            await migrate.downgrade(engine, down or "base")
            await migrate.upgrade(engine, revision.revision)
        async with engine.connect() as connection:
            assert set(Base.metadata.tables) <= await connection.run_sync(_tables)
        await migrate.downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
    finally:
        await engine.dispose()
