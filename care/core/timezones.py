"""A member's timezone without the internet: a shared location, a city, or a UTC offset.

Telegram never tells a bot a user's timezone. We ask for one of three things:

* a shared location → the nearest city in ``CITIES`` (great-circle distance) when one lies within
  ``NEAREST_CITY_MAX_KM``; farther away (at sea, a remote region) the offset that the longitude
  gives (15° per hour), stored as an ``Etc/GMT±N`` zone;
* a city picked from ``CITIES``;
* a whole-hour UTC offset, also stored as ``Etc/GMT±N``.

Every value stored is an IANA name (``Etc/GMT-8`` is the IANA spelling of UTC+8: the sign is
inverted by POSIX convention). The city table is small on purpose: the cities a shop's members
most often live in, plus one anchor per populated region so that a location anywhere lands in the
right zone for the common cases. Daylight-saving rules come from the zone database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NEAREST_CITY_MAX_KM = 1200.0
MIN_OFFSET_HOURS = -12
MAX_OFFSET_HOURS = 14


@dataclass(frozen=True, slots=True)
class City:
    key: str  # catalogue key under ``tz.city.``; also the stable identity
    zone: str
    latitude: float
    longitude: float
    pickable: bool = False  # offered as a button in the city picker


CITIES: tuple[City, ...] = (
    # Greater China and East Asia (the picker shows these first).
    City("shanghai", "Asia/Shanghai", 31.23, 121.47, pickable=True),
    City("beijing", "Asia/Shanghai", 39.90, 116.41, pickable=True),
    City("guangzhou", "Asia/Shanghai", 23.13, 113.26),
    City("chengdu", "Asia/Shanghai", 30.57, 104.07),
    City("harbin", "Asia/Shanghai", 45.80, 126.53),
    City("kunming", "Asia/Shanghai", 25.04, 102.71),
    City("urumqi", "Asia/Urumqi", 43.83, 87.62),
    City("lhasa", "Asia/Shanghai", 29.65, 91.17),
    City("hong_kong", "Asia/Hong_Kong", 22.32, 114.17, pickable=True),
    City("macau", "Asia/Macau", 22.20, 113.54),
    City("taipei", "Asia/Taipei", 25.03, 121.57, pickable=True),
    City("tokyo", "Asia/Tokyo", 35.68, 139.69, pickable=True),
    City("seoul", "Asia/Seoul", 37.57, 126.98, pickable=True),
    City("ulaanbaatar", "Asia/Ulaanbaatar", 47.89, 106.91),
    # South-east and South Asia.
    City("singapore", "Asia/Singapore", 1.35, 103.82, pickable=True),
    City("kuala_lumpur", "Asia/Kuala_Lumpur", 3.14, 101.69),
    City("bangkok", "Asia/Bangkok", 13.76, 100.50, pickable=True),
    City("ho_chi_minh", "Asia/Ho_Chi_Minh", 10.82, 106.63),
    City("manila", "Asia/Manila", 14.60, 120.98),
    City("jakarta", "Asia/Jakarta", -6.21, 106.85),
    City("delhi", "Asia/Kolkata", 28.61, 77.21),
    City("mumbai", "Asia/Kolkata", 19.08, 72.88),
    City("dubai", "Asia/Dubai", 25.20, 55.27, pickable=True),
    # Oceania.
    City("sydney", "Australia/Sydney", -33.87, 151.21, pickable=True),
    City("melbourne", "Australia/Melbourne", -37.81, 144.96),
    City("perth", "Australia/Perth", -31.95, 115.86),
    City("auckland", "Pacific/Auckland", -36.85, 174.76),
    # Europe and Africa.
    City("london", "Europe/London", 51.51, -0.13, pickable=True),
    City("paris", "Europe/Paris", 48.86, 2.35, pickable=True),
    City("berlin", "Europe/Berlin", 52.52, 13.40),
    City("madrid", "Europe/Madrid", 40.42, -3.70),
    City("rome", "Europe/Rome", 41.90, 12.50),
    City("moscow", "Europe/Moscow", 55.76, 37.62),
    City("istanbul", "Europe/Istanbul", 41.01, 28.98),
    City("cairo", "Africa/Cairo", 30.04, 31.24),
    City("lagos", "Africa/Lagos", 6.52, 3.38),
    City("johannesburg", "Africa/Johannesburg", -26.20, 28.05),
    # The Americas.
    City("new_york", "America/New_York", 40.71, -74.01, pickable=True),
    City("chicago", "America/Chicago", 41.88, -87.63),
    City("denver", "America/Denver", 39.74, -104.99),
    City("los_angeles", "America/Los_Angeles", 34.05, -118.24, pickable=True),
    City("vancouver", "America/Vancouver", 49.28, -123.12, pickable=True),
    City("toronto", "America/Toronto", 43.65, -79.38),
    City("mexico_city", "America/Mexico_City", 19.43, -99.13),
    City("sao_paulo", "America/Sao_Paulo", -23.55, -46.63),
    City("buenos_aires", "America/Argentina/Buenos_Aires", -34.60, -58.38),
)

PICKER_CITIES: tuple[City, ...] = tuple(city for city in CITIES if city.pickable)


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


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def zone_for_location(latitude: float, longitude: float) -> str:
    """The IANA zone for a shared location: the nearest known city, else the longitude's offset."""
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        raise ValueError("not a location on Earth")
    nearest = min(CITIES, key=lambda c: _distance_km(latitude, longitude, c.latitude, c.longitude))
    if (
        _distance_km(latitude, longitude, nearest.latitude, nearest.longitude)
        <= NEAREST_CITY_MAX_KM
    ):
        return nearest.zone
    hours = max(MIN_OFFSET_HOURS, min(MAX_OFFSET_HOURS, round(longitude / 15.0)))
    return offset_zone(hours)


def utc_offset_label(zone: str, now: datetime) -> str:
    """``UTC+8``, ``UTC-3:30``: the zone's offset at ``now``, for showing beside its name."""
    offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
