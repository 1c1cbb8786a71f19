"""Launching a campaign: its audience materialised batch by batch into coupons and outbox rows.

``launch_campaign`` walks the audience in id-ordered batches; for each member it applies the
guardrails (consent, reachability, service recovery, frequency cap), renders the text, issues
the coupon if one is attached and queues the message in the outbox, one transaction per batch.
``launch_due_campaigns`` is the scheduler's tick over all of them.

A staff text may take up to its time budget to render for each member (see
``care.core.template_sandbox``): a batch renders in a worker thread, so the event loop keeps
answering shoppers, and before the batch's first write, so no database write lock (SQLite has
one for the whole file) is held while it renders. The coupon line, added once coupons exist, is
no template.

Nothing is sent twice: every message has the key ``campaign:<id>:member:<member id>``, coupons
are checked per (campaign, member), and the launch cursor only moves by a conditional update,
so a crashed launch resumes where it stopped and two launchers never share a batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.render import offer_notice, with_coupon_line
from care.campaigns.report import finish_if_delivered
from care.campaigns.schedule import BROADCAST, COUPONS
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.core.templates import TemplateProblem, member_context, render_text
from care.loyalty.coupons import IssuedCoupon, issue_coupons
from care.loyalty.offers import coupon_expiry, offer_usable
from care.messaging.guardrails import marketing_blocks
from care.messaging.outbox import OutboxItem, enqueue_many
from care.segments.audience import Audience, member_batch
from storage.enums import CampaignStatus, MessageKind
from storage.models import Campaign, Member, Offer
from storage.repos.campaigns import CampaignRepo

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# How long a launcher may go quiet before another takes over (each batch renews it).
LAUNCH_LEASE = timedelta(minutes=2)
TEMPLATE_SKIP = "template"
OFFER_GONE = "offer_gone"


def message_key(campaign_id: int, member_id: int) -> str:
    return f"campaign:{campaign_id}:member:{member_id}"


@dataclass(slots=True)
class LaunchResult:
    """What one launch call did: messages queued, coupons issued, members skipped by reason."""

    campaign_id: int
    queued: int = 0
    coupons: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


async def launch_campaign(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    campaign_id: int,
    *,
    batch_size: int = BATCH_SIZE,
) -> LaunchResult | None:
    """Queue a due campaign for its whole audience, batch by batch; None if nothing to do.

    Starts a scheduled campaign whose time has come, or resumes one whose launch stopped
    half-way (a crash, a restart). One launcher at a time holds the campaign's lease; each batch
    commits on its own, and a batch another launcher took first ends this call untouched.
    """
    async with session_factory() as session:
        repo = CampaignRepo(session)
        now = clock.now()
        await repo.claim(campaign_id, now)
        leased = await repo.take_lease(campaign_id, now=now, until=now + LAUNCH_LEASE)
        await session.commit()
    if not leased:
        return None
    result = LaunchResult(campaign_id)
    try:
        while await _launch_batch(session_factory, config, clock, campaign_id, batch_size, result):
            pass
    except BaseException:
        # Hand the rest over at once: the scheduler's next tick resumes from the cursor.
        async with session_factory() as session:
            await CampaignRepo(session).release_lease(campaign_id)
            await session.commit()
        raise
    log.info(
        "campaign %s: %s queued, %s coupons, skipped %s",
        campaign_id,
        result.queued,
        result.coupons,
        dict(result.skipped),
    )
    return result


async def _launch_batch(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    campaign_id: int,
    batch_size: int,
    result: LaunchResult,
) -> bool:
    """Process the next batch; False when the launch is complete or another launcher has it."""
    async with session_factory() as session:
        repo = CampaignRepo(session)
        campaign = await repo.get(campaign_id)
        if (
            campaign is None
            or campaign.status != CampaignStatus.SENDING
            or campaign.launched_at is not None
        ):
            return False
        cursor = campaign.launch_cursor
        audience = Audience.from_spec(campaign.audience)
        members = await member_batch(
            session,
            audience,
            after_id=cursor,
            limit=batch_size,
            marketing=campaign.kind == BROADCAST,
        )
        if not members:
            await repo.mark_launched(campaign_id, cursor=cursor, now=clock.now())
            await session.commit()
            return False
        offer = await session.get(Offer, campaign.offer_id) if campaign.offer_id else None
        offer_gone = bool(campaign.offer_id or campaign.kind == COUPONS) and not _usable(
            offer, clock
        )
        prepared: _Prepared | None = None
        if campaign.kind != COUPONS and not offer_gone:
            prepared = await _prepare_broadcast(session, config, clock, campaign, offer, members)
        lease_until = clock.now() + LAUNCH_LEASE
        if not await repo.advance_cursor(
            campaign_id, old=cursor, new=members[-1].id, lease_until=lease_until
        ):
            await session.rollback()
            return False
        if offer_gone:
            # The offer ended or was switched off mid-way: promise no coupon that cannot come.
            batch = LaunchResult(campaign_id, skipped=Counter({OFFER_GONE: len(members)}))
        elif campaign.kind == COUPONS:
            assert offer is not None
            batch = await _coupon_batch(session, config, clock, campaign, offer, members)
        else:
            assert prepared is not None
            batch = await _broadcast_batch(session, config, clock, campaign, offer, prepared)
        await repo.add_counts(
            campaign_id, queued=batch.queued, coupons=batch.coupons, skipped=dict(batch.skipped)
        )
        await session.commit()
    result.queued += batch.queued
    result.coupons += batch.coupons
    result.skipped.update(batch.skipped)
    return True


def _usable(offer: Offer | None, clock: Clock) -> bool:
    return offer_usable(offer, clock.now())


@dataclass(slots=True)
class _Prepared:
    """A broadcast batch read and rendered, before it writes anything."""

    ready: list[tuple[Member, str]]  # each member to message, with the rendered staff text
    skipped: Counter[str]


async def _prepare_broadcast(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    campaign: Campaign,
    offer: Offer | None,
    members: list[Member],
) -> _Prepared:
    blocks = await marketing_blocks(session, config, clock, members)
    queued_before = await CampaignRepo(session).queued_member_ids(
        campaign.id, (member.id for member in members)
    )
    prepared = _Prepared(ready=[], skipped=Counter())
    to_render: list[Member] = []
    for member in members:
        if member.id in queued_before:
            continue
        reason = blocks.get(member.id)
        if reason is not None:
            prepared.skipped[reason] += 1
            continue
        to_render.append(member)
    preview_expiry = coupon_expiry(offer, clock.now()) if offer is not None else None
    texts = await asyncio.to_thread(
        _render_all,
        campaign.template,
        to_render,
        config,
        offer,
        preview_expiry,
        campaign.photo_file_id is not None,
    )
    for member, text in zip(to_render, texts, strict=True):
        if text is None:
            prepared.skipped[TEMPLATE_SKIP] += 1
        else:
            prepared.ready.append((member, text))
    return prepared


def _render_all(
    template: str,
    members: list[Member],
    config: CareConfig,
    offer: Offer | None,
    preview_expiry: datetime | None,
    with_photo: bool,
) -> list[str | None]:
    """The staff text for each member (None where it cannot be sent); runs in a worker thread.

    Checked with the coupon line it will get, before any coupon exists, so a text that cannot
    be sent costs no coupon (the preview code and expiry have the real ones' length).
    """
    texts: list[str | None] = []
    for member in members:
        try:
            text = render_text(template, member_context(member, config))
            with_coupon_line(
                text,
                member,
                offer=offer,
                coupon_expires_at=preview_expiry,
                with_photo=with_photo,
            )
        except TemplateProblem:
            texts.append(None)
            continue
        texts.append(text)
    return texts


async def _broadcast_batch(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    campaign: Campaign,
    offer: Offer | None,
    prepared: _Prepared,
) -> LaunchResult:
    batch = LaunchResult(campaign.id, skipped=prepared.skipped)
    with_photo = campaign.photo_file_id is not None
    ready = prepared.ready
    coupons: dict[int, IssuedCoupon] = {}
    if offer is not None and ready:
        coupons = await issue_coupons(
            session,
            clock,
            member_ids=[member.id for member, _ in ready],
            offer=offer,
            source="campaign",
            campaign_id=campaign.id,
        )
        batch.coupons += len(coupons)
    items: list[OutboxItem] = []
    for member, text in ready:
        coupon = coupons[member.id] if offer is not None else None
        message = with_coupon_line(
            text,
            member,
            offer=offer,
            coupon_code=coupon.code if coupon else None,
            coupon_expires_at=coupon.expires_at if coupon else None,
            with_photo=with_photo,
        )
        items.append(_item(campaign, member, message, campaign.photo_file_id))
    batch.queued = await enqueue_many(session, clock, config, items)
    return batch


async def _coupon_batch(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    campaign: Campaign,
    offer: Offer,
    members: list[Member],
) -> LaunchResult:
    batch = LaunchResult(campaign.id)
    repo = CampaignRepo(session)
    ids = [member.id for member in members]
    already = await repo.coupon_member_ids(campaign.id, ids)
    blocks = await marketing_blocks(session, config, clock, members) if campaign.notify else {}
    coupons = await issue_coupons(
        session,
        clock,
        member_ids=[member.id for member in members if member.id not in already],
        offer=offer,
        source="campaign",
        campaign_id=campaign.id,
    )
    batch.coupons += len(coupons)
    items: list[OutboxItem] = []
    for member in members:
        coupon = coupons.get(member.id)
        if coupon is None:
            continue
        if not campaign.notify or member.chat_id is None:
            continue
        reason = blocks.get(member.id)
        if reason is not None:
            batch.skipped[reason] += 1
            continue
        text = offer_notice(translator(member.locale), member, offer, coupon)
        items.append(_item(campaign, member, text, None))
    batch.queued = await enqueue_many(session, clock, config, items)
    return batch


def _item(campaign: Campaign, member: Member, text: str, photo: str | None) -> OutboxItem:
    return OutboxItem(
        key=message_key(campaign.id, member.id),
        chat_id=int(member.chat_id or 0),
        text=text,
        kind=MessageKind.MARKETING,
        member_id=member.id,
        timezone=member.timezone,
        campaign_id=campaign.id,
        photo=photo,
    )


async def launch_due_campaigns(
    session_factory: async_sessionmaker[AsyncSession], config: CareConfig, clock: Clock
) -> int:
    """The scheduler's tick: launch due campaigns, resume stopped launches, finish delivered.

    Returns how many campaigns this call launched or resumed.
    """
    async with session_factory() as session:
        due = await CampaignRepo(session).due_ids(clock.now())
    launched = 0
    for campaign_id in due:
        if await launch_campaign(session_factory, config, clock, campaign_id) is not None:
            launched += 1
    async with session_factory() as session:
        delivering = await CampaignRepo(session).delivering_ids()
    for campaign_id in delivering:
        async with session_factory() as session:
            await finish_if_delivered(session, config, clock, campaign_id)
            await session.commit()
    return launched
