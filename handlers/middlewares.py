"""Outer middlewares: one DB session per update, the member and their language, flood control."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update, User
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import normalize_locale, translator
from care.core.metrics import DUPLICATE_UPDATES
from care.core.updates import already_handled, record_handled
from care.members.membership import load_interests, update_context
from care.staff.directory import StaffDirectory
from storage.db import unit_of_work, wrote

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
log = logging.getLogger(__name__)


AfterCommit = Callable[[], Awaitable[Any]]
# What waits for the commit, in order; True for cosmetic actions (failures only logged).
_after_commit: ContextVar[list[tuple[AfterCommit, bool]] | None] = ContextVar(
    "after_commit", default=None
)


def _pending_after_commit() -> list[tuple[AfterCommit, bool]]:
    pending = _after_commit.get()
    if pending is None:
        raise RuntimeError("after_commit() outside an update's unit of work")
    return pending


def after_commit(action: AfterCommit) -> None:
    """Run ``action`` once this update's unit of work has committed (never if it rolls back).

    For cosmetic Bot API calls (command menus, chat actions) that follow a business change:
    they must not decide its fate, so they run after it, and their failure is only logged.
    Outside an update's unit of work there is nothing to wait for: use a task instead.
    """
    _pending_after_commit().append((action, True))


def reply_after_commit(send: AfterCommit) -> None:
    """Send a reply only once this update's unit of work has committed (never if it rolls back).

    For a flow that begins with a write: /start makes the member row and asks the first
    question. Sent at once, the question would go out before a commit that can still fail (a
    full disk, a serialization failure, a database gone read-only), followed by an error, and
    the person would answer a question about a registration that does not exist. Held, the
    person hears one thing: the question, or the error. Still one commit per update; a reply
    that fails after the commit is raised like any handler failure (the change is kept).
    """
    _pending_after_commit().append((send, False))


class DbSessionMiddleware(BaseMiddleware):
    """Opens one session per update and commits once, after the handler succeeded; then runs
    what the handler left for after the commit (``after_commit``, ``reply_after_commit``).

    An update that wrote anything commits its id in the same transaction, so when Telegram
    sends it again (on any replica) it is skipped (``MemberContextMiddleware`` asks, in the
    query it makes anyway) or, if both deliveries run at once, the second commit fails on the
    id: its effects never happen twice. A read-only update records nothing: handling it again
    only answers again.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.session_factory = session_factory
        self.clock = clock

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update_id = event.update_id if isinstance(event, Update) else None
        pending: list[tuple[AfterCommit, bool]] = []
        token = _after_commit.set(pending)
        try:
            async with unit_of_work(self.session_factory) as session:
                data["session"] = session
                result = await handler(event, data)
                if update_id is not None and wrote(session):
                    record_handled(session, update_id, self.clock.now())
        except IntegrityError:
            # The same update committed on another replica while this one handled it.
            if update_id is None or not await self._recorded(update_id):
                raise
            return duplicate_update(update_id)
        finally:
            _after_commit.reset(token)
        for action, cosmetic in pending:
            if not cosmetic:
                await action()
                continue
            try:
                await action()
            except Exception:  # cosmetic by contract: the change it follows is committed
                log.warning("an after-commit action failed", exc_info=True)
        return result

    async def _recorded(self, update_id: int) -> bool:
        async with self.session_factory() as session:
            return await already_handled(session, update_id)


def duplicate_update(update_id: int) -> Any:
    """Skip an update that was handled before, counted and logged."""
    DUPLICATE_UPDATES.inc()
    log.info("update %s was handled before; not handled again", update_id)
    return UNHANDLED


