"""Engine and session factory: SQLite tuned for a bot, PostgreSQL through asyncpg."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.pool import ConnectionPoolEntry

from storage.sqlite_hops import adopt

SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_POOL_SIZE = 50
SQLITE_POOL_OVERFLOW = 10
# PostgreSQL: connections kept open for the updates in flight. An overflow connection is closed
# when it comes back and opening one costs a handshake, authentication and asyncpg's type set-up
# (milliseconds of CPU on both sides), so a busy bot keeps most of its connections in the pool
# itself; 25 a replica stays well inside the server's default 100.
PG_POOL_SIZE = 20
PG_POOL_OVERFLOW = 5
# A server connection unused this long is pinged before an update uses it (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 2.0
_IDLE_SINCE = "carebot_idle_since"


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = PG_POOL_SIZE,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
) -> AsyncEngine:
    """Build the async engine for ``url``; a SQLite file's folder is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # An update holds its connection from its first query to its commit, its reply in
        # between; readers do not block each other under WAL, so allow as many as the
        # updates a busy bot has in flight instead of queueing them for the pool's default 15.
        # They are kept, not opened per update: an overflow connection is closed when it comes
        # back, and opening one starts a thread and runs the PRAGMAs (~1 ms of CPU each time).
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_OVERFLOW,
        )
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=min(pool_size, PG_POOL_OVERFLOW)
    )
    _ping_when_idle(engine, ping_after_idle)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Test a pooled connection before use only when it sat idle for ``idle_seconds``.

    ``pool_pre_ping`` pays a round trip at every checkout, one per update, to catch the one
    connection in a long while that a server restart or a network cut left dead. A connection
    handed back a moment ago was alive a moment ago; one that idled may have died since, so only
    that one is pinged (a dead one is replaced without the update noticing). Should the server
    restart between two busy moments, the first statement on a dead connection fails as a
    transient error (a webhook update is then re-sent by Telegram) and SQLAlchemy invalidates
    the rest of the pool at once, so the next checkouts open fresh connections.
    """
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the pool drops it and takes another
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


def _tune_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    adopt(dbapi_connection)  # one thread trip per statement (storage/sqlite_hops.py)
    # WAL lets readers work while the one writer writes; NORMAL is durable at every
    # checkpoint and far faster than FULL; the busy timeout turns "database is locked"
    # into a short wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


class TrackedSession(Session):
    """A session that remembers whether it wrote anything (see ``wrote``)."""


@event.listens_for(TrackedSession, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    session.info["wrote"] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def wrote(session: AsyncSession) -> bool:
    """Whether this session has written, or is about to write, anything in its transaction:
    a read-only update needs no record that it was handled."""
    return bool(session.info.get("wrote") or session.new or session.dirty or session.deleted)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TrackedSession)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


# The unit of work of the update (or job) being handled in this task, if any. Code that is
# handed no session but must write in step with the update — the FSM storage — joins it, so
# state and data commit together and SQLite never sees two writers from one update.
_current_session: ContextVar[AsyncSession | None] = ContextVar("carebot_session", default=None)


def current_session() -> AsyncSession | None:
    return _current_session.get()


@asynccontextmanager
async def before_begin(session: AsyncSession) -> AsyncIterator[None]:
    """Reads that open a unit of work, run before its transaction begins (PostgreSQL).

    asyncpg begins a transaction at a unit of work's first statement: BEGIN is a round trip of
    its own, and COMMIT at the end another, so a read-only update that runs one SELECT pays
    three. Inside this block, on a session that has run nothing yet, the statements run in
    autocommit, each its own transaction, and no BEGIN is sent; the next statement after the
    block begins the unit of work's transaction as usual, and when none follows, its commit
    has nothing to send. Under READ COMMITTED, which carebot uses, every statement sees what
    was committed before it started, in a transaction or not, and a plain SELECT takes no
    lock on a row, so a read here sees what it would have seen as the transaction's first
    statement. Only reads belong in the block. Elsewhere (SQLite, or a session that has begun)
    it changes nothing.
    """
    if (
        session.in_transaction()
        or session.bind is None
        or session.bind.dialect.driver != "asyncpg"
    ):
        yield
        return
    connection = await session.connection()
    dbapi_connection = (await connection.get_raw_connection()).dbapi_connection
    if dbapi_connection is None:
        yield
        return
    dbapi_connection.autocommit = True
    try:
        yield
    finally:
        dbapi_connection.autocommit = False


@asynccontextmanager
async def unit_of_work(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session, committed once if the block succeeds; visible to ``current_session()``."""
    async with session_factory() as session:
        token = _current_session.set(session)
        try:
            yield session
            await session.commit()
        finally:
            _current_session.reset(token)
