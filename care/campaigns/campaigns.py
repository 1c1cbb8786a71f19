"""Campaigns: staff broadcasts to an audience, and offers issued as coupons to a segment.

The life of a campaign: ``create_campaign`` stores it as scheduled (for now or a later time);
``preview_message`` renders the text for a real member of the audience first, so a mistake
shows before anyone receives it. ``launch_campaign`` walks the audience in id-ordered batches;
for each member it applies the guardrails (consent, reachability, service recovery, frequency
cap), renders the text, issues the coupon if one is attached and queues the message in the
outbox, one transaction per batch. The delivery worker sends at Telegram's pace; when nothing of
the campaign is left to send, ``finish_if_delivered`` marks it done and queues the final report
to the staff member who started it.

Nothing is sent twice: every message has the key ``campaign:<id>:member:<member id>``, coupons
are checked per (campaign, member), and the launch cursor only moves by a conditional update,
so a crashed launch resumes where it stopped and two launchers never share a batch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.codes import display_code
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from care.core.quiet_hours import member_zone
from care.core.templates import (
    MAX_VISIBLE_CHARS,
    TemplateProblem,
    member_context,
    render_text,
    tier_name,
    visible_length,
)
from care.loyalty.ledger import IssuedCoupon, coupon_expiry, describe_offer, issue_coupons
from care.messaging.guardrails import marketing_blocks
from care.messaging.outbox import (
    OutboxItem,
    campaign_counts,
    campaign_skip_reasons,
    enqueue,
    enqueue_many,
)
from care.segments.audience import Audience, count_audience, member_batch, sample_member
from storage.enums import CampaignStatus, MessageKind
from storage.models import Campaign, Coupon, Member, Offer
from storage.repos.campaigns import CampaignRepo

log = logging.getLogger(__name__)

BROADCAST = "broadcast"
COUPONS = "coupons"
BATCH_SIZE = 500
CAPTION_LIMIT = 1024
MAX_SCHEDULE_AHEAD = timedelta(days=90)
# How long a launcher may go quiet before another takes over (each batch renews it).
LAUNCH_LEASE = timedelta(minutes=2)
# Shown in previews where each member's own coupon code will be.
PREVIEW_COUPON_CODE = "ABCD2345"
TEMPLATE_SKIP = "template"
OFFER_GONE = "offer_gone"


class CampaignError(Exception):
    """A campaign that cannot be created or launched; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ScheduleError(ValueError):
    """A send time staff typed that cannot be used: ``reason`` is format, past or too_far."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def message_key(campaign_id: int, member_id: int) -> str:
    return f"campaign:{campaign_id}:member:{member_id}"


# ------------------------------------------------------------------ rendering and preview


def _local_day(value: datetime | None, tz_name: str | None) -> str | None:
    return value.astimezone(member_zone(tz_name)).date().isoformat() if value else None


def coupon_line(
    t: Translator, offer: Offer, code: str, expires_at: datetime | None, tz_name: str | None
) -> str:
    """The lines a coupon adds under a message, in the reader's language."""
    values: dict[str, Any] = {
        "title": offer.title,
        "offer": Markup(describe_offer(offer, t)),
        "code": display_code(code),
    }
    expires = _local_day(expires_at, tz_name)
    if expires is None:
        return t("campaign.coupon_line", **values)
    return t("campaign.coupon_line_expires", date=expires, **values)


def _check_length(text: str, *, with_photo: bool) -> str:
    limit = CAPTION_LIMIT if with_photo else MAX_VISIBLE_CHARS
    length = visible_length(text)
    if length > limit:
        raise TemplateProblem("too_long", length=length, limit=limit)
    return text


def render_for_member(
    campaign_template: str,
    member: Member,
    config: CareConfig,
    *,
    offer: Offer | None = None,
    coupon_code: str | None = None,
    coupon_expires_at: datetime | None = None,
    with_photo: bool = False,
) -> str:
    """The message ``member`` receives: the staff text rendered for them, plus the coupon line.

    Raises ``TemplateProblem`` when the text cannot be sent (unknown placeholder, syntax, too
    long — a photo caption allows 1024 characters).
    """
    text = render_text(campaign_template, member_context(member, config))
    if offer is not None:
        t = translator(member.locale)
        code = coupon_code or PREVIEW_COUPON_CODE
        line = coupon_line(t, offer, code, coupon_expires_at, member.timezone)
        text = f"{text}\n\n{line}"
    return _check_length(text, with_photo=with_photo)


@dataclass(frozen=True, slots=True)
class Preview:
    """A message rendered for a real member of the audience, and how many will get it."""

    text: str
    sample: Member
    recipients: int


