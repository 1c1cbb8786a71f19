"""Shared fixtures: a movable clock, a migrated database, the Bot API simulator, a running bot."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bot.app import Services, create_bot, create_dispatcher, create_services
from bot.settings import Settings, load_settings
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from storage.db import create_engine
from storage.models import DEFAULT_TIERS, Base, Tier
from tests.simulator import BotAPISimulator, SimUser

TEST_TOKEN = "123456:TEST-token"
# A Monday, 11:00 in Shanghai: inside business hours, outside quiet hours.
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def postgres_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file with the schema; each test gets a copy (building per test is slow).

    Built from the models; ``test_migrations`` proves the migrations build the same schema.
    """
    path = tmp_path_factory.mktemp("template") / "carebot.db"

    async def _make() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        await engine.dispose()

    asyncio.run(_make())
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "carebot.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@asynccontextmanager
async def fresh_postgres_database(base_url: str) -> AsyncIterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"carebot_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL on each backend (Postgres only when TEST_POSTGRES_URL is set)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set (make test sets it when PostgreSQL answers)")
    async with fresh_postgres_database(base) as url:
        yield url


def make_settings(
    database_url: str, api_url: str = "http://127.0.0.1:1", **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TEST_TOKEN,
        "database_url": database_url,
        "telegram_api_url": api_url,
        "admin_ids": "900001",
        "default_locale": "zh",
        "shop_name": "Test Shop",
        "_env_file": None,
    }
    values.update(extra)
    return load_settings(**values)


@pytest.fixture
async def sim() -> AsyncIterator[BotAPISimulator]:
    async with BotAPISimulator() as simulator:
        yield simulator


@dataclass
class RunningBot:
    """The real dispatcher polling the simulator, with the handles a test needs."""

    sim: BotAPISimulator
    bot: Bot
    dp: Dispatcher
    services: Services
    clock: FrozenClock

    @property
    def config(self) -> CareConfig:
        return self.services.config

    def user(self, user_id: int = 1001, **kwargs: Any) -> SimUser:
        kwargs.setdefault("first_name", "Li")
        kwargs.setdefault("language_code", "zh")
        return self.sim.user(user_id=user_id, **kwargs)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for assertions, opened once the bot has committed what it was handling.

        (A reply reaches the user before the update's transaction commits.)
        """
        await self.dp["update_log"].wait_idle(5.0)
        async with self.services.session_factory() as session:
            yield session

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every update the bot is handling has finished (and committed).

        A reply reaches the user before the update's transaction commits; read the database
        after ``settle()``, not straight after the reply.
        """
        assert await self.dp["update_log"].wait_idle(timeout), "the bot is still busy"


def _one_person_after_another(dp: Dispatcher) -> Callable[[int | None], Awaitable[None]]:
    """Before someone acts after someone else did, the bot finishes (and commits) what it was
    handling. A reply reaches its reader before the update's transaction commits; a person who
    reads it and then another person who acts take far longer than that commit, but a test's
    two users act within the same millisecond. The wait is short: a commit takes milliseconds,
    and a handler kept busy on purpose (a slow preview) must not hold the other person up. One
    person's own updates are not held: their order, floods and overlaps are what several tests
    are about."""
    last: list[int | None] = [None]

    async def before_update(sender: int | None) -> None:
        if last[0] is not None and sender != last[0]:
            await dp["update_log"].wait_idle(0.25)  # a handler busy on purpose: go on
        last[0] = sender

    return before_update


@asynccontextmanager
async def running_bot(
    sim: BotAPISimulator, database_url: str, clock: FrozenClock, **settings: Any
) -> AsyncIterator[RunningBot]:
    services = create_services(make_settings(database_url, sim.base_url, **settings), clock)
    bot = create_bot(services.settings)
    dp = create_dispatcher(services)
    sim.before_update = _one_person_after_another(dp)
    polling = asyncio.create_task(
        dp.start_polling(
            bot,
            handle_signals=False,
            close_bot_session=False,
            polling_timeout=1,
            allowed_updates=dp.resolve_used_update_types(),
        )
    )
    try:
        yield RunningBot(sim=sim, bot=bot, dp=dp, services=services, clock=clock)
    finally:
        if not polling.done():
            await dp.stop_polling()
        await polling
        await bot.session.close()
        await services.engine.dispose()


@pytest.fixture
async def app(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[RunningBot]:
    async with running_bot(sim, sqlite_url, clock) as running:
        yield running


@pytest.fixture
def project_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent
