"""Guardrails: consent, reachability, service recovery first, the frequency cap, the holdout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.messaging.guardrails import (
    holdout_bucket,
    in_holdout,
    marketing_block_reason,
    marketing_blocks,
)
from storage.db import create_engine, create_session_factory
from storage.enums import OutboxStatus, SurveyKind, TicketKind, TicketStatus
from storage.models import SurveyInvitation, SurveyResponse, Ticket
from tests.rules_helpers import add_marketing_message, add_member

CONFIG = CareConfig(marketing_cap=2, marketing_cap_days=7)


@pytest.fixture
async def session(sqlite_url: str) -> AsyncIterator[AsyncSession]:
    engine = create_engine(sqlite_url)
    async with create_session_factory(engine)() as db:
        yield db
    await engine.dispose()


async def test_a_consenting_reachable_member_may_get_marketing(
    session: AsyncSession, clock: FrozenClock
) -> None:
    member = await add_member(session, clock.now())
    assert await marketing_block_reason(session, CONFIG, clock, member) is None


async def test_consent_reachability_and_deletion_block_in_that_order(
    session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    no_consent = await add_member(session, now, marketing_opt_in=False)
    blocked = await add_member(session, now, marketing_opt_in=False, blocked_at=now)
    deleted = await add_member(session, now, deleted_at=now, status="deleted", blocked_at=now)
    assert await marketing_block_reason(session, CONFIG, clock, no_consent) == "no_consent"
    assert await marketing_block_reason(session, CONFIG, clock, blocked) == "unreachable"
    assert await marketing_block_reason(session, CONFIG, clock, deleted) == "deleted"


async def test_an_open_complaint_blocks_marketing_until_closed(
    session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    member = await add_member(session, now)
    ticket = Ticket(
        member_id=member.id, kind=TicketKind.COMPLAINT, status=TicketStatus.ANSWERED,
        created_at=now, updated_at=now,
    )  # fmt: skip
    praise = Ticket(
        member_id=member.id, kind=TicketKind.PRAISE, status=TicketStatus.OPEN,
        created_at=now, updated_at=now,
    )  # fmt: skip
    session.add_all([ticket, praise])
    await session.flush()
    assert await marketing_block_reason(session, CONFIG, clock, member) == "service_recovery"
    ticket.status = TicketStatus.CLOSED
    await session.flush()
    assert await marketing_block_reason(session, CONFIG, clock, member) is None


async def test_a_low_score_blocks_marketing_until_followed_up(
    session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    member = await add_member(session, now)
    invitation = SurveyInvitation(
        member_id=member.id, kind=SurveyKind.CSAT, nonce="n", created_at=now,
        expires_at=now + timedelta(days=7), answered_at=now,
    )  # fmt: skip
    session.add(invitation)
    await session.flush()
    response = SurveyResponse(
        invitation_id=invitation.id, member_id=member.id, kind=SurveyKind.CSAT, score=1,
        created_at=now, needs_followup=True,
    )  # fmt: skip
    session.add(response)
    await session.flush()
    assert await marketing_block_reason(session, CONFIG, clock, member) == "service_recovery"
    response.followed_up_at = now
    await session.flush()
    assert await marketing_block_reason(session, CONFIG, clock, member) is None


async def test_frequency_cap_counts_recent_marketing_that_reached_the_queue(
    session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    member = await add_member(session, now)
    await add_marketing_message(session, member, now - timedelta(days=8))  # outside the window
    await add_marketing_message(session, member, now - timedelta(days=1), OutboxStatus.SKIPPED)
    await add_marketing_message(session, member, now - timedelta(days=6))
    assert await marketing_block_reason(session, CONFIG, clock, member) is None
    await add_marketing_message(session, member, now, OutboxStatus.QUEUED)
    assert await marketing_block_reason(session, CONFIG, clock, member) == "frequency_cap"
    # A week later the allowance is back.
    clock.advance(days=6, hours=1)
    assert await marketing_block_reason(session, CONFIG, clock, member) is None
    # A cap of 0 switches the cap off.
    clock.advance(days=-6, hours=-1)
    uncapped = CareConfig(marketing_cap=0)
    assert await marketing_block_reason(session, uncapped, clock, member) is None


async def test_batch_answer_matches_the_single_answers(
    session: AsyncSession, clock: FrozenClock
) -> None:
    now = clock.now()
    free = await add_member(session, now)
    capped = await add_member(session, now)
    for _ in range(2):
        await add_marketing_message(session, capped, now)
    silent = await add_member(session, now, marketing_opt_in=False)
    blocks = await marketing_blocks(session, CONFIG, clock, [free, capped, silent])
    assert blocks == {capped.id: "frequency_cap", silent.id: "no_consent"}


def test_holdout_is_deterministic_independent_per_rule_and_near_the_percentage() -> None:
    assert in_holdout("welcome", 42, 10) == in_holdout("welcome", 42, 10)
    assert all(0 <= holdout_bucket("welcome", i) < 100 for i in range(1000))
    held = [i for i in range(1, 20_001) if in_holdout("welcome", i, 10)]
    assert 1_800 < len(held) < 2_200
    other = {i for i in range(1, 20_001) if in_holdout("birthday", i, 10)}
    # Independent arms: the overlap is about 10% of 10%, not the whole group.
    assert len(other & set(held)) < 400
    assert not any(in_holdout("welcome", i, 0) for i in range(1000))
    assert all(in_holdout("welcome", i, 100) for i in range(1000))
