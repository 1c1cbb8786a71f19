"""Quiet hours: no care message wakes a member at night, in the member's own timezone.

The window is a local wall-clock range that may wrap midnight (21:00–09:00 by default). A
message due inside it is deferred to the window's end, never dropped. Times are computed with
``zoneinfo`` so daylight-saving jumps land on a real instant: a window end that falls in a
spring-forward gap is taken at the first instant after the gap, never earlier.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=512)
def member_zone(tz_name: str | None) -> ZoneInfo:
    """The zone for an IANA name; an unknown or empty name counts as UTC."""
    if not tz_name:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_quiet_window(local: time, quiet_start: time, quiet_end: time) -> bool:
    """Whether a local wall-clock time falls in [quiet_start, quiet_end), wrapping midnight."""
    if quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:
        return quiet_start <= local < quiet_end
    return local >= quiet_start or local < quiet_end


def next_allowed_time(now: datetime, tz_name: str, quiet_start: time, quiet_end: time) -> datetime:
    """The first instant at or after ``now`` outside the member's local quiet hours (UTC).

    ``now`` itself when it is already outside the window; an empty window (start == end)
    never defers.
    """
    if now.tzinfo is None:
        raise ValueError("next_allowed_time needs a timezone-aware datetime")
    zone = member_zone(tz_name)
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if not in_quiet_window(wall, quiet_start, quiet_end):
        return now.astimezone(UTC)
    end_day = local.date()
    if quiet_start > quiet_end and wall >= quiet_start:
        end_day += timedelta(days=1)
    # fold=0 puts a wall time inside a spring-forward gap after the gap; an ambiguous
    # fall-back time resolves to its first occurrence. Either way the result is a real
    # instant at or after the local window end.
    end_local = datetime.combine(end_day, quiet_end, tzinfo=zone)
    allowed = end_local.astimezone(UTC)
    return max(allowed, now.astimezone(UTC))
