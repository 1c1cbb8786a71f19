"""A shared location yields the zone that holds it, offline, for the cities people live in."""

from __future__ import annotations

import pytest

from care.core.timezones import zone_for_location

CITIES = [
    ("Kolkata", 22.5726, 88.3639, "Asia/Kolkata"),
    ("Delhi", 28.6139, 77.2090, "Asia/Kolkata"),
    ("Kathmandu", 27.7172, 85.3240, "Asia/Kathmandu"),
    ("Dhaka", 23.8103, 90.4125, "Asia/Dhaka"),
    ("Thimphu", 27.4728, 89.6390, "Asia/Thimphu"),
    ("Yangon", 16.8409, 96.1735, "Asia/Yangon"),
    ("Vladivostok", 43.1198, 131.8869, "Asia/Vladivostok"),
    ("Khabarovsk", 48.4802, 135.0719, "Asia/Vladivostok"),
    ("Harbin", 45.8038, 126.5340, "Asia/Shanghai"),
    ("Chita", 52.0340, 113.4994, "Asia/Chita"),
    ("Indianapolis", 39.7684, -86.1581, "America/Indiana/Indianapolis"),
    ("Gary, Indiana (Central time)", 41.5934, -87.3464, "America/Chicago"),
    ("Chicago", 41.8781, -87.6298, "America/Chicago"),
    ("Louisville", 38.2527, -85.7585, "America/Kentucky/Louisville"),
    ("Tehran", 35.6892, 51.3890, "Asia/Tehran"),
    ("Baghdad", 33.3152, 44.3661, "Asia/Baghdad"),
    ("Kabul", 34.5553, 69.2075, "Asia/Kabul"),
    ("Shanghai", 31.2304, 121.4737, "Asia/Shanghai"),
    ("Shenzhen", 22.5431, 114.0579, "Asia/Shanghai"),
    ("Hong Kong", 22.3193, 114.1694, "Asia/Hong_Kong"),
    ("Macau", 22.1987, 113.5439, "Asia/Macau"),
    ("Zhuhai", 22.2707, 113.5767, "Asia/Shanghai"),
    ("Taipei", 25.0330, 121.5654, "Asia/Taipei"),
    ("Adelaide", -34.9285, 138.6007, "Australia/Adelaide"),
    ("El Paso", 31.7619, -106.4850, "America/Denver"),
    ("Ciudad Juárez", 31.6904, -106.4245, "America/Ciudad_Juarez"),
    ("Strasbourg", 48.5734, 7.7521, "Europe/Paris"),
    ("Kehl", 48.5700, 7.8150, "Europe/Berlin"),
]


@pytest.mark.parametrize(("city", "lat", "lon", "zone"), CITIES, ids=[c[0] for c in CITIES])
def test_a_city_gets_its_own_zone(city: str, lat: float, lon: float, zone: str) -> None:
    assert zone_for_location(lat, lon) == zone


def test_at_sea_the_nautical_zone_and_off_earth_refused() -> None:
    assert zone_for_location(0.0, -150.0) == "Etc/GMT+10"
    with pytest.raises(ValueError):
        zone_for_location(0.0, 181.0)
