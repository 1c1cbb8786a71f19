"""A pooled PostgreSQL connection that died while idle (a server restart, a cut network) is
replaced before an update uses it, without a ping round trip on every checkout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db import create_engine
from tests.conftest import fresh_postgres_database, postgres_url


async def _kill_other_backends(admin_url: str, database: str) -> int:
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            killed = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            )
            return int(killed or 0)
    finally:
        await admin.dispose()


@pytest.mark.parametrize("idle_ping", [True, False])
async def test_a_connection_killed_while_idle_is_replaced_before_use(idle_ping: bool) -> None:
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set (make test sets it when PostgreSQL answers)")
    async with fresh_postgres_database(base) as url:
        # idle_ping False: a threshold never reached, as with no ping at all (the control).
        engine = create_engine(url, pool_size=2, ping_after_idle=0.2 if idle_ping else 3600)
        dialect = engine.sync_engine.dialect
        real_ping = dialect.do_ping
        pings: list[object] = []

        def counted_ping(dbapi_connection: Any) -> bool:
            pings.append(dbapi_connection)
            return real_ping(dbapi_connection)

        dialect.do_ping = counted_ping  # type: ignore[method-assign]
        try:
            async with engine.connect() as connection:  # one connection into the pool
                assert await connection.scalar(text("SELECT 1")) == 1
            assert await _kill_other_backends(base, url.rsplit("/", 1)[1]) == 1
            await asyncio.sleep(0.3)
            if idle_ping:
                async with engine.connect() as connection:
                    assert await connection.scalar(text("SELECT 2")) == 2
                assert len(pings) == 1
            else:
                with pytest.raises(DBAPIError):
                    async with engine.connect() as connection:
                        await connection.scalar(text("SELECT 2"))

            # Busy: a connection handed back a moment ago is used without a ping.
            async with engine.connect() as connection:
                await connection.scalar(text("SELECT 3"))
            calls = len(pings)
            async with engine.connect() as connection:
                await connection.scalar(text("SELECT 4"))
            assert len(pings) == calls
        finally:
            await engine.dispose()
