"""The CDNOW sample (tests/data/cdnow_sample.txt) read the way the papers read it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

CDNOW = Path(__file__).parent / "data" / "cdnow_sample.txt"
# The papers' calibration period: 39 weeks from 1997-01-01.
CALIBRATION_END = date(1997, 9, 30)


def cdnow_purchase_days() -> dict[str, dict[date, int]]:
    """Per customer, the amount spent on each purchase day, in cents.

    The papers count purchase days ("repeat transactions" made on one day are one).
    """
    days: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for line in CDNOW.read_text(encoding="ascii").splitlines():
        customer, _sample, day, _cds, dollars = line.split()
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        days[customer][when] += round(float(dollars) * 100)
    return {customer: dict(spend) for customer, spend in days.items()}


@dataclass(frozen=True, slots=True)
class Calibration:
    """The papers' per-customer summary: x, t_x, T in weeks and the mean repeat spend (z̄)."""

    x: list[float]
    t_x: list[float]
    T: list[float]
    zbar: list[float]


def cdnow_calibration() -> Calibration:
    x, t_x, T, zbar = [], [], [], []
    for spend in cdnow_purchase_days().values():
        days = sorted(day for day in spend if day <= CALIBRATION_END)
        first = days[0]
        repeats = days[1:]
        x.append(float(len(repeats)))
        t_x.append((days[-1] - first).days / 7)
        T.append((CALIBRATION_END - first).days / 7)
        zbar.append(sum(spend[day] for day in repeats) / 100 / len(repeats) if repeats else 0.0)
    return Calibration(x, t_x, T, zbar)
