"""Audiences: one WHERE clause decides who is counted, sampled and walked, per spec kind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from care.core.clock import FrozenClock
from care.segments.audience import (
    Audience,
    AudienceError,
    audience_choices,
    count_audience,
    iter_member_batches,
    sample_member,
)
from storage.enums import LifecycleStage, MemberStatus
from storage.models import ChurnSignal, MemberValue
from tests.console_helpers import schema_session_factory, seed_member


async def _seed(session, now):  # type: ignore[no-untyped-def]
    members = {
        "champion": await seed_member(
            session, now, tier_code="gold", lifecycle_stage="active", value_tier="high",
            rfm_r=5, rfm_f=5, rfm_m=5, interests=("beauty",),
        ),
        "no_consent": await seed_member(
            session, now, tier_code="gold", marketing_opt_in=False, interests=("beauty",),
        ),
        "blocked": await seed_member(session, now, tier_code="gold", blocked_at=now),
        "deleted": await seed_member(
            session, now, tier_code="gold", status=MemberStatus.DELETED, deleted_at=now
        ),
        "registering": await seed_member(
            session, now, tier_code="gold", status=MemberStatus.REGISTERING
        ),
        "no_chat": await seed_member(session, now, tier_code="gold", chat_id=None),
        "sleeper": await seed_member(
            session, now, lifecycle_stage="at_risk", value_tier="low",
            rfm_r=1, rfm_f=1, rfm_m=1, interests=("grocery",),
        ),
        "newcomer": await seed_member(
            session, now, tier_code="silver", lifecycle_stage="new", value_tier="medium",
            rfm_r=5, rfm_f=1, rfm_m=2,
        ),
    }  # fmt: skip
    # The value model expects the sleeper to buy nothing soon, the champion to come back;
    # no_consent is at risk too but cannot be written to; the newcomer was not scored.
    for name, p_alive, expected_90d in (
        ("sleeper", 0.2, 0.3),
        ("champion", 0.9, 3.0),
        ("no_consent", 0.1, 0.3),
    ):
        session.add(
            MemberValue(
                member_id=members[name].id, p_alive=p_alive, purchases_30d=expected_90d / 3,
                purchases_90d=expected_90d, spend_per_purchase_minor=1000, value_12m_minor=1000,
                refreshed_at=now, at_risk=expected_90d < 0.69,
            )
        )  # fmt: skip
    # The shop's backtest chose the model's expected purchases as its churn signal.
    session.add(
        ChurnSignal(
            id=1, signal="expected_purchases", reason="backtest", auc_expected_purchases=0.8,
            customers=500, returners=100, cutoff=now.date(), holdout_until=now.date(),
            chosen_at=now, flags_signal="expected_purchases",
        )
    )  # fmt: skip
    await session.commit()
    return members


CASES: list[tuple[dict, bool, set[str]]] = [
    ({"kind": "all"}, True, {"champion", "sleeper", "newcomer"}),
    ({"kind": "all"}, False, {"champion", "no_consent", "sleeper", "newcomer"}),
    ({"kind": "tier", "value": "gold"}, True, {"champion"}),
    ({"kind": "tier", "value": "gold"}, False, {"champion", "no_consent"}),
    ({"kind": "tier", "value": "platinum"}, True, set()),
    ({"kind": "stage", "value": "at_risk"}, True, {"sleeper"}),
    ({"kind": "stage", "value": "lapsed"}, True, set()),
    ({"kind": "segment", "value": "high"}, True, {"champion"}),
    ({"kind": "segment", "value": "medium"}, True, {"newcomer"}),
    ({"kind": "segment", "value": "champions"}, True, {"champion"}),
    ({"kind": "segment", "value": "hibernating"}, True, {"sleeper"}),
    ({"kind": "segment", "value": "promising"}, True, {"newcomer"}),
    ({"kind": "segment", "value": "churn_risk"}, True, {"sleeper"}),
    ({"kind": "segment", "value": "churn_risk"}, False, {"sleeper", "no_consent"}),
    ({"kind": "interest", "value": "beauty"}, True, {"champion"}),
    ({"kind": "interest", "value": "beauty"}, False, {"champion", "no_consent"}),
    ({"kind": "interest", "value": "grocery"}, True, {"sleeper"}),
]


async def test_each_kind_counts_samples_and_walks_the_same_members(
    any_db_url: str, clock: FrozenClock
) -> None:
    async with schema_session_factory(any_db_url) as factory:
        async with factory() as session:
            members = await _seed(session, clock.now())
        names = {member.id: name for name, member in members.items()}
        for spec, marketing, expected in CASES:
            audience = Audience.from_spec(spec)
            async with factory() as session:
                count = await count_audience(session, audience, marketing=marketing)
                sample = await sample_member(session, audience, marketing=marketing)
                walked = [
                    member.id
                    async for batch in iter_member_batches(
                        session, audience, batch_size=2, marketing=marketing
                    )
                    for member in batch
                ]
            assert count == len(expected), spec
            assert {names[member_id] for member_id in walked} == expected, spec
            assert walked == sorted(walked)
            if expected:
                assert sample is not None and sample.id == min(walked)
            else:
                assert sample is None


async def test_choices_show_the_reachable_members_behind_each_button(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with schema_session_factory(sqlite_url) as factory:
        async with factory() as session:
            await _seed(session, clock.now())
        async with factory() as session:
            choices = await audience_choices(session, ("beauty", "grocery", "home"))
    assert choices.total == 3
    assert {code: n for code, _en, _zh, n in choices.tiers} == {
        "member": 1, "silver": 1, "gold": 1, "platinum": 0,
    }  # fmt: skip
    stages = dict(choices.stages)
    assert stages["active"] == 1 and stages["at_risk"] == 1 and stages["new"] == 1
    # Nobody unsubscribed or unreachable can be reached: those stages are not offered.
    assert LifecycleStage.UNSUBSCRIBED not in stages
    segments = dict(choices.segments)
    assert segments["high"] == 1 and segments["champions"] == 1 and segments["loyal"] == 1
    assert segments["cant_lose"] == 0
    assert segments["churn_risk"] == 1
    assert dict(choices.interests) == {"beauty": 1, "grocery": 1, "home": 0}


async def test_batches_walk_a_large_audience_once_in_id_order(
    sqlite_url: str, clock: FrozenClock
) -> None:
    async with schema_session_factory(sqlite_url) as factory:
        async with factory() as session:
            for i in range(1_203):
                consent = i % 5 != 0
                await seed_member(
                    session, clock.now() - timedelta(minutes=i), marketing_opt_in=consent
                )
            await session.commit()
        async with factory() as session:
            audience = Audience("all")
            sizes: list[int] = []
            seen: list[int] = []
            async for batch in iter_member_batches(session, audience, batch_size=250):
                sizes.append(len(batch))
                seen.extend(member.id for member in batch)
            expected = await count_audience(session, audience)
    assert expected == 1_203 - 241
    assert len(seen) == len(set(seen)) == expected
    assert seen == sorted(seen)
    assert max(sizes) == 250 and len(sizes) == -(-expected // 250)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "everyone"},
        {"kind": "tier"},
        {"kind": "stage", "value": "sleepy"},
        {"kind": "segment", "value": "whales"},
        {"kind": "interest", "value": ""},
        {"kind": "tier", "value": "x" * 40},
    ],
)
def test_a_spec_that_names_no_audience_is_refused(spec: dict) -> None:
    with pytest.raises(AudienceError):
        Audience.from_spec(spec)