async def preview_message(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    audience: Audience,
    template: str,
    offer: Offer | None = None,
    with_photo: bool = False,
) -> Preview:
    """Render ``template`` for a real member of ``audience`` and count the audience.

    Raises ``CampaignError("empty_audience")`` when nobody would receive it, and
    ``TemplateProblem`` when the text cannot be sent.
    """
    sample = await sample_member(session, audience)
    if sample is None:
        raise CampaignError("empty_audience")
    # In a worker thread: a staff text may spend its whole time budget, and other people's
    # updates must not wait for it.
    text = await asyncio.to_thread(
        render_for_member,
        template,
        sample,
        config,
        offer=offer,
        coupon_expires_at=coupon_expiry(offer, clock.now()) if offer else None,
        with_photo=with_photo,
    )
    return Preview(text=text, sample=sample, recipients=await count_audience(session, audience))


def offer_notice(
    t: Translator, member: Member, offer: Offer, coupon: Coupon | IssuedCoupon
) -> str:
    """The message that tells a member about a coupon issued to them from an offer."""
    line = coupon_line(t, offer, coupon.code, coupon.expires_at, member.timezone)
    name = member.name or t.plain("rules.friend")
    return t("campaign.offer_notice", name=name, line=Markup(line))


# ------------------------------------------------------------------ creating and scheduling


def parse_shop_time(text: str, tz_name: str, now: datetime) -> datetime:
    """A send time typed by staff in the shop's timezone → UTC.

    Accepts ``2026-03-05 18:30``, ``03-05 18:30`` (the next such date) and ``18:30`` (the next
    such time). Raises ``ScheduleError``: ``format``, ``past`` or ``too_far`` (over 90 days).
    """
    zone = member_zone(tz_name)
    local_now = now.astimezone(zone)
    cleaned = re.sub(r"\s+", " ", text.strip().replace("/", "-").replace("：", ":"))
    match = re.fullmatch(r"(?:(?:(\d{4})-)?(\d{1,2})-(\d{1,2}) )?(\d{1,2}):(\d{2})", cleaned)
    if match is None:
        raise ScheduleError("format")
    year, month, day, hour, minute = match.groups()
    try:
        at = time(int(hour), int(minute))
        if month is None:
            candidate = datetime.combine(local_now.date(), at, zone)
            if candidate <= local_now:
                candidate = datetime.combine(local_now.date() + timedelta(days=1), at, zone)
        elif year is None:
            candidate = datetime.combine(date(local_now.year, int(month), int(day)), at, zone)
            if candidate <= local_now:
                next_year = date(local_now.year + 1, int(month), int(day))
                candidate = datetime.combine(next_year, at, zone)
        else:
            candidate = datetime.combine(date(int(year), int(month), int(day)), at, zone)
    except ValueError:
        raise ScheduleError("format") from None
    when = candidate.astimezone(now.tzinfo)
    if when <= now:
        raise ScheduleError("past")
    if when - now > MAX_SCHEDULE_AHEAD:
        raise ScheduleError("too_far")
    return when


async def create_campaign(
    session: AsyncSession,
    clock: Clock,
    *,
    audience: Audience,
    template: str,
    created_by: int | None,
    locale: str,
    kind: str = BROADCAST,
    notify: bool = True,
    name: str | None = None,
    photo_file_id: str | None = None,
    offer_id: int | None = None,
    scheduled_at: datetime | None = None,
    progress_chat_id: int | None = None,
    progress_message_id: int | None = None,
) -> Campaign:
    """Store a campaign, scheduled for ``scheduled_at`` (now when None).

    Raises ``CampaignError("empty_audience")`` when nobody would receive it. Flushes; the
    launch happens in ``launch_campaign`` once this unit of work is committed.
    """
    now = clock.now()
    recipients = await count_audience(session, audience, marketing=kind == BROADCAST)
    if recipients == 0:
        raise CampaignError("empty_audience")
    campaign = Campaign(
        name=(name or template or kind)[:120],
        kind=kind,
        notify=notify,
        audience=audience.to_spec(),
        template=template,
        photo_file_id=photo_file_id,
        offer_id=offer_id,
        status=CampaignStatus.SCHEDULED,
        scheduled_at=scheduled_at or now,
        recipients=recipients,
        created_by=created_by,
        locale=locale,
        progress_chat_id=progress_chat_id,
        progress_message_id=progress_message_id,
        created_at=now,
    )
    return await CampaignRepo(session).add(campaign)


async def set_progress_message(
    session: AsyncSession, campaign_id: int, *, chat_id: int, message_id: int
) -> None:
    """Remember which staff message shows this campaign's live progress."""
    campaign = await CampaignRepo(session).get(campaign_id)
    if campaign is not None:
        campaign.progress_chat_id = chat_id
        campaign.progress_message_id = message_id
        await session.flush()


