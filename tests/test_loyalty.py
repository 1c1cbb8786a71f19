"""Loyalty: purchases, the points ledger, tiers, offers and coupons — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import FrozenClock
from care.core.codes import CODE_ALPHABET, display_code
from care.core.config import CareConfig
from care.core.i18n import translator
from care.loyalty.coupons import active_coupons, issue_coupon, issue_coupons, redeem_coupon
from care.loyalty.offers import create_offer, describe_offer, rule_offer
from care.loyalty.points import add_points, points_history
from care.loyalty.purchases import PurchaseError, record_purchase
from care.loyalty.tiers import list_tiers, tier_progress
from storage.db import create_engine, create_session_factory
from storage.enums import HoldoutArm, LifecycleStage, MemberStatus, OfferKind, PointsReason
from storage.models import (
    DEFAULT_TIERS,
    Base,
    CareTouch,
    Coupon,
    Member,
    PointsEntry,
    Purchase,
    Tier,
)

CONFIG = CareConfig(currency="CNY", points_per_unit=1)
Factory = async_sessionmaker[AsyncSession]


async def _factory(url: str, *, create_schema: bool) -> AsyncIterator[Factory]:
    engine = create_engine(url)
    if create_schema:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    async for factory in _factory(sqlite_url, create_schema=False):
        yield factory


@pytest.fixture
async def any_db(any_db_url: str) -> AsyncIterator[Factory]:
    async for factory in _factory(any_db_url, create_schema=True):
        yield factory


_serial = iter(range(1, 1_000_000))


async def new_member(session: AsyncSession, clock: FrozenClock, **fields: object) -> Member:
    number = next(_serial)
    values: dict[str, object] = {
        "telegram_id": 500_000 + number,
        "chat_id": 500_000 + number,
        "member_code": f"M{number:07d}",
        "status": MemberStatus.ACTIVE,
        "marketing_opt_in": True,
        "created_at": clock.now(),
        "registered_at": clock.now(),
        "lifecycle_stage": LifecycleStage.PROSPECT,
    }
    values.update(fields)
    member = Member(**values)
    session.add(member)
    await session.flush()
    return member


async def ledger_sum(session: AsyncSession, member_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.member_id == member_id
        )
    )
    return int(total or 0)


# --- purchases --------------------------------------------------------------------------------


async def test_purchase_earns_points_writes_ledger_and_aggregates(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        result = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=8_850, receipt_id="R-1",
            category="fresh",
        )  # fmt: skip
        await session.commit()

    assert result.duplicate is False
    assert result.first_purchase is True
    assert result.points_earned == 88  # ¥88.50: whole yuan only
    assert result.points_balance == 88
    assert (result.tier_code, result.previous_tier_code) == ("member", "member")
    async with db() as session:
        member = await session.get_one(Member, member.id)
        assert member is not None
        assert member.purchase_count == 1
        assert member.total_spent_minor == member.spend_12m_minor == 8_850
        assert member.first_purchase_at == member.last_purchase_at == clock.now()
        assert member.avg_gap_days is None
        assert member.lifecycle_stage == LifecycleStage.NEW
        assert member.stage_changed_at == clock.now()
        (entry,) = await points_history(session, member.id)
        assert (entry.delta, entry.balance_after, entry.reason) == (88, 88, "purchase")
        assert entry.purchase_id == result.purchase_id
        purchase = await session.get(Purchase, result.purchase_id)
        assert purchase is not None and purchase.points_earned == 88


async def test_the_same_receipt_is_never_counted_twice(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        first = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=10_000, receipt_id="R-9"
        )
        await session.commit()
    async with db() as session:  # another till, later
        again = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=10_000, receipt_id="R-9"
        )
        await session.commit()

    assert again.duplicate is True
    assert again.purchase_id == first.purchase_id
    assert again.points_earned == first.points_earned == 100
    assert again.points_balance == 100
    async with db() as session:
        member = await session.get_one(Member, member.id)
        assert member is not None
        assert (member.purchase_count, member.total_spent_minor, member.points_balance) == (
            1,
            10_000,
            100,
        )
        assert await session.scalar(select(func.count()).select_from(Purchase)) == 1
        assert await ledger_sum(session, member.id) == 100


async def test_a_receipt_without_id_gets_its_own(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        one = await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=500)
        two = await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=500)
        assert not one.duplicate and not two.duplicate
        assert one.purchase_id != two.purchase_id


async def test_long_receipt_ids_stay_distinct_and_idempotent(
    db: Factory, clock: FrozenClock
) -> None:
    prefix = "POS-2026-03-02-STORE-0042-TERMINAL-07-" + "X" * 40
    async with db() as session:
        member = await new_member(session, clock)
        first = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=500, receipt_id=prefix + "1"
        )
        second = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=500, receipt_id=prefix + "2"
        )
        replay = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=500, receipt_id=prefix + "2"
        )
        assert (first.duplicate, second.duplicate, replay.duplicate) == (False, False, True)
        assert replay.purchase_id == second.purchase_id
        stored = await session.get(Purchase, first.purchase_id)
        assert stored is not None and len(stored.receipt_id) <= 64


async def test_points_use_the_tier_multiplier_held_when_paying(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        silver = await new_member(session, clock, tier_code="silver", spend_12m_minor=150_000)
        gold = await new_member(session, clock, tier_code="gold", spend_12m_minor=600_000)
        on_silver = await record_purchase(
            session, CONFIG, clock, member_id=silver.id, amount_minor=10_099
        )
        on_gold = await record_purchase(
            session, CONFIG, clock, member_id=gold.id, amount_minor=10_000
        )
    assert on_silver.points_earned == 125  # 100 yuan × 125 %
    assert on_gold.points_earned == 150


async def test_points_per_unit_and_zero_point_purchases(db: Factory, clock: FrozenClock) -> None:
    config = CareConfig(currency="CNY", points_per_unit=3)
    async with db() as session:
        member = await new_member(session, clock)
        small = await record_purchase(session, config, clock, member_id=member.id, amount_minor=99)
        assert small.points_earned == 0  # under one yuan: a purchase, no points, no ledger line
        big = await record_purchase(session, config, clock, member_id=member.id, amount_minor=1000)
        assert big.points_earned == 30
        assert [entry.delta for entry in await points_history(session, member.id)] == [30]


async def test_reaching_a_threshold_upgrades_at_once(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        below = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=99_999
        )
        assert below.tier_code == "member"
        clock.advance(hours=1)
        up = await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=1)
        assert (up.previous_tier_code, up.tier_code) == ("member", "silver")
        # Straight to platinum in one go, skipping gold; paid at silver's 125 %.
        jump = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=2_000_000
        )
        assert (jump.previous_tier_code, jump.tier_code) == ("silver", "platinum")
        assert jump.points_earned == 25_000
        assert member.tier_changed_at == clock.now()


async def test_aggregates_are_folded_in_whatever_order_receipts_arrive(
    db: Factory, clock: FrozenClock
) -> None:
    t0 = clock.now()
    async with db() as session:
        member = await new_member(session, clock)
        for days_ago, amount in ((30, 1_000), (0, 2_000), (20, 3_000), (400, 4_000)):
            await record_purchase(
                session, CONFIG, clock, member_id=member.id, amount_minor=amount,
                purchased_at=t0 - timedelta(days=days_ago), source="import",
            )  # fmt: skip
        assert member.purchase_count == 4
        assert member.total_spent_minor == 10_000
        assert member.spend_12m_minor == 6_000  # the 400-day-old receipt is outside the window
        assert member.first_purchase_at == t0 - timedelta(days=400)
        assert member.last_purchase_at == t0
        assert member.avg_gap_days == pytest.approx(400 / 3)


async def test_bad_purchases_are_refused_and_change_nothing(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        gone = await new_member(
            session, clock, status=MemberStatus.DELETED, deleted_at=clock.now()
        )
        for amount in (0, -5, 100_000_001, 12.5, True):
            with pytest.raises(PurchaseError) as caught:
                await record_purchase(
                    session,
                    CONFIG,
                    clock,
                    member_id=member.id,
                    amount_minor=amount,  # type: ignore[arg-type]
                )
            assert caught.value.reason == "bad_amount"
        with pytest.raises(PurchaseError) as caught:
            await record_purchase(session, CONFIG, clock, member_id=987_654, amount_minor=100)
        assert caught.value.reason == "unknown_member"
        with pytest.raises(PurchaseError) as caught:
            await record_purchase(session, CONFIG, clock, member_id=gone.id, amount_minor=100)
        assert caught.value.reason == "member_deleted"
        assert await session.scalar(select(func.count()).select_from(Purchase)) == 0
        assert member.purchase_count == 0
    async with db() as session:  # the maximum itself is fine
        member = await new_member(session, clock)
        result = await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=100_000_000
        )
        assert result.points_earned == 1_000_000


async def test_a_purchase_converts_recent_care_touches_only(
    db: Factory, clock: FrozenClock
) -> None:
    now = clock.now()
    async with db() as session:
        member = await new_member(session, clock)
        other = await new_member(session, clock)
        touches = {
            "recent": CareTouch(rule="winback", member_id=member.id, occasion="a",
                                arm=HoldoutArm.TREATMENT, decided_at=now - timedelta(days=3)),
            "held_out": CareTouch(rule="birthday", member_id=member.id, occasion="b",
                                  arm=HoldoutArm.HOLDOUT, decided_at=now - timedelta(days=13)),
            "too_old": CareTouch(rule="welcome", member_id=member.id, occasion="c",
                                 arm=HoldoutArm.TREATMENT, decided_at=now - timedelta(days=15)),
            "done": CareTouch(rule="nps", member_id=member.id, occasion="d",
                              arm=HoldoutArm.TREATMENT, decided_at=now - timedelta(days=1),
                              converted_at=now - timedelta(hours=5)),
            "someone_else": CareTouch(rule="winback", member_id=other.id, occasion="e",
                                      arm=HoldoutArm.TREATMENT,
                                      decided_at=now - timedelta(days=1)),
        }  # fmt: skip
        session.add_all(touches.values())
        await session.flush()
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=1_000)
        await session.commit()
    async with db() as session:
        converted = {
            name: (await session.get(CareTouch, touch.id)).converted_at  # type: ignore[union-attr]
            for name, touch in touches.items()
        }
    assert converted == {
        "recent": now,
        "held_out": now,
        "too_old": None,
        "done": now - timedelta(hours=5),
        "someone_else": None,
    }


async def test_buying_again_after_drifting_away_is_a_win_back(
    db: Factory, clock: FrozenClock
) -> None:
    long_ago = clock.now() - timedelta(days=200)
    async with db() as session:
        member = await new_member(
            session, clock, lifecycle_stage=LifecycleStage.LAPSED, purchase_count=4,
            first_purchase_at=long_ago - timedelta(days=90), last_purchase_at=long_ago,
            avg_gap_days=30.0, total_spent_minor=40_000,
        )  # fmt: skip
        quiet = await new_member(session, clock, marketing_opt_in=False)
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=1_000)
        await record_purchase(session, CONFIG, clock, member_id=quiet.id, amount_minor=1_000)
        assert member.lifecycle_stage == LifecycleStage.WON_BACK
        assert member.stage_changed_at == clock.now()
        # Without marketing consent the first purchase still makes a new customer.
        assert quiet.lifecycle_stage == LifecycleStage.NEW
        assert not quiet.marketing_opt_in


# --- points ledger ----------------------------------------------------------------------------


async def test_the_ledger_always_sums_to_the_balance(db: Factory, clock: FrozenClock) -> None:
    rng = random.Random(20260302)
    async with db() as session:
        member = await new_member(session, clock)
        for step in range(120):
            clock.advance(hours=rng.randint(1, 72))
            action = rng.random()
            if action < 0.5:
                await record_purchase(
                    session, CONFIG, clock, member_id=member.id,
                    amount_minor=rng.randint(1, 500_000), receipt_id=f"R{rng.randint(1, 60)}",
                )  # fmt: skip
            elif action < 0.8:
                await add_points(
                    session, clock, member_id=member.id, delta=rng.randint(1, 500),
                    reason=rng.choice([PointsReason.ADJUSTMENT, PointsReason.BIRTHDAY]),
                )  # fmt: skip
            else:
                spend = -rng.randint(1, 3_000)
                before = member.points_balance
                try:
                    await add_points(
                        session, clock, member_id=member.id, delta=spend,
                        reason=PointsReason.REDEMPTION,
                    )  # fmt: skip
                except ValueError:
                    assert before + spend < 0, f"step {step}: a valid spend was refused"
            if step % 10 == 0:
                await session.commit()
            balance = await session.scalar(
                select(Member.points_balance).where(Member.id == member.id)
            )
            assert balance is not None and balance >= 0
            assert await ledger_sum(session, member.id) == balance
        entries = list(
            await session.scalars(
                select(PointsEntry)
                .where(PointsEntry.member_id == member.id)
                .order_by(PointsEntry.id)
            )
        )
        running = 0
        for entry in entries:
            running += entry.delta
            assert entry.balance_after == running
        assert len(entries) > 60


async def test_points_never_go_below_zero(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        assert await add_points(
            session, clock, member_id=member.id, delta=50, reason=PointsReason.ADJUSTMENT,
            note="welcome gift",
        ) == 50  # fmt: skip
        with pytest.raises(ValueError, match="not enough points"):
            await add_points(
                session, clock, member_id=member.id, delta=-51, reason=PointsReason.REDEMPTION
            )
        with pytest.raises(ValueError):
            await add_points(
                session, clock, member_id=member.id, delta=0, reason=PointsReason.ADJUSTMENT
            )
        with pytest.raises(ValueError, match="no member"):
            await add_points(
                session, clock, member_id=424_242, delta=5, reason=PointsReason.ADJUSTMENT
            )
        assert await add_points(
            session, clock, member_id=member.id, delta=-50, reason=PointsReason.REDEMPTION
        ) == 0  # fmt: skip
        assert member.points_balance == 0
        history = await points_history(session, member.id, limit=1)
        assert [(e.delta, e.reason) for e in history] == [(-50, "redemption")]
        assert [e.note for e in await points_history(session, member.id)] == [None, "welcome gift"]


# --- tiers ------------------------------------------------------------------------------------


async def test_tier_progress_shows_the_way_to_the_next_tier(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        tiers = await list_tiers(session)
        assert [tier.code for tier in tiers] == ["member", "silver", "gold", "platinum"]
        member = await new_member(session, clock)
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=130_000)
        progress = await tier_progress(session, member)
        assert progress.current.code == "silver"
        assert progress.next is not None and progress.next.code == "gold"
        assert (progress.spend_12m_minor, progress.remaining_minor) == (130_000, 370_000)
        top = await new_member(session, clock, tier_code="platinum", spend_12m_minor=3_000_000)
        summit = await tier_progress(session, top)
        assert (summit.current.code, summit.next, summit.remaining_minor) == ("platinum", None, 0)


# --- offers and coupons -----------------------------------------------------------------------


async def test_rule_offers_are_created_once_with_sensible_defaults(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        welcome = await rule_offer(session, clock, CONFIG, "welcome")
        again = await rule_offer(session, clock, CONFIG, "welcome")
        assert welcome.id == again.id
        birthday = await rule_offer(session, clock, CONFIG, "birthday")
        assert (birthday.kind, birthday.value, birthday.min_spend_minor) == (
            OfferKind.AMOUNT_OFF,
            2_000,
            10_000,
        )
        for key in ("winback", "last_chance", "referral", "anniversary"):
            offer = await rule_offer(session, clock, CONFIG, key)
            assert offer.key == key and offer.coupon_valid_days
        with pytest.raises(KeyError):
            await rule_offer(session, clock, CONFIG, "nonsense")
    jpy = CareConfig(currency="JPY")
    async with db() as session:
        birthday_yen = await rule_offer(session, clock, jpy, "last_chance")
        assert (birthday_yen.value, birthday_yen.currency) == (30, "JPY")


async def test_create_offer_refuses_impossible_offers(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        bad = [
            {"title": " ", "kind": OfferKind.PERCENT_OFF, "value": 10},
            {"title": "x" * 121, "kind": OfferKind.PERCENT_OFF, "value": 10},
            {"title": "Too much", "kind": OfferKind.PERCENT_OFF, "value": 101},
            {"title": "Nothing", "kind": OfferKind.AMOUNT_OFF, "value": 0},
            {"title": "Odd", "kind": OfferKind.POINTS, "value": -3},
            {"title": "Past", "kind": OfferKind.GIFT, "value": 0,
             "valid_until": clock.now() - timedelta(seconds=1)},
            {"title": "Forever", "kind": OfferKind.GIFT, "value": 0, "coupon_valid_days": 0},
            {"title": "Min", "kind": OfferKind.AMOUNT_OFF, "value": 100, "min_spend_minor": -1},
        ]  # fmt: skip
        for fields in bad:
            with pytest.raises(ValueError):
                await create_offer(session, clock, CONFIG, **fields)  # type: ignore[arg-type]
        offer = await create_offer(
            session, clock, CONFIG, title="  Spring sale ", kind=OfferKind.PERCENT_OFF, value=15,
            created_by=900001,
        )  # fmt: skip
        assert (offer.title, offer.currency, offer.is_active) == ("Spring sale", "CNY", True)


async def test_coupon_codes_are_unique_and_easy_to_type(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        offer = await rule_offer(session, clock, CONFIG, "welcome")
        codes = [
            (await issue_coupon(session, clock, member_id=member.id, offer=offer, source="t")).code
            for _ in range(300)
        ]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert len(code) == 8
        assert set(code) <= set(CODE_ALPHABET)
        assert not set(code) & set("01OIL")
    assert display_code("ABCD2345") == "ABCD-2345"


async def test_coupon_expiry_follows_the_offer(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    async with db() as session:
        member = await new_member(session, clock)
        thirty = await create_offer(
            session, clock, CONFIG, title="A", kind=OfferKind.GIFT, value=0, coupon_valid_days=30
        )
        capped = await create_offer(
            session, clock, CONFIG, title="B", kind=OfferKind.GIFT, value=0, coupon_valid_days=30,
            valid_until=now + timedelta(days=5),
        )  # fmt: skip
        endless = await create_offer(
            session, clock, CONFIG, title="C", kind=OfferKind.GIFT, value=0, coupon_valid_days=None
        )
        expiries = [
            (
                await issue_coupon(session, clock, member_id=member.id, offer=o, source="t")
            ).expires_at
            for o in (thirty, capped, endless)
        ]
        assert expiries == [now + timedelta(days=30), now + timedelta(days=5), None]
        capped.is_active = False
        with pytest.raises(ValueError):
            await issue_coupon(session, clock, member_id=member.id, offer=capped, source="t")
        clock.advance(days=6)
        capped.is_active = True
        with pytest.raises(ValueError):
            await issue_coupon(session, clock, member_id=member.id, offer=capped, source="t")


async def test_active_coupons_hide_expired_and_redeemed(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        other = await new_member(session, clock)
        short = await create_offer(
            session, clock, CONFIG, title="Short", kind=OfferKind.PERCENT_OFF, value=5,
            coupon_valid_days=1,
        )  # fmt: skip
        long = await rule_offer(session, clock, CONFIG, "welcome")
        expiring = await issue_coupon(session, clock, member_id=member.id, offer=short, source="t")
        clock.advance(hours=1)
        used = await issue_coupon(session, clock, member_id=member.id, offer=long, source="t")
        clock.advance(hours=1)
        kept = await issue_coupon(session, clock, member_id=member.id, offer=long, source="t")
        clock.advance(hours=1)
        newest = await issue_coupon(session, clock, member_id=member.id, offer=short, source="t")
        await issue_coupon(session, clock, member_id=other.id, offer=long, source="t")
        assert (
            await redeem_coupon(session, clock, code=used.code, staff_telegram_id=1)
        ).status == ("redeemed")
        await session.commit()
        listed = await active_coupons(session, clock, member.id)
        assert [c.id for c in listed] == [newest.id, kept.id, expiring.id]
        assert listed[0].offer.title == "Short"
        clock.advance(hours=22)  # the first "Short" coupon is now past its day
        assert [c.id for c in await active_coupons(session, clock, member.id)] == [
            newest.id,
            kept.id,
        ]


async def test_redeem_says_exactly_what_happened(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        offer = await create_offer(
            session, clock, CONFIG, title="X", kind=OfferKind.AMOUNT_OFF, value=500,
            coupon_valid_days=7,
        )  # fmt: skip
        coupon = await issue_coupon(session, clock, member_id=member.id, offer=offer, source="t")
        stale = await issue_coupon(session, clock, member_id=member.id, offer=offer, source="t")
        await session.commit()

    typed = display_code(coupon.code).lower().replace("-", " - ")
    async with db() as session:
        first = await redeem_coupon(session, clock, code=typed, staff_telegram_id=77)
        await session.commit()
    assert first.status == "redeemed"
    assert first.coupon is not None and first.coupon.redeemed_by == 77
    assert first.coupon.redeemed_at == clock.now()

    clock.advance(minutes=5)
    async with db() as session:
        again = await redeem_coupon(session, clock, code=coupon.code, staff_telegram_id=78)
        assert again.status == "already_used"
        assert again.coupon is not None and again.coupon.redeemed_by == 77
        for junk in ("ZZZZ2222", "", "💥" * 40, "x" * 10_000):
            missing = await redeem_coupon(session, clock, code=junk, staff_telegram_id=78)
            assert (missing.status, missing.coupon) == ("not_found", None)
        clock.advance(days=7)
        late = await redeem_coupon(session, clock, code=stale.code, staff_telegram_id=78)
        assert late.status == "expired"
        assert late.coupon is not None and late.coupon.redeemed_at is None


async def test_a_points_coupon_credits_its_points_when_redeemed(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await new_member(session, clock)
        offer = await rule_offer(session, clock, CONFIG, "referral")
        coupon = await issue_coupon(session, clock, member_id=member.id, offer=offer, source="t")
        result = await redeem_coupon(session, clock, code=coupon.code, staff_telegram_id=5)
        assert result.status == "redeemed"
        assert member.points_balance == 200
        assert await ledger_sum(session, member.id) == 200


@pytest.mark.parametrize(
    ("kind", "value", "min_spend", "en", "zh"),
    [
        (OfferKind.PERCENT_OFF, 10, 0, "10% off", "9 折"),
        (OfferKind.PERCENT_OFF, 15, 5_000, "15% off orders over ¥50.00", "满 ¥50.00 享 8.5 折"),
        (OfferKind.AMOUNT_OFF, 2_000, 10_000,
         "¥20.00 off orders over ¥100.00", "满 ¥100.00 减 ¥20.00"),
        (OfferKind.AMOUNT_OFF, 550, 0, "¥5.50 off", "立减 ¥5.50"),
        (OfferKind.GIFT, 0, 5_000,
         "A free gift with orders over ¥50.00", "满 ¥50.00 赠送礼品一份"),
        (OfferKind.POINTS, 300, 0, "300 bonus points", "赠送 300 积分"),
    ],
)  # fmt: skip
async def test_describe_offer_in_both_languages(
    db: Factory, clock: FrozenClock, kind: OfferKind, value: int, min_spend: int, en: str, zh: str
) -> None:
    async with db() as session:
        offer = await create_offer(
            session, clock, CONFIG, title="T", kind=kind, value=value, min_spend_minor=min_spend
        )
    assert describe_offer(offer, translator("en")) == en
    assert describe_offer(offer, translator("zh")) == zh


# --- concurrency, on SQLite and PostgreSQL ----------------------------------------------------


async def _in_two_sessions(factory: Factory, work: object) -> list[object]:
    """Run ``work(session)`` in two sessions at the same moment, each committing after."""
    gate = asyncio.Barrier(2)

    async def one() -> object:
        async with factory() as session:
            await session.execute(select(1))  # both hold a connection before the race starts
            await gate.wait()
            result = await work(session)  # type: ignore[operator]
            await asyncio.sleep(0.05)  # keep the transaction open while the other one tries
            await session.commit()
            return result

    return list(await asyncio.gather(one(), one()))


async def test_two_tills_redeeming_one_code_exactly_one_wins(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock)
        offer = await rule_offer(session, clock, CONFIG, "welcome")
        coupon = await issue_coupon(session, clock, member_id=member.id, offer=offer, source="t")
        await session.commit()

    for _ in range(3):  # a race can be lucky once; make it race a few times
        async with any_db() as session:
            fresh = await issue_coupon(
                session, clock, member_id=member.id, offer=offer, source="t"
            )
            await session.commit()
        results = await _in_two_sessions(
            any_db,
            lambda s, code=fresh.code: redeem_coupon(s, clock, code=code, staff_telegram_id=9),
        )
        assert sorted(r.status for r in results) == ["already_used", "redeemed"]  # type: ignore[attr-defined]
    async with any_db() as session:
        assert len(await active_coupons(session, clock, member.id)) == 1  # the first coupon
        assert coupon.code


async def test_two_tills_recording_one_receipt_count_it_once(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock)
        await session.commit()
    results = await _in_two_sessions(
        any_db,
        lambda s: record_purchase(
            s, CONFIG, clock, member_id=member.id, amount_minor=5_000, receipt_id="SAME"
        ),
    )
    assert sorted(r.duplicate for r in results) == [False, True]  # type: ignore[attr-defined]
    async with any_db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.purchase_count, fresh.points_balance) == (1, 50)


async def test_concurrent_purchases_of_one_member_lose_no_update(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock)
        await session.commit()
    receipts = iter(["A", "B"])
    await _in_two_sessions(
        any_db,
        lambda s: record_purchase(
            s, CONFIG, clock, member_id=member.id, amount_minor=60_000, receipt_id=next(receipts)
        ),
    )
    async with any_db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.purchase_count, fresh.total_spent_minor) == (2, 120_000)
        assert fresh.points_balance == 1_200 == await ledger_sum(session, member.id)
        assert fresh.tier_code == "silver"


async def test_coupons_issued_in_bulk_are_one_per_member_and_redraw_a_taken_code(
    any_db: Factory, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with any_db() as session:
        members = [await new_member(session, clock) for _ in range(5)]
        offer = await rule_offer(session, clock, CONFIG, "welcome")
        taken = await issue_coupon(
            session, clock, member_id=members[0].id, offer=offer, source="t"
        )
        # The first code drawn in bulk is the one already taken: that member must redraw.
        draws = iter([taken.code, "BBBB2222", "CCCC3333", "DDDD4444", "EEEE5555", "FFFF6666"])
        monkeypatch.setattr("care.loyalty.coupons.random_code", lambda: next(draws))
        issued = await issue_coupons(
            session,
            clock,
            member_ids=[member.id for member in members],
            offer=offer,
            source="campaign",
        )
        rows = (
            await session.execute(
                select(Coupon.member_id, Coupon.code).where(Coupon.source == "campaign")
            )
        ).all()
    assert set(issued) == {member.id for member in members}
    assert {issued[member_id].code for member_id in issued} == {code for _, code in rows}
    assert len(rows) == 5 and taken.code not in {code for _, code in rows}
    assert all(coupon.expires_at == taken.expires_at for coupon in issued.values())
