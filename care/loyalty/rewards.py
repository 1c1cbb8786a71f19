"""Spending points: the rewards catalogue admins keep, and a shopper buying a coupon with points.

A reward costs ``points_cost`` points and gives a coupon of its own offer (amount off, percent
off or a gift), which the till redeems like any other coupon. Redeeming takes the points with
one conditional UPDATE (``points_balance - cost >= 0``) and creates the coupon in the same unit
of work: either both happen or, on any error, the caller's rollback undoes both. Two
redemptions at once cannot overspend: the UPDATE locks the member row (PostgreSQL) or holds the
write lock (SQLite), so the second one sees the first one's balance.

Points as cash at the till (paying part of a bill with points) is deliberately not offered: an
"amount off" reward (say 500 points → ¥5 off) gives the same value through the one redemption
path the till already has (/redeem), so cashiers learn nothing new, every spend is a coupon with
a code in the audit trail, and the shop decides the exchange rate per reward instead of one
global rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import create_offer, offer_usable
from care.loyalty.points import add_points
from storage.enums import OfferKind, PointsReason
from storage.models import Coupon, Reward
from storage.repos.rewards import RewardRepo, reward_source

NAME_LIMIT = 80
MAX_COST = 10_000_000
REWARD_COUPON_DAYS = 90
REWARD_KINDS = (OfferKind.AMOUNT_OFF, OfferKind.PERCENT_OFF, OfferKind.GIFT)


class RewardError(Exception):
    """A redemption or catalogue change refused; nothing changed. ``reason`` says why."""

    def __init__(
        self,
        reason: Literal["unknown", "inactive", "not_enough", "bad_cost", "bad_value", "no_name"],
    ) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Redemption:
    reward: Reward
    coupon: Coupon
    balance: int


def reward_name(reward: Reward, locale: str) -> str:
    """The name in ``locale``; the other language's when that one was left empty."""
    if locale == "zh":
        return reward.name_zh or reward.name_en
    return reward.name_en or reward.name_zh


async def create_reward(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    name_zh: str,
    name_en: str,
    points_cost: int,
    kind: OfferKind,
    value: int,
    created_by: int | None,
) -> Reward:
    """Add a reward: its offer (what the coupon gives) and the catalogue entry.

    ``value`` is minor units (amount off), a percentage, or 0 (gift). Either name may be empty,
    not both. Raises ``RewardError`` for a missing name, a cost or value out of range.
    """
    name_zh, name_en = name_zh.strip(), name_en.strip()
    if not (name_zh or name_en) or max(len(name_zh), len(name_en)) > NAME_LIMIT:
        raise RewardError("no_name")
    if isinstance(points_cost, bool) or not 1 <= points_cost <= MAX_COST:
        raise RewardError("bad_cost")
    if kind not in REWARD_KINDS:
        raise RewardError("bad_value")
    try:
        offer = await create_offer(
            session, clock, config, title=(name_en or name_zh)[:120], kind=kind, value=value,
            coupon_valid_days=REWARD_COUPON_DAYS, created_by=created_by,
        )  # fmt: skip
    except ValueError:
        raise RewardError("bad_value") from None
    return await RewardRepo(session).add(
        Reward(
            name_zh=name_zh,
            name_en=name_en,
            points_cost=points_cost,
            offer_id=offer.id,
            offer=offer,
            is_active=True,
            created_by=created_by,
            created_at=clock.now(),
        )
    )


async def catalogue(session: AsyncSession, clock: Clock) -> list[Reward]:
    """What shoppers may buy now: active rewards whose offer is still usable, cheapest first."""
    now = clock.now()
    rewards = await RewardRepo(session).listed(active_only=True)
    return [reward for reward in rewards if offer_usable(reward.offer, now)]


async def all_rewards(session: AsyncSession) -> tuple[list[Reward], dict[int, int]]:
    """Every reward (on and off) with how often each was redeemed, for the admin's list."""
    repo = RewardRepo(session)
    return await repo.listed(active_only=False), await repo.redemption_counts()


async def switch_off(session: AsyncSession, reward_id: int) -> Reward:
    """Take a reward out of the catalogue; coupons already bought stay valid.

    Raises ``RewardError("unknown")`` or ``RewardError("inactive")`` (already off).
    """
    reward = await RewardRepo(session).get(reward_id)
    if reward is None:
        raise RewardError("unknown")
    if not reward.is_active:
        raise RewardError("inactive")
    reward.is_active = False
    await session.flush()
    return reward


async def get_reward(session: AsyncSession, reward_id: int) -> Reward | None:
    return await RewardRepo(session).get(reward_id)


async def redeem_reward(
    session: AsyncSession, clock: Clock, *, member_id: int, reward_id: int, locale: str
) -> Redemption:
    """Spend a member's points on a reward: the points leave and the coupon is created together.

    Raises ``RewardError`` ("unknown", "inactive" or "not_enough") with nothing changed. The
    caller commits (or rolls back) the unit of work. The ledger entry names the reward in
    ``locale`` (the member reads it in /points).
    """
    reward = await RewardRepo(session).get(reward_id)
    if reward is None:
        raise RewardError("unknown")
    if not reward.is_active or not offer_usable(reward.offer, clock.now()):
        raise RewardError("inactive")
    try:
        balance = await add_points(
            session, clock, member_id=member_id, delta=-reward.points_cost,
            reason=PointsReason.REDEMPTION, note=reward_name(reward, locale)[:100],
        )  # fmt: skip
    except ValueError:
        raise RewardError("not_enough") from None
    coupon = await issue_coupon(
        session, clock, member_id=member_id, offer=reward.offer, source=reward_source(reward.id)
    )
    return Redemption(reward=reward, coupon=coupon, balance=balance)