async def cancel_campaign(session: AsyncSession, campaign_id: int) -> bool:
    """Cancel a scheduled campaign before it starts; False if it already started."""
    return await CampaignRepo(session).cancel(campaign_id)


async def scheduled_campaigns(session: AsyncSession, limit: int = 10) -> list[Campaign]:
    """Campaigns waiting for their time, soonest first."""
    return await CampaignRepo(session).scheduled(limit)


# ------------------------------------------------------------------ launching


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
        lease_until = clock.now() + LAUNCH_LEASE
        if not await repo.advance_cursor(
            campaign_id, old=cursor, new=members[-1].id, lease_until=lease_until
        ):
            await session.rollback()
            return False
        offer = await session.get(Offer, campaign.offer_id) if campaign.offer_id else None
        if (campaign.offer_id or campaign.kind == COUPONS) and not _usable(offer, clock):
            # The offer ended or was switched off mid-way: promise no coupon that cannot come.
            batch = LaunchResult(campaign_id, skipped=Counter({OFFER_GONE: len(members)}))
        elif campaign.kind == COUPONS:
            assert offer is not None
            batch = await _coupon_batch(session, config, clock, campaign, offer, members)
        else:
            batch = await _broadcast_batch(session, config, clock, campaign, offer, members)
        await repo.add_counts(
            campaign_id, queued=batch.queued, coupons=batch.coupons, skipped=dict(batch.skipped)
        )
        await session.commit()
    result.queued += batch.queued
    result.coupons += batch.coupons
    result.skipped.update(batch.skipped)
    return True


def _usable(offer: Offer | None, clock: Clock) -> bool:
    if offer is None or not offer.is_active:
        return False
    return offer.valid_until is None or offer.valid_until > clock.now()


async def _broadcast_batch(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    campaign: Campaign,
    offer: Offer | None,
    members: list[Member],
) -> LaunchResult:
    batch = LaunchResult(campaign.id)
    blocks = await marketing_blocks(session, config, clock, members)
    queued_before = await CampaignRepo(session).queued_member_ids(
        campaign.id, (member.id for member in members)
    )
    with_photo = campaign.photo_file_id is not None
    preview_expiry = coupon_expiry(offer, clock.now()) if offer is not None else None
    ready: list[tuple[Member, str]] = []
    for member in members:
        if member.id in queued_before:
            continue
        reason = blocks.get(member.id)
        if reason is not None:
            batch.skipped[reason] += 1
            continue
        try:
            # Rendered before any coupon exists, so a text that cannot be sent costs no
            # coupon (the preview code and expiry have the real ones' length).
            text = render_for_member(
                campaign.template,
                member,
                config,
                offer=offer,
                coupon_expires_at=preview_expiry,
                with_photo=with_photo,
            )
        except TemplateProblem:
            batch.skipped[TEMPLATE_SKIP] += 1
            continue
        ready.append((member, text))
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
        ready = [
            (
                member,
                render_for_member(
                    campaign.template,
                    member,
                    config,
                    offer=offer,
                    coupon_code=coupons[member.id].code,
                    coupon_expires_at=coupons[member.id].expires_at,
                    with_photo=with_photo,
                ),
            )
            for member, _ in ready
        ]
    items = [_item(campaign, member, text, campaign.photo_file_id) for member, text in ready]
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


# ------------------------------------------------------------------ progress and the report


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """Where a campaign stands: the audience, what was queued, and what delivery made of it."""

    campaign_id: int
    kind: str
    status: str
    recipients: int
    queued: int
    coupons: int
    skipped: dict[str, int]
    sent: int
    failed: int
    blocked: int
    pending: int
    launched: bool
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status == CampaignStatus.DONE

    @property
    def held_back(self) -> int:
        return sum(self.skipped.values())


async def campaign_report(session: AsyncSession, campaign_id: int) -> CampaignReport | None:
    """The numbers of one campaign now (two indexed queries)."""
    campaign = await CampaignRepo(session).get(campaign_id)
    if campaign is None:
        return None
    counts = await campaign_counts(session, campaign_id)
    return CampaignReport(
        campaign_id=campaign.id,
        kind=campaign.kind,
        status=campaign.status,
        recipients=campaign.recipients,
        queued=campaign.queued,
        coupons=campaign.coupons_issued,
        skipped={k: int(v) for k, v in (campaign.skipped or {}).items()},
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        blocked=counts.get("skipped", 0),
        pending=counts.get("queued", 0) + counts.get("sending", 0),
        launched=campaign.launched_at is not None,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
    )


def reason_list(t: Translator, reasons: dict[str, int]) -> str:
    """``no consent 3, frequency cap 1`` in the reader's language."""
    parts = []
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        key = f"campaign.reason.{reason}"
        label = t.plain(key) if t.has(key) else reason
        parts.append(t.plain("campaign.reason_count", reason=label, count=count))
    return t.plain("campaign.list_separator").join(parts)