class MemberContextMiddleware(BaseMiddleware):
    """Loads the member behind the update, their staff role and the language to answer in.

    One SELECT for a member: the member row (without interests, which the handlers that show
    them load), the staff version, which keeps the in-process staff roles current, whether
    this update was handled before (then it is skipped), the tiers' fingerprint, and, when
    ``history_wanted`` says the update asks for it, the member's latest ledger entries.
    """

    def __init__(
        self,
        config: CareConfig,
        staff: StaffDirectory | None = None,
        history_wanted: Callable[[TelegramObject], int] | None = None,
    ) -> None:
        self.config = config
        self.staff = staff or StaffDirectory()
        self.history_wanted = history_wanted

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        update_id = event.update_id if isinstance(event, Update) else None
        session: AsyncSession = data["session"]
        member = None
        if user is not None:
            history = self.history_wanted(event) if self.history_wanted else 0
            context = await update_context(session, user.id, update_id, history)
            if context.handled_before and update_id is not None:
                return duplicate_update(update_id)
            member = context.member
            data["staff_role"] = await self.staff.role_of(
                session, self.config, user.id, context.staff_version
            )
            data["staff_role_known"] = True
        elif update_id is not None and await already_handled(session, update_id):
            return duplicate_update(update_id)
        data["member"] = member
        if member is not None:
            locale = member.locale
        else:
            locale = normalize_locale(
                user.language_code if user else None, self.config.default_locale
            )
        data["locale"] = locale
        data["t"] = translator(locale)
        return await handler(event, data)


class MemberInterestsMiddleware(BaseMiddleware):
    """For routers whose handlers show or change interests: loads them before the handler."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        member = data.get("member")
        if member is not None:
            await load_interests(data["session"], member)
        return await handler(event, data)


class FloodGate(Protocol):
    async def delay(self, user_id: int) -> float | None:
        """Seconds this user's update must wait for its turn; None when it is to be dropped."""


class MemoryFloodGate:
    """GCRA (a token bucket kept as one "theoretical arrival time" per user), in this process.

    Right for one process; several replicas share a ``RedisFloodGate`` instead.
    """

    def __init__(self, rate: float, burst: int, max_wait: float) -> None:
        self.interval = 1.0 / rate
        self.allowance = burst * self.interval
        self.max_wait = max_wait
        self._tat: dict[int, float] = {}

    async def delay(self, user_id: int) -> float | None:
        now = time.monotonic()
        new_tat = max(self._tat.get(user_id, now), now) + self.interval
        wait = new_tat - now - self.allowance
        if wait > self.max_wait:
            return None
        if len(self._tat) > 100_000:  # forget idle users now and then
            self._tat = {uid: tat for uid, tat in self._tat.items() if tat > now}
        self._tat[user_id] = new_tat
        return max(wait, 0.0)


# The same GCRA step, atomic in Redis and timed by the Redis server's clock.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local allowance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - allowance
if wait > max_wait then return '-1' end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
if wait < 0 then wait = 0 end
return tostring(wait)
"""


class RedisFloodGate:
    """GCRA shared by every replica through Redis."""

    def __init__(self, redis: Redis, rate: float, burst: int, max_wait: float) -> None:
        self.redis = redis
        self.args = (1.0 / rate, burst / rate, max_wait)
        self._script = redis.register_script(_GCRA_LUA)

    async def delay(self, user_id: int) -> float | None:
        answer = await self._script(keys=[f"carebot:flood:{user_id}"], args=list(self.args))
        wait = float(answer)
        return None if wait < 0 else wait


class ThrottlingMiddleware(BaseMiddleware):
    """A flooding shopper is slowed down; everyone else is not.

    Each user gets ``burst`` updates at once and then ``rate`` a second: a faster update waits
    its turn (only that user's updates queue up behind it, under per-user event isolation), and
    one that would wait longer than ``max_wait`` is dropped with a single polite warning.
    """

    def __init__(
        self,
        gate: FloodGate | None = None,
        *,
        rate: float = 3.0,
        burst: int = 6,
        max_wait: float = 3.0,
    ) -> None:
        self.gate = gate or MemoryFloodGate(rate, burst, max_wait)
        self._warned: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        wait = await self.gate.delay(user.id)
        if wait is not None:
            if wait > 0:
                await asyncio.sleep(wait)
            return await handler(event, data)
        log.info("dropped an update of flooding user %s", user.id)
        now = time.monotonic()
        if now - self._warned.get(user.id, -60.0) > 10.0:
            self._warned[user.id] = now
            bot = data.get("bot")
            chat = data.get("event_chat")
            if bot is not None and chat is not None:
                t = data.get("t") or translator(normalize_locale(user.language_code))
                await bot.send_message(chat.id, t("common.too_fast"))
        return None
