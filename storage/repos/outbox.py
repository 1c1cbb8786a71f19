"""The outbox: inserting idempotently, claiming due rows, and recording delivery results.

Everything here is set-based and portable: the same statements run on SQLite and PostgreSQL.
Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (so several replicas drain one table) and
rely on SQLite's single writer plus a ``status = 'queued'`` guard there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Insert,
    and_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MemberStatus, MessageKind, OutboxStatus
from storage.models import Member, OutboxMessage
from storage.repos.upsert import insert_ignoring_conflicts
from storage.types import UTCDateTime

OUTBOX = OutboxMessage.__table__

# One executemany statement records any delivery result: unset values keep the column.
_RECORD = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        skip_reason=bindparam("new_skip_reason"),
        last_error=bindparam("new_last_error"),
        telegram_message_id=func.coalesce(
            bindparam("new_message_id", type_=OUTBOX.c.telegram_message_id.type),
            OUTBOX.c.telegram_message_id,
        ),
        sent_at=func.coalesce(bindparam("new_sent_at", type_=UTCDateTime()), OUTBOX.c.sent_at),
        not_before=func.coalesce(
            bindparam("new_not_before", type_=UTCDateTime()), OUTBOX.c.not_before
        ),
        chat_id=func.coalesce(
            bindparam("new_chat_id", type_=OUTBOX.c.chat_id.type), OUTBOX.c.chat_id
        ),
        attempts=OUTBOX.c.attempts + bindparam("attempts_delta"),
        locked_until=None,
    )
)

CLAIM_TRIES = 3
CLAIM_COLUMNS = (
    OUTBOX.c.id,
    OUTBOX.c.member_id,
    OUTBOX.c.chat_id,
    OUTBOX.c.kind,
    OUTBOX.c.text,
    OUTBOX.c.photo,
    OUTBOX.c.media_kind,
    OUTBOX.c.reply_markup,
    OUTBOX.c.attempts,
)


class OutboxRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self, target: Any = OutboxMessage) -> Insert | None:
        """The conflict-ignoring INSERT on the idempotency key, or None (savepoint fallback)."""
        return insert_ignoring_conflicts(self.session, target, ["idempotency_key"])

    async def key_exists(self, key: str) -> bool:
        found = await self.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
        )
        return found is not None

    async def add_if_new(self, values: Mapping[str, Any]) -> OutboxMessage | None:
        """Insert one row unless its idempotency key exists; None for a duplicate."""
        statement = self._insert()
        if statement is not None:
            stmt = statement.values(**values).returning(OutboxMessage)
            return (await self.session.scalars(stmt)).first()
        if await self.key_exists(values["idempotency_key"]):
            return None
        message = OutboxMessage(**values)
        try:
            async with self.session.begin_nested():
                self.session.add(message)
        except IntegrityError:
            return None
        return message

    async def add_many_if_new(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert rows whose keys are new (existing keys are skipped); how many went in."""
        if not rows:
            return 0
        statement = self._insert(OUTBOX)
        if statement is not None:
            stmt = statement.returning(OUTBOX.c.id)
            result = await self.session.execute(stmt, [dict(row) for row in rows])
            return len(result.fetchall())
        keys = [row["idempotency_key"] for row in rows]
        existing = set(
            await self.session.scalars(
                select(OutboxMessage.idempotency_key).where(
                    OutboxMessage.idempotency_key.in_(keys)
                )
            )
        )
        added = 0
        for row in rows:
            if row["idempotency_key"] in existing:
                continue
            existing.add(row["idempotency_key"])
            if await self.add_if_new(row) is not None:
                added += 1
        return added

    async def claim_due(
        self,
        now: datetime,
        lease_until: datetime,
        limit: int,
        *,
        marketing: bool,
    ) -> list[Any]:
        """Move up to ``limit`` due rows of one priority class to ``sending`` with a lease.

        Non-marketing rows (alerts, service answers) are claimed before marketing so that a
        ticket answer never waits behind a large broadcast.
        """
        kind_filter = (
            OUTBOX.c.kind == MessageKind.MARKETING
            if marketing
            else OUTBOX.c.kind.in_([kind.value for kind in MessageKind if kind != "marketing"])
        )
        due = (
            select(OUTBOX.c.id)
            .where(
                OUTBOX.c.status == OutboxStatus.QUEUED,
                kind_filter,
                OUTBOX.c.not_before <= now,
            )
            .order_by(OUTBOX.c.not_before, OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # Two statements on purpose: PostgreSQL may run an IN (… LIMIT … SKIP LOCKED) subquery
        # more than once inside an UPDATE and claim far more than ``limit`` rows. The SELECT
        # locks the ids there; on SQLite the status guard below settles any race.
        for _ in range(CLAIM_TRIES):
            ids = list(await self.session.scalars(due))
            if not ids:
                return []
            stmt = (
                update(OUTBOX)
                .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == OutboxStatus.QUEUED)
                .values(status=OutboxStatus.SENDING, locked_until=lease_until)
                .returning(*CLAIM_COLUMNS)
            )
            rows = list((await self.session.execute(stmt)).all())
            if rows:
                rows.sort(key=lambda row: row.id)
                return rows
            # Another worker claimed every one of them first (SQLite): this transaction now
            # holds the write lock, so the next look sees what is really left.
        return []

    async def member_states(self, member_ids: Sequence[int]) -> dict[int, Any]:
        """Reachability and consent of the given members, read in one query."""
        if not member_ids:
            return {}
        result = await self.session.execute(
            select(
                Member.id,
                Member.status,
                Member.deleted_at,
                Member.blocked_at,
                Member.marketing_opt_in,
            ).where(Member.id.in_(sorted(set(member_ids))))
        )
        return {row.id: row for row in result}

    async def record(self, results: Sequence[Mapping[str, Any]]) -> None:
        """Write delivery results (see ``_RECORD`` for the keys) in one executemany."""
        if results:
            await self.session.execute(_RECORD, [dict(result) for result in results])

    async def mark_members_unreachable(self, member_ids: Sequence[int], now: datetime) -> int:
        if not member_ids:
            return 0
        result = await self.session.execute(
            update(Member)
            .where(Member.id.in_(sorted(set(member_ids))), Member.blocked_at.is_(None))
            .values(blocked_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def fail_expired_leases(self, now: datetime, reason: str) -> int:
        """Rows left in ``sending`` by a worker that died: fail them, never resend blindly."""
        result = await self.session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.status == OutboxStatus.SENDING, OUTBOX.c.locked_until < now)
            .values(status=OutboxStatus.FAILED, last_error=reason, locked_until=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def next_due_at(self) -> datetime | None:
        return await self.session.scalar(
            select(func.min(OutboxMessage.not_before)).where(
                OutboxMessage.status == OutboxStatus.QUEUED
            )
        )

    async def status_counts(self, campaign_id: int | None = None) -> dict[str, int]:
        stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        if campaign_id is not None:
            stmt = stmt.where(OutboxMessage.campaign_id == campaign_id)
        counts = {status.value: 0 for status in OutboxStatus}
        for status, count in (await self.session.execute(stmt)).all():
            counts[status] = int(count)
        return counts

    async def depth(self) -> dict[tuple[str, str], int]:
        """Rows not yet resolved or given up on, by (status, kind): queued, sending, failed."""
        waiting = (OutboxStatus.QUEUED, OutboxStatus.SENDING, OutboxStatus.FAILED)
        stmt = (
            select(OutboxMessage.status, OutboxMessage.kind, func.count())
            .where(OutboxMessage.status.in_(waiting))
            .group_by(OutboxMessage.status, OutboxMessage.kind)
        )
        return {(str(s), str(k)): int(n) for s, k, n in (await self.session.execute(stmt)).all()}

    async def skip_reason_counts(self, campaign_id: int) -> dict[str, int]:
        stmt = (
            select(OutboxMessage.skip_reason, func.count())
            .where(
                and_(
                    OutboxMessage.campaign_id == campaign_id,
                    OutboxMessage.status == OutboxStatus.SKIPPED,
                )
            )
            .group_by(OutboxMessage.skip_reason)
        )
        return {str(reason): int(n) for reason, n in (await self.session.execute(stmt)).all()}


def member_is_deleted(state: Any) -> bool:
    return state.deleted_at is not None or state.status == MemberStatus.DELETED


__all__ = ["OUTBOX", "OutboxRepo", "member_is_deleted"]
