"""One trip to aiosqlite's thread per SQLite statement instead of four.

aiosqlite runs every sqlite3 call on its own thread, and SQLAlchemy's adapter makes one call per
cursor step: open the cursor, execute, fetch the rows, close the cursor; then one more for a
commit even when the transaction only read. Each trip wakes the thread and the event loop again
(a queue put, a future, the loop's self-pipe), which costs far more CPU than a small indexed
SELECT on a loaded machine: about 19 trips for one update before this module.

``OneTripConnection`` takes the adapter's place on every new connection (``adopt``): a statement
runs start to finish — cursor, execute, rows, close — in a single function on aiosqlite's thread,
and a commit or rollback with no transaction open (sqlite3 opens one only before a write) is
answered without a trip. Hand-written because neither SQLAlchemy nor aiosqlite offers it; it
leans on two aiosqlite internals (``Connection._execute`` and ``Connection._conn``), which
tests/test_sqlite_hops.py exercises.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_


def _run(
    raw: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any] | None, int, int | None]:
    """On aiosqlite's thread: the whole statement, its rows and counts."""
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement is one trip; its rows are kept here, as the adapter does."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # No aiosqlite cursor: the statement makes and closes its own sqlite3 cursor.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        connection = self._connection
        try:
            description, rows, rowcount, lastrowid = await_(
                connection._execute(_run, connection._conn, operation, parameters, many)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description = description
        self._rows = deque(rows) if rows else deque()
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._trip(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._trip(operation, seq_of_parameters, many=True)

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        return None

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the thread between statements

    def close(self) -> None:
        self._rows.clear()

    def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        rows = self._rows
        count = len(rows) if size is None else min(size, len(rows))
        return [rows.popleft() for _ in range(count)]


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The adapter's connection with one-trip cursors and trip-free empty commits."""

    __slots__ = ()

    _cursor_cls = OneTripCursor

    def _in_transaction(self) -> bool:
        aio = self._connection
        if not aio._connection:  # closed: let the adapter say so
            return True
        return bool(aio._conn.in_transaction)

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()


def adopt(dbapi_connection: Any) -> None:
    """Make a freshly made adapter connection a ``OneTripConnection`` (same slots, same state).

    Server-side cursors (``stream()``) keep aiosqlite's own, row by row.
    """
    if type(dbapi_connection) is AsyncAdapt_aiosqlite_connection:
        dbapi_connection.__class__ = OneTripConnection
