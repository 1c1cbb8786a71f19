"""Creating and scheduling campaigns: the two kinds, the send time staff type, cancelling.

``create_campaign`` stores a campaign as scheduled (for now or a later time) with the exact
number of its recipients; ``launch.launch_campaign`` takes it from there.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.quiet_hours import member_zone, next_allowed_time
from care.segments.audience import Audience, count_audience, count_by_timezone
from storage.enums import CampaignStatus
from storage.models import Campaign
from storage.repos.campaigns import CampaignRepo

BROADCAST = "broadcast"
COUPONS = "coupons"
MAX_SCHEDULE_AHEAD = timedelta(days=90)


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
    template_zh: str | None = None,
    template_en: str | None = None,
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

    ``template`` is the text in the staff's language; ``template_zh`` / ``template_en`` what
    members of each language read (one may be empty: its readers get the other).

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
        template_zh=template_zh or None,
        template_en=template_en or None,
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


@dataclass(frozen=True, slots=True)
class DeliverySpread:
    """When members will actually receive a campaign sent at one instant.

    Quiet hours hold marketing until they end in each member's own time zone, so one send time
    arrives at different local times. ``local`` is the most common local arrival (wall clock,
    naive) and ``members`` how many get it then; ``held`` says quiet hours moved it; ``others``
    members arrive at other local times.
    """

    total: int
    local: datetime | None
    members: int
    held: bool
    others: int


async def delivery_spread(
    session: AsyncSession,
    config: CareConfig,
    audience: Audience,
    at: datetime,
    *,
    marketing: bool = True,
) -> DeliverySpread:
    """The local arrival times of a campaign sent at ``at`` (one grouped query over zones).

    The same rule as the outbox: a member without a zone counts in the shop's.
    """
    arrivals: Counter[tuple[datetime, bool]] = Counter()
    for tz_name, members in (
        await count_by_timezone(session, audience, marketing=marketing)
    ).items():
        zone = tz_name or config.default_timezone
        due = next_allowed_time(at, zone, config.quiet_start, config.quiet_end)
        local = due.astimezone(member_zone(zone)).replace(tzinfo=None)
        arrivals[(local, due > at)] += members
    total = sum(arrivals.values())
    if not arrivals:
        return DeliverySpread(0, None, 0, False, 0)
    # The most members first; on a tie, the earlier arrival.
    (local, held), members = min(arrivals.items(), key=lambda item: (-item[1], item[0][0]))
    return DeliverySpread(total, local, members, held, total - members)
