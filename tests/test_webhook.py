"""Webhook mode keeps Telegram's promise: an update answered 2xx was handled and committed.

A database outage in the middle of webhook traffic loses nothing — Telegram (the simulator)
is answered 503 and sends the updates again until the database is back — and an update sent
twice has its effect once. /readyz tells the outage; /healthz only that the process lives.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiohttp import ClientSession
from prometheus_client import generate_latest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.app import Services, create_bot, create_dispatcher, create_services, create_web_front
from bot.web import SECRET_HEADER, WebFront
from care.core.clock import FrozenClock
from care.core.updates import KEEP_PROCESSED, already_handled, prune_handled, record_handled
from storage import migrate
from storage.db import create_engine, create_session_factory
from storage.enums import StaffRole
from storage.models import Member, ProcessedUpdate, Purchase
from tests.conftest import fresh_postgres_database, make_settings, postgres_url
from tests.journey_helpers import eventually
from tests.outage import SqliteOutage, TcpOutage
from tests.simulator import BotAPISimulator
from tests.staff_helpers import make_member, make_staff

SECRET = "webhook-secret-0123456789"
CASHIER_ID = 800002
CODE = "K7QX2M9P"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebhookBot:
    sim: BotAPISimulator
    services: Services
    bot: Bot
    dp: Dispatcher
    front: WebFront
    url: str
    base: str
    outage: Any


@asynccontextmanager
async def outage_for(backend: str, tmp_url: str) -> AsyncIterator[tuple[str, Any]]:
    """(the URL the bot uses, the outage switch) for ``backend``."""
    if backend == "sqlite":
        yield tmp_url, SqliteOutage()
        return
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set (make test sets it when PostgreSQL answers)")
    async with fresh_postgres_database(base) as url:
        parsed = make_url(url)
        proxy = TcpOutage(parsed.host or "127.0.0.1", parsed.port or 5432)
        await proxy.start()
        try:
            yield proxy.url_for(url), proxy
        finally:
            await proxy.stop()


@asynccontextmanager
async def webhook_bot(
    sim: BotAPISimulator, database_url: str, outage: Any, clock: FrozenClock
) -> AsyncIterator[WebhookBot]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    settings = make_settings(
        database_url,
        sim.base_url,
        webhook_url=url,
        webhook_secret=SECRET,
        webhook_listen=f"127.0.0.1:{port}",
    )
    services = create_services(settings, clock)
    if isinstance(outage, SqliteOutage):
        outage.attach(services.engine)  # the SQLite test file comes with its schema
    else:
        await migrate.upgrade(services.engine)
    bot = create_bot(settings)
    dp = create_dispatcher(services)
    dp["retry_transient"] = True
    front = create_web_front(services)
    await front.start(settings.webhook_listen)
    front.attach(dp, bot)
    front.state = "ready"
    await bot.set_webhook(url, secret_token=SECRET)
    try:
        yield WebhookBot(sim, services, bot, dp, front, url, f"http://127.0.0.1:{port}", outage)
    finally:
        outage.up()
        await bot.delete_webhook()
        await front.stop()
        await bot.session.close()
        await services.engine.dispose()


async def purchases(app: WebhookBot) -> int:
    async with app.services.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Purchase)) or 0)


def answered(sim: BotAPISimulator, count: int) -> Callable[[], Awaitable[bool]]:
    """Telegram got a 2xx for ``count`` updates: they were handled and committed."""

    async def check() -> bool:
        return sim.stats.updates_delivered >= count

    return check


async def status_of(http: ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_outage_loses_no_update_and_a_resent_update_counts_once(
    backend: str, sqlite_url: str, clock: FrozenClock
) -> None:
    async with (
        outage_for(backend, sqlite_url) as (url, outage),
        BotAPISimulator() as sim,
        webhook_bot(sim, url, outage, clock) as app,
        ClientSession() as http,
    ):
        async with app.services.session_factory() as session:
            member = await make_member(session, app.services.config, clock, 2001, "Li Lei")
            member.member_code = CODE
            await make_staff(session, app.services.config, clock, CASHIER_ID, StaffRole.CASHIER)
            await session.commit()
        cashier = sim.user(CASHIER_ID, first_name="Qian", language_code="en")
        await cashier.send(f"/purchase {CODE} 50")
        await cashier.expect("Li Lei", timeout=10)
        await eventually(answered(sim, 1), "Telegram got its 2xx")
        assert await purchases(app) == 1
        assert await status_of(http, f"{app.base}/readyz") == 200

        app.outage.down()
        shopper = sim.user(5101, first_name="Mei", language_code="en")
        await cashier.send(f"/purchase {CODE} 20")
        await shopper.send("/start")
        # Telegram is told to try again, so the updates stay with it; nobody is told "error".
        await asyncio.sleep(1.5)
        stuck = sim.pending_updates
        assert len(stuck) == 2
        assert sim.stats.updates_delivered == 1
        assert not shopper.messages
        assert await status_of(http, f"{app.base}/readyz") == 503
        assert await status_of(http, f"{app.base}/healthz") == 200

        app.outage.up()
        await cashier.expect("20", timeout=15)
        await shopper.next_message(timeout=15)
        await eventually(answered(sim, 3), "Telegram has no update left to send")
        assert not sim.pending_updates
        assert await status_of(http, f"{app.base}/readyz") == 200
        assert await purchases(app) == 2
        async with app.services.session_factory() as session:
            assert await session.scalar(select(Member).where(Member.telegram_id == 5101))
            handled = set(await session.scalars(select(ProcessedUpdate.update_id)))
        assert {update["update_id"] for update in stuck} <= handled

        # Telegram sends the purchase again (its answer was lost, say): booked once, not twice.
        cashier_messages = len(cashier.messages)
        purchase_update = next(u for u in stuck if "/purchase" in u["message"]["text"])
        for _ in range(2):
            async with http.post(
                app.url, json=purchase_update, headers={SECRET_HEADER: SECRET}
            ) as response:
                assert response.status == 200
        assert await purchases(app) == 2
        assert len(cashier.messages) == cashier_messages
        metrics = generate_latest().decode()
        assert "carebot_duplicate_updates_total" in metrics
        assert 'carebot_updates_total{outcome="retry"}' in metrics


async def test_metrics_and_health_answer_over_http(sqlite_url: str, clock: FrozenClock) -> None:
    async with (
        BotAPISimulator() as sim,
        webhook_bot(sim, sqlite_url, SqliteOutage(), clock) as app,
        ClientSession() as http,
    ):
        user = sim.user(5201, first_name="Hua", language_code="zh")
        await user.send("/help")
        await user.next_message(timeout=10)
        async with http.get(f"{app.base}/metrics") as response:
            assert response.status == 200
            body = await response.text()
        for name in (
            "carebot_updates_total",
            "carebot_update_seconds_bucket",
            "carebot_handler_errors_total",
            "carebot_outbox_messages",
            "carebot_sends_total",
            "carebot_scheduler_runs_total",
            "carebot_scheduler_leader",
        ):
            assert name in body, name
        app.front.state = "migrating"
        async with http.get(f"{app.base}/readyz") as response:
            assert response.status == 503
            assert await response.text() == "migrating"
        # Until ready, the webhook asks Telegram to come back later rather than take updates.
        async with http.post(app.url, json={}, headers={SECRET_HEADER: SECRET}) as response:
            assert response.status == 503
        async with http.post(app.url, json={}, headers={SECRET_HEADER: "wrong"}) as response:
            assert response.status == 401


async def test_update_ids_are_forgotten_once_telegram_cannot_send_them_again(
    sqlite_url: str, clock: FrozenClock
) -> None:
    engine = create_engine(sqlite_url)
    factory = create_session_factory(engine)
    try:
        async with factory() as session, session.begin():
            record_handled(session, 1, clock.now() - KEEP_PROCESSED - timedelta(minutes=1))
            record_handled(session, 2, clock.now() - timedelta(hours=23))
        assert await prune_handled(factory, clock.now()) == 1
        async with factory() as session:
            assert not await already_handled(session, 1)
            assert await already_handled(session, 2)
    finally:
        await engine.dispose()
