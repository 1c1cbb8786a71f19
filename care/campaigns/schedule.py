"""Creating and scheduling campaigns: the two kinds, the send time staff type, cancelling.

``create_campaign`` stores a campaign as scheduled (for now or a later time) with the exact
number of its recipients; ``launch.launch_campaign`` takes it from there.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.quiet_hours import member_zone
from care.segments.audience import Audience, count_audience
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
