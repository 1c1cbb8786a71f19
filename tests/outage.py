"""Database outages on demand, for tests of what the bot promises when its database goes away.

* SQLite: every statement fails as an unreadable database file does, until ``up()``.
* PostgreSQL: the engine talks to the server through a TCP proxy; ``down()`` drops every
  connection and refuses new ones, as a network partition or a server restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine


class SqliteOutage:
    def __init__(self) -> None:
        self.is_down = False

    def attach(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "before_cursor_execute", self._check)

    def _check(self, *_args: Any, **_kwargs: Any) -> None:
        if self.is_down:
            raise sqlite3.OperationalError("unable to open database file")

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False


class TcpOutage:
    """A TCP proxy in front of a database server that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.is_down = False
        self.listen_port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.listen_port = self._server.sockets[0].getsockname()[1]

    def url_for(self, url: str) -> str:
        """``url`` rewritten to reach its server through this proxy."""
        return make_url(url).set(host="127.0.0.1", port=self.listen_port).render_as_string(False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    def down(self) -> None:
        self.is_down = True
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def up(self) -> None:
        self.is_down = False

    async def stop(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
