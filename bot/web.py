"""The HTTP side of the bot: Telegram's webhook, health checks and Prometheus metrics.

**The webhook's promise.** A 2xx tells Telegram the update arrived and will never be sent again,
so an update is answered only after it was handled and its unit of work committed. When the
handling failed for a reason that may pass (the database or Redis unreachable, the Bot API
down), the answer is 503 and Telegram sends the update again later; a handler still running after
``HANDLE_TIMEOUT`` (Telegram gives up on a request after about a minute) is also answered 503
and keeps running. Either way a second delivery is harmless: the update's id commits with its
effects (``processed_updates``) and an update handled once is skipped. aiogram's
``SimpleRequestHandler`` answers 200 before handling (or after its own 55 s), which is why the
handler here is our own.

**Health.** ``/healthz``: the process is alive. ``/readyz``: it is ready for traffic — migrations
are done and the database (and Redis, when configured) answered just now; 503 with the reason
otherwise. ``/metrics``: Prometheus text format, the outbox depth read at scrape time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.types import TelegramObject, Update
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from care.core.metrics import HANDLER_ERRORS, OUTBOX_DEPTH, UPDATE_SECONDS, UPDATES
from care.messaging.outbox import outbox_depth

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
HANDLE_TIMEOUT = 50.0
PROBE_TIMEOUT = 2.0


class RetryLater(Exception):
    """Handling failed for a passing reason: Telegram is to send the update again."""


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts updates and times them; the outermost of ours, so it sees every failure."""

    def __init__(self) -> None:
        self._ok = UPDATES.labels("ok")  # looked up once: ``labels`` takes a lock each call

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        started = time.perf_counter()
        try:
            result = await handler(event, data)
        except Exception as exc:
            UPDATES.labels("error").inc()
            HANDLER_ERRORS.labels(type(exc).__name__).inc()
            raise
        finally:
            UPDATE_SECONDS.observe(time.perf_counter() - started)
        self._ok.inc()
        return result


class WebFront:
    """One aiohttp application for the webhook (if any) and the health and metrics routes.

    It starts before migrations run, so ``/readyz`` can say "migrating"; the webhook route
    answers 503 until ``attach`` hands it the dispatcher.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        redis_url: str | None = None,
        webhook_path: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.engine = engine
        self.session_factory = session_factory
        self.redis_url = redis_url
        self.webhook_secret = webhook_secret
        self.state = "starting"
        self.dp: Dispatcher | None = None
        self.bot: Bot | None = None
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.metrics)
        if webhook_path is not None:
            self.app.router.add_post(webhook_path, self.webhook)
        self._runner: web.AppRunner | None = None
        self._redis: Any = None

    def attach(self, dp: Dispatcher, bot: Bot) -> None:
        self.dp, self.bot = dp, bot

    async def start(self, listen: str) -> None:
        host, port = listen.rsplit(":", 1)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, int(port)).start()
        log.info("health and metrics on http://%s/healthz, /readyz, /metrics", listen)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # ------------------------------------------------------------------ health
    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, _request: web.Request) -> web.Response:
        if self.state != "ready":
            return web.Response(status=503, text=self.state)
        problems = await self.problems()
        if problems:
            return web.Response(status=503, text="; ".join(problems))
        return web.Response(text="ready")

    async def problems(self) -> list[str]:
        """What keeps this replica from serving now: unreachable database or Redis."""
        found = []
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:  # any failure to answer means "not ready"
            found.append(f"database unreachable: {type(exc).__name__}")
        if self.redis_url:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    await self._redis_client().ping()
            except Exception as exc:
                found.append(f"redis unreachable: {type(exc).__name__}")
        return found

    def _redis_client(self) -> Any:
        if self._redis is None:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(self.redis_url or "", socket_timeout=PROBE_TIMEOUT)
        return self._redis

    async def metrics(self, _request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self.session_factory() as session:
                depth = await outbox_depth(session)
        except Exception:  # the metrics still answer; the depth keeps its last value
            log.warning("could not read the outbox depth for /metrics", exc_info=True)
        else:
            OUTBOX_DEPTH.clear()
            for (state, kind), count in depth.items():
                OUTBOX_DEPTH.labels(state, kind).set(count)
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ----------------------------------------------------------------- webhook
    async def webhook(self, request: web.Request) -> web.Response:
        secret = request.headers.get(SECRET_HEADER, "")
        if not self.webhook_secret or not secrets.compare_digest(secret, self.webhook_secret):
            return web.Response(status=401, text="Unauthorized")
        dp, bot = self.dp, self.bot
        if dp is None or bot is None or self.state != "ready":
            return web.Response(status=503, text=self.state)
        try:
            body = orjson.loads(await request.read())
            update = Update.model_validate(body, context={"bot": bot})
        except (ValueError, ValidationError):  # orjson.JSONDecodeError is a ValueError
            log.warning("a webhook post that is not an update was refused")
            return web.Response(status=400, text="not an update")
        handling = asyncio.ensure_future(dp.feed_update(bot, update))
        try:
            await asyncio.wait_for(asyncio.shield(handling), HANDLE_TIMEOUT)
        except TimeoutError:
            # Still running: it commits or fails on its own; the re-sent copy is skipped
            # if it committed, handled if it did not.
            UPDATES.labels("retry").inc()
            log.warning("update %s is taking long; Telegram will send it again", update.update_id)
            return web.Response(status=503, text="still handling")
        except Exception as exc:
            UPDATES.labels("retry").inc()
            log.warning(
                "update %s not handled (%s); Telegram will send it again",
                update.update_id,
                type(exc.__cause__ or exc).__name__,
            )
            return web.Response(status=503, text="retry later")
        return web.json_response({})
