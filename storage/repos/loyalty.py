"""Loyalty aggregates: tiers, the points ledger, offers and coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    ScalarSelect,
    String,
    Table,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from storage.db import wrote
from storage.models import Coupon, Member, Offer, PointsEntry, Tier
from storage.repos.upsert import insert_many_unless_exists, insert_unless_exists

_OFFERS: Table = Offer.__table__
_COUPONS: Table = Coupon.__table__

# Built once: /card and /points run these on every press, and building a statement (with its
# cache key) anew costs about as much CPU as running it.
_TIERS = select(Tier).order_by(Tier.rank)
_HISTORY = (
    select(PointsEntry)
    .where(PointsEntry.member_id == bindparam("member_id"))
    .order_by(PointsEntry.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


# The tiers change by hand (a migration, an operator's SQL), never in the course of an update,
# yet /card and every receipt read them. So each update's context SELECT brings the whole tiers
# table along as one string (a handful of rows: microseconds, and no round trip of its own) and
# puts it in ``session.info``; while it matches the string the tiers were last read under, they
# are served from memory. An edit made anywhere, by any means, is seen at the next update.
TIERS_FINGERPRINT = "tiers_fingerprint"
_cached_tiers: tuple[str, list[Tier]] | None = None


class _joined_strings(FunctionElement[str]):
    """``aggregate_strings(expression, ',')`` with the separator written into the SQL: SQLAlchemy's
    own renders it as a post-compile parameter, which re-renders the statement on every run."""

    type = String()
    inherit_cache = True
    name = "joined_strings"


@compiles(_joined_strings)
def _joined_strings_default(element: _joined_strings, compiler: Any, **kw: Any) -> str:
    return f"string_agg({compiler.process(element.clauses, **kw)}, ',')"


@compiles(_joined_strings, "sqlite")
def _joined_strings_sqlite(element: _joined_strings, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ',')"


def tiers_fingerprint_query() -> ScalarSelect[str]:
    """Every column of every tier as one string, to select beside other things."""
    bar = literal_column("'|'", String)
    row = (
        cast(Tier.rank, String)
        + bar
        + Tier.code
        + bar
        + Tier.name_en
        + bar
        + Tier.name_zh
        + bar
        + cast(Tier.min_spend_12m_minor, String)
        + bar
        + cast(Tier.points_multiplier_pct, String)
    )
    return select(func.coalesce(_joined_strings(row), literal_column("''"))).scalar_subquery()


def _detached(tier: Tier) -> Tier:
    # A copy that belongs to no session: the loading session's rollback cannot expire it.
    return Tier(
        code=tier.code,
        rank=tier.rank,
        name_en=tier.name_en,
        name_zh=tier.name_zh,
        min_spend_12m_minor=tier.min_spend_12m_minor,
        points_multiplier_pct=tier.points_multiplier_pct,
    )


class TierRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Tier]:
        """Every tier, lowest rank first: from memory while this update's context SELECT saw
        the tiers unchanged (``TIERS_FINGERPRINT``), else read now. Read-only objects."""
        global _cached_tiers
        fingerprint = self.session.info.get(TIERS_FINGERPRINT)
        cached = _cached_tiers
        if fingerprint is not None and cached is not None and cached[0] == fingerprint:
            return list(cached[1])
        tiers = list(await self.session.scalars(_TIERS))
        if fingerprint is not None:
            # Under READ COMMITTED an edit committed between the two statements would file the
            # new tiers under the old string; the next update's string differs and reloads.
            _cached_tiers = (fingerprint, [_detached(tier) for tier in tiers])
        return tiers


# A member's latest ledger entries, read with the member in the update's context SELECT when
# the update asks for them (``MemberRepo.for_update_context``): (member id, how many, entries).
PRELOADED_HISTORY = "preloaded_points_history"


class PointsRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def move_balance(self, member_id: int, delta: int) -> int | None:
        """Add ``delta`` to the balance in one conditional UPDATE; None if it would go below zero.

        The UPDATE locks the member row until commit (PostgreSQL) or holds the write lock
        (SQLite), so concurrent movements chain their ``balance_after`` correctly.
        """
        return await self.session.scalar(
            update(Member)
            .where(Member.id == member_id, Member.points_balance + delta >= 0)
            .values(points_balance=Member.points_balance + delta)
            .returning(Member.points_balance)
        )

    async def add_entry(self, entry: PointsEntry) -> PointsEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def history(self, member_id: int, limit: int) -> list[PointsEntry]:
        """The member's latest ``limit`` entries, newest first; those read with the member in
        this session's context SELECT while the session has written nothing since."""
        preloaded = self.session.info.get(PRELOADED_HISTORY)
        if preloaded is not None and not wrote(self.session):
            preloaded_member, preloaded_limit, entries = preloaded
            if preloaded_member == member_id and limit <= preloaded_limit:
                return list(entries[:limit])
        rows = await self.session.scalars(_HISTORY, {"member_id": member_id, "limit": limit})
        return list(rows)


class OfferRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def titles(self, offer_ids: list[int]) -> dict[int, str]:
        rows = await self.session.execute(
            select(Offer.id, Offer.title).where(Offer.id.in_(offer_ids))
        )
        return {offer_id: title for offer_id, title in rows}

    async def get(self, offer_id: int) -> Offer | None:
        return await self.session.get(Offer, offer_id)

    async def by_key(self, key: str) -> Offer | None:
        return await self.session.scalar(select(Offer).where(Offer.key == key))

    async def add(self, offer: Offer) -> Offer:
        self.session.add(offer)
        await self.session.flush()
        return offer

    async def insert_keyed(self, values: dict[str, Any]) -> None:
        """Create a keyed offer unless another writer created it first."""
        await insert_unless_exists(self.session, _OFFERS, values, "key")

    async def active(self, now: datetime, limit: int = 50) -> list[Offer]:
        """Offers staff may issue coupons from: active and not past their end, newest first."""
        rows = await self.session.scalars(
            select(Offer)
            .where(
                Offer.is_active.is_(True),
                or_(Offer.valid_until.is_(None), Offer.valid_until > now),
            )
            .order_by(Offer.created_at.desc(), Offer.id.desc())
            .limit(limit)
        )
        return list(rows)


class CouponRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_code(self, code: str) -> Coupon | None:
        return await self.session.scalar(
            select(Coupon).where(Coupon.code == code).execution_options(populate_existing=True)
        )

    async def insert_unless_code_taken(self, values: dict[str, Any]) -> int | None:
        return await insert_unless_exists(self.session, _COUPONS, values, "code")

    async def insert_many_unless_code_taken(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert coupons in one statement; returns the codes that went in (a taken code not)."""
        return await insert_many_unless_exists(self.session, _COUPONS, rows, "code")

    async def get(self, coupon_id: int) -> Coupon | None:
        return await self.session.get(Coupon, coupon_id)

    async def active_for_member(self, member_id: int, now: datetime) -> list[Coupon]:
        rows = await self.session.scalars(
            select(Coupon)
            .where(
                Coupon.member_id == member_id,
                Coupon.redeemed_at.is_(None),
                or_(Coupon.expires_at.is_(None), Coupon.expires_at > now),
            )
            .order_by(Coupon.issued_at.desc(), Coupon.id.desc())
        )
        return list(rows.unique())

    async def redeem(self, code: str, now: datetime, staff_telegram_id: int) -> int:
        """Mark the coupon used if it is still usable; the row count (0 or 1) says who won.

        One conditional UPDATE: of two tills redeeming the same code at once, the second waits
        for the first's row lock (PostgreSQL) or write lock (SQLite), re-reads the row and
        matches nothing.
        """
        result = await self.session.execute(
            update(Coupon)
            .where(
                Coupon.code == code,
                Coupon.redeemed_at.is_(None),
                or_(Coupon.expires_at.is_(None), Coupon.expires_at > now),
            )
            .values(redeemed_at=now, redeemed_by=staff_telegram_id)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