def progress_text(t: Translator, report: CampaignReport) -> str:
    """The live progress message: sent / failed / blocked of what is queued."""
    if report.done:
        key = "campaign.progress_done"
    elif report.launched:
        key = "campaign.progress"
    else:
        key = "campaign.progress_queueing"
    return t(
        key,
        id=report.campaign_id,
        queued=report.queued,
        sent=report.sent,
        failed=report.failed,
        blocked=report.blocked,
        pending=report.pending,
    )


def final_report_text(t: Translator, report: CampaignReport, skip_reasons: dict[str, int]) -> str:
    """The report after the last message went out (or failed for good)."""
    text = t(
        "campaign.report_coupons" if report.kind == COUPONS else "campaign.report",
        id=report.campaign_id,
        recipients=report.recipients,
        queued=report.queued,
        coupons=report.coupons,
        sent=report.sent,
        failed=report.failed,
        blocked=report.blocked,
    )
    if report.skipped:
        text += "\n" + t("campaign.report_held_back", reasons=reason_list(t, report.skipped))
    if skip_reasons:
        text += "\n" + t("campaign.report_not_delivered", reasons=reason_list(t, skip_reasons))
    return text


async def finish_if_delivered(
    session: AsyncSession, config: CareConfig, clock: Clock, campaign_id: int
) -> CampaignReport | None:
    """Mark a fully queued and fully delivered campaign done and queue its final report.

    Returns the final report the one time the campaign becomes done, else None. Safe to call
    from several places at once: the conditional update lets exactly one of them finish it.
    """
    report = await campaign_report(session, campaign_id)
    if report is None or report.status != CampaignStatus.SENDING:
        return None
    if not report.launched or report.pending:
        return None
    repo = CampaignRepo(session)
    if not await repo.mark_done(campaign_id, clock.now()):
        return None
    campaign = await repo.get(campaign_id)
    assert campaign is not None
    await repo.refresh(campaign)
    report = await campaign_report(session, campaign_id)
    assert report is not None
    chat_id = campaign.progress_chat_id or campaign.created_by
    if chat_id is not None:
        t = translator(campaign.locale)
        skip_reasons = await campaign_skip_reasons(session, campaign_id)
        await enqueue(
            session,
            clock,
            config,
            key=f"campaign:{campaign_id}:report",
            chat_id=chat_id,
            text=final_report_text(t, report, skip_reasons),
            kind=MessageKind.ALERT,
            respect_quiet_hours=False,
        )
    return report


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


# ------------------------------------------------------------------ offers overview


@dataclass(frozen=True, slots=True)
class OfferLine:
    offer: Offer
    issued: int
    redeemed: int


async def offer_overview(session: AsyncSession, clock: Clock, limit: int = 20) -> list[OfferLine]:
    """Active offers, newest first, with how many coupons were issued and redeemed (one query)."""
    now = clock.now()
    issued = func.count(Coupon.id)
    redeemed = func.count(Coupon.redeemed_at)
    query = (
        select(Offer, issued, redeemed)
        .outerjoin(Coupon, Coupon.offer_id == Offer.id)
        .where(
            Offer.is_active.is_(True),
            (Offer.valid_until.is_(None)) | (Offer.valid_until > now),
        )
        .group_by(Offer.id)
        .order_by(Offer.id.desc())
        .limit(limit)
    )
    rows = await session.execute(query)
    return [OfferLine(offer, int(n), int(r)) for offer, n, r in rows]


async def get_offer(session: AsyncSession, clock: Clock, offer_id: int) -> Offer | None:
    """An offer staff may still issue from (active, not past its end), or None."""
    offer = await session.get(Offer, offer_id)
    if offer is None or not offer.is_active:
        return None
    if offer.valid_until is not None and offer.valid_until <= clock.now():
        return None
    return offer


def value_label(t: Translator, kind: str, value: str) -> str:
    """The name of one audience value (a tier, stage, segment or interest) for staff."""
    match kind:
        case "tier":
            return tier_name(value, t.locale)
        case "stage":
            key = f"chart.stage.{value}"
        case "segment":
            key = f"audience.segment.{value}"
        case _:
            key = f"interest.{value}"
    return t.plain(key) if t.has(key) else value


def audience_label(t: Translator, spec: dict[str, Any]) -> str:
    """A short human name for an audience spec, e.g. "Tier: Gold"."""
    kind, value = str(spec.get("kind")), spec.get("value")
    if kind == "all" or value is None:
        return t.plain("audience.all")
    return t.plain(
        "audience.labelled",
        kind=t.plain(f"audience.kind.{kind}"),
        value=value_label(t, kind, str(value)),
    )
