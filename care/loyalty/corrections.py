"""Till corrections: voiding a purchase, refunding part of one, adjusting points by hand.

A correction never edits history away: the purchase keeps what was rung up, ``refunded_minor``
and ``voided_at`` say what was given back, the points ledger gets a negative entry, and the
audit log names who did it. The member's aggregates, tier and stage follow at once (a void that
undoes an upgrade takes the tier back), and the shopper is told through the outbox.

Who may correct: an admin always; a cashier only a purchase they recorded themselves, within
``CareConfig.void_window_minutes`` (a slip noticed at the till, not a refund weeks later).
Manual adjustments are for admins (the handler checks the role).

Points taken back are proportional to the money given back (the purchase's points × refunded /
amount, rounded down, cumulative over several partial refunds). Points the member has already
spent are not taken below zero: what cannot be taken is reported to the cashier instead.

A correction and its guard are one conditional UPDATE on the purchase (still not voided, the
refunded total unchanged since it was read), so two tills voiding at once void it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.formatting import format_day
from care.core.money import format_money
from care.core.quiet_hours import member_zone
from care.loyalty.points import add_points
from care.loyalty.purchases import SPEND_WINDOW, stored_receipt
from care.loyalty.receipts import member_translator
from care.loyalty.tiers import tier_for_spend, tier_name
from care.loyalty.wording import points_text
from care.messaging.outbox import enqueue
from care.segments.rules import StageFacts, lifecycle_stage
from storage.enums import MemberStatus, MessageKind, PointsReason, StaffRole
from storage.models import Member, Purchase, Tier
from storage.repos.loyalty import PointsRepo, TierRepo
from storage.repos.purchases import PurchaseRepo

REASON_LIMIT = 200
MAX_ADJUST = 10_000_000
CorrectionProblem = Literal[
    "unknown_receipt", "already_voided", "not_allowed", "too_much", "bad_amount",
    "not_enough", "bad_delta", "no_reason",
]  # fmt: skip


class CorrectionError(Exception):
    """A correction refused with nothing changed; ``reason`` names why for the caller to word."""

    def __init__(self, reason: CorrectionProblem, purchase: Purchase | None = None) -> None:
        super().__init__(reason)
        self.reason: CorrectionProblem = reason
        self.purchase = purchase


@dataclass(frozen=True, slots=True)
class Correction:
    purchase: Purchase
    member: Member | None
    refunded_minor: int  # given back by this correction
    points_taken: int
    points_short: int  # points that should have gone but the member had spent them
    balance: int
    tier_code: str
    previous_tier_code: str

    @property
    def downgraded(self) -> bool:
        return self.tier_code != self.previous_tier_code


def may_correct(
    purchase: Purchase, staff_telegram_id: int, role: StaffRole, now: datetime, minutes: int
) -> bool:
    """An admin may correct any purchase; a cashier their own, within ``minutes``."""
    if role.rank >= StaffRole.ADMIN.rank:
        return True
    return purchase.recorded_by == staff_telegram_id and now - purchase.created_at <= timedelta(
        minutes=minutes
    )


async def find_purchase(session: AsyncSession, receipt: str) -> Purchase:
    key = stored_receipt(receipt)
    purchase = await PurchaseRepo(session).by_receipt(key) if key else None
    if purchase is None:
        raise CorrectionError("unknown_receipt")
    return purchase


async def void_purchase(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    receipt: str,
    staff_telegram_id: int,
    staff_role: StaffRole,
) -> Correction:
    """Undo a purchase entirely: its money, its points, its tier effect. Raises
    ``CorrectionError`` (unknown receipt, already voided, not allowed) with nothing changed."""
    purchase = await find_purchase(session, receipt)
    return await _correct(
        session, config, clock, purchase, None, staff_telegram_id=staff_telegram_id,
        staff_role=staff_role,
    )  # fmt: skip


async def refund_purchase(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    receipt: str,
    amount_minor: int,
    staff_telegram_id: int,
    staff_role: StaffRole,
) -> Correction:
    """Give back part (or the rest) of a purchase and take back proportional points.

    Raises ``CorrectionError``: unknown receipt, voided, not allowed, ``too_much`` (more than
    is left to refund) or ``bad_amount`` (zero or negative) — with nothing changed.
    """
    if isinstance(amount_minor, bool) or amount_minor <= 0:
        raise CorrectionError("bad_amount")
    purchase = await find_purchase(session, receipt)
    return await _correct(
        session, config, clock, purchase, amount_minor, staff_telegram_id=staff_telegram_id,
        staff_role=staff_role,
    )  # fmt: skip


async def _correct(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    purchase: Purchase,
    refund_minor: int | None,
    *,
    staff_telegram_id: int,
    staff_role: StaffRole,
) -> Correction:
    now = clock.now()
    void = refund_minor is None
    if purchase.voided_at is not None:
        raise CorrectionError("already_voided", purchase)
    if not may_correct(purchase, staff_telegram_id, staff_role, now, config.void_window_minutes):
        raise CorrectionError("not_allowed", purchase)
    before = purchase.refunded_minor
    given_back = purchase.amount_minor - before if refund_minor is None else refund_minor
    if given_back <= 0 and not void:
        raise CorrectionError("bad_amount", purchase)
    if before + given_back > purchase.amount_minor:
        raise CorrectionError("too_much", purchase)
    refunded = before + given_back
    values: dict[str, object] = {"refunded_minor": refunded}
    if void:
        values.update(voided_at=now, voided_by=staff_telegram_id)
    guarded = await session.execute(
        update(Purchase)
        .where(
            Purchase.id == purchase.id,
            Purchase.voided_at.is_(None),
            Purchase.refunded_minor == before,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(guarded, "rowcount", 0) != 1:  # another till corrected it meanwhile
        await session.refresh(purchase)
        raise CorrectionError("already_voided" if purchase.voided_at else "too_much", purchase)
    await session.refresh(purchase)

    member = None
    if purchase.member_id is not None:
        member = await session.scalar(
            select(Member)
            .where(Member.id == purchase.member_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
    if member is None:
        await _audit(session, clock, purchase, given_back, 0, staff_telegram_id, staff_role)
        return Correction(purchase, None, given_back, 0, 0, 0, "", "")

    owed = purchase.points_earned
    if not void:
        owed = purchase.points_earned * refunded // purchase.amount_minor
    due = max(0, owed - purchase.points_reversed)
    taken = min(due, member.points_balance)
    balance = member.points_balance
    if taken > 0:
        balance = await add_points(
            session, clock, member_id=member.id, delta=-taken,
            reason=PointsReason.VOID if void else PointsReason.REFUND, purchase_id=purchase.id,
        )  # fmt: skip
        purchase.points_reversed += taken

    tiers = await TierRepo(session).all()
    previous = member.tier_code
    await _take_from_aggregates(session, member, purchase, given_back, void, now)
    _follow_tier(member, tiers, now)
    stage = lifecycle_stage(StageFacts.of(member), now, config, config.fallback_gap_days)
    if stage != member.lifecycle_stage:
        member.lifecycle_stage, member.stage_changed_at = stage, now
    member.updated_at = now
    await session.flush()
    await _audit(session, clock, purchase, given_back, taken, staff_telegram_id, staff_role)
    result = Correction(
        purchase, member, given_back, taken, due - taken, balance, member.tier_code, previous
    )
    await _tell_member(session, config, clock, result, tiers, void)
    return result


async def _take_from_aggregates(
    session: AsyncSession,
    member: Member,
    purchase: Purchase,
    given_back: int,
    void: bool,
    now: datetime,
) -> None:
    member.total_spent_minor = max(0, (member.total_spent_minor or 0) - given_back)
    if purchase.purchased_at >= now - SPEND_WINDOW:
        member.spend_12m_minor = max(0, (member.spend_12m_minor or 0) - given_back)
    if not void:
        return
    # A voided purchase never happened: count, first and last purchase from what remains.
    count, first, last = (
        await session.execute(
            select(func.count(), func.min(Purchase.purchased_at), func.max(Purchase.purchased_at))
            .where(Purchase.member_id == member.id, Purchase.voided_at.is_(None))
        )
    ).one()  # fmt: skip
    member.purchase_count = int(count or 0)
    member.first_purchase_at, member.last_purchase_at = first, last
    member.avg_gap_days = None
    if member.purchase_count >= 2 and first is not None and last is not None:
        span = last - first
        member.avg_gap_days = span.total_seconds() / 86_400 / (member.purchase_count - 1)


def _follow_tier(member: Member, tiers: list[Tier], now: datetime) -> None:
    """Take back a tier the remaining 12-month spend no longer reaches (never raise one)."""
    current = next((tier for tier in tiers if tier.code == member.tier_code), tiers[0])
    reached = tier_for_spend(tiers, member.spend_12m_minor or 0)
    if reached.rank < current.rank:
        member.tier_code, member.tier_changed_at = reached.code, now


async def _audit(
    session: AsyncSession,
    clock: Clock,
    purchase: Purchase,
    given_back: int,
    taken: int,
    staff_telegram_id: int,
    staff_role: StaffRole,
) -> None:
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="purchase.void" if purchase.voided_at is not None else "purchase.refund",
        target=f"member:{purchase.member_id}" if purchase.member_id else None,
        details={
            "purchase_id": purchase.id,
            "receipt_id": purchase.receipt_id,
            "refunded_minor": given_back,
            "currency": purchase.currency,
            "points_taken": taken,
        },
    )


async def _tell_member(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    result: Correction,
    tiers: list[Tier],
    void: bool,
) -> None:
    """The shopper hears of it at once: the correction happens at the till, in front of them."""
    member, purchase = result.member, result.purchase
    if member is None or not _reachable(member):
        return
    assert member.chat_id is not None
    t = member_translator(member, config)
    day = purchase.purchased_at.astimezone(member_zone(member.timezone)).date()
    values = {
        "amount": format_money(result.refunded_minor, purchase.currency),
        "date": format_day(day, t.locale, with_year=True),
    }
    lines = [t("rewards.told.voided" if void else "rewards.told.refunded", **values)]
    if result.points_taken:
        lines.append(
            t(
                "rewards.told.points_back",
                points=points_text(t, result.points_taken),
                balance=points_text(t, result.balance),
            )
        )
    if result.downgraded:
        tier = next(tier for tier in tiers if tier.code == result.tier_code)
        lines.append(t("rewards.told.tier", tier=tier_name(tier, t.locale)))
    await enqueue(
        session, clock, config,
        key=f"correction:{purchase.id}:{purchase.refunded_minor}:{int(void)}",
        chat_id=member.chat_id, text="\n".join(lines), kind=MessageKind.SERVICE,
        member=member, rule="correction", respect_quiet_hours=False,
    )  # fmt: skip


def _reachable(member: Member) -> bool:
    return (
        member.chat_id is not None
        and member.blocked_at is None
        and member.status == MemberStatus.ACTIVE
    )


@dataclass(frozen=True, slots=True)
class Adjustment:
    member: Member
    delta: int
    balance: int
    entry_id: int = 0


async def adjust_points(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member: Member,
    delta: int,
    reason: str,
    staff_telegram_id: int,
    staff_role: StaffRole,
    action: str = "points.adjust",
    ledger_reason: PointsReason = PointsReason.ADJUSTMENT,
    limit: int = MAX_ADJUST,
    told_key: str | None = None,
    details: dict[str, object] | None = None,
) -> Adjustment:
    """Move a member's points by hand, with the reason the member is shown; audited.

    Raises ``CorrectionError``: ``bad_delta`` (zero or beyond ``limit``), ``no_reason``,
    ``not_enough`` (the balance would go below zero) — with nothing changed. The member hears
    of it outside their quiet hours (an admin's correction is rarely made at the till); a
    ``told_key`` of its own (a goodwill gesture in a conversation) reaches them at once.
    ``action``, ``ledger_reason`` and ``details`` say what kind of movement it is in the audit
    log and the ledger.
    """
    reason = " ".join(reason.split())[:REASON_LIMIT]
    if isinstance(delta, bool) or delta == 0 or abs(delta) > limit:
        raise CorrectionError("bad_delta")
    if not reason:
        raise CorrectionError("no_reason")
    try:
        balance = await add_points(
            session, clock, member_id=member.id, delta=delta,
            reason=ledger_reason, note=reason,
        )  # fmt: skip
    except ValueError:
        raise CorrectionError("not_enough") from None
    entry = (await PointsRepo(session).history(member.id, 1))[0]
    await audit(
        session, clock, actor_telegram_id=staff_telegram_id, actor_role=staff_role,
        action=action, target=f"member:{member.id}",
        details={
            "delta": delta, "reason": reason, "balance": balance, "entry_id": entry.id,
            **(details or {}),
        },
    )  # fmt: skip
    if _reachable(member):
        assert member.chat_id is not None
        t = member_translator(member, config)
        key = told_key or ("rewards.told.added" if delta > 0 else "rewards.told.removed")
        text = t(
            key,
            points=points_text(t, abs(delta)),
            reason=reason,
            balance=points_text(t, balance),
        )
        await enqueue(
            session, clock, config, key=f"adjust:{entry.id}", chat_id=member.chat_id,
            text=text, kind=MessageKind.SERVICE, member=member,
            rule="goodwill" if told_key else "adjustment",
            respect_quiet_hours=told_key is None,
        )  # fmt: skip
    return Adjustment(member=member, delta=delta, balance=balance, entry_id=entry.id)
