"""A member's timezone without the internet: a shared location, a city, or a UTC offset.

Telegram never tells a bot a user's timezone. We ask for one of three things:

* a shared location → the zone whose boundary holds that point, from tzfpy: the IANA zone
  polygons (timezone-boundary-builder) shipped inside the package and looked up offline. It was
  chosen over timezonefinder for weight (one 3 MB wheel, no dependencies, against ~37 MB with its
  data, h3 and cffi) and gives the same answer for every city we test (Kolkata, Kathmandu,
  Vladivostok, Indianapolis and the Indiana counties on Central time, Tehran, the Rhine border, El
  Paso / Ciudad Juárez, Macau / Zhuhai …). One difference: for Xinjiang it answers Beijing time
  (``Asia/Shanghai``, China's official time, which shops there keep) where timezonefinder says
  ``Asia/Urumqi``; a member who lives by Xinjiang time picks UTC+6. At sea the package answers the
  nautical zone (``Etc/GMT+10``);
* a city picked from ``PICKER_CITIES``;
* a whole-hour UTC offset, stored as ``Etc/GMT±N``.

Every value stored is an IANA name (``Etc/GMT-8`` is the IANA spelling of UTC+8: the sign is
inverted by POSIX convention, which is why a person never reads it: see
``care.core.formatting.zone_label``). Daylight-saving rules come from the zone database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzfpy import get_tz

MIN_OFFSET_HOURS = -12
MAX_OFFSET_HOURS = 14


@dataclass(frozen=True, slots=True)
class City:
    key: str  # catalogue key under ``tz.city.``; also the stable identity
    zone: str


# The cities offered as buttons in the picker, Greater China and East Asia first.
CITIES: tuple[City, ...] = (
    City("shanghai", "Asia/Shanghai"),
    City("beijing", "Asia/Shanghai"),
    City("hong_kong", "Asia/Hong_Kong"),
    City("taipei", "Asia/Taipei"),
    City("tokyo", "Asia/Tokyo"),
    City("seoul", "Asia/Seoul"),
    City("singapore", "Asia/Singapore"),
    City("bangkok", "Asia/Bangkok"),
    City("dubai", "Asia/Dubai"),
    City("sydney", "Australia/Sydney"),
    City("london", "Europe/London"),
    City("paris", "Europe/Paris"),
    City("new_york", "America/New_York"),
    City("los_angeles", "America/Los_Angeles"),
    City("vancouver", "America/Vancouver"),
)

PICKER_CITIES: tuple[City, ...] = CITIES


def is_valid_zone(name: str) -> bool:
    """True for a name the zone database knows (``Asia/Shanghai``, ``Etc/GMT-8``)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def offset_zone(hours: int) -> str:
    """The IANA name for a whole-hour UTC offset: +8 → ``Etc/GMT-8`` (POSIX inverts the sign)."""
    if not MIN_OFFSET_HOURS <= hours <= MAX_OFFSET_HOURS:
        raise ValueError(f"UTC offset {hours} is outside {MIN_OFFSET_HOURS}..{MAX_OFFSET_HOURS}")
    if hours == 0:
        return "Etc/UTC"
    return f"Etc/GMT{-hours:+d}"


def zone_for_location(latitude: float, longitude: float) -> str:
    """The IANA zone that holds a shared location (offline, from the zone boundaries)."""
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        raise ValueError("not a location on Earth")
    zone = get_tz(longitude, latitude)
    if zone and is_valid_zone(zone):
        return zone
    # The boundary data names a zone this machine's zone database lacks (or none at all):
    # fall back to the offset the longitude gives, 15° per hour.
    hours = max(MIN_OFFSET_HOURS, min(MAX_OFFSET_HOURS, round(longitude / 15.0)))
    return offset_zone(hours)


def utc_offset_label(zone: str, now: datetime) -> str:
    """``UTC+8``, ``UTC-3:30``: the zone's offset at ``now``, for showing beside its name."""
    offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
