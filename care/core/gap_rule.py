"""The gap rule's arithmetic: a member is drifting when the time since their last purchase
outgrows their usual gap between purchases.

Kept in core because two siblings read it: the segments (``care.segments.rules`` and their
set-based refresh) apply it to every member, and the customer-value package backtests it against
the model's signals (``care.value.backtest``) to choose the shop's churn signal.
"""

from __future__ import annotations

import math

from care.core.config import CareConfig

# Nobody is "drifting" two days after buying three times in one afternoon: a usual gap is at
# least a week, whatever the arithmetic says.
MIN_USUAL_GAP_DAYS = 7.0
# Below this many members with a rhythm of their own, the shop's typical gap is the configured
# fallback (``CareConfig.fallback_gap_days``) rather than their median.
MIN_MEMBERS_FOR_SHOP_GAP = 20


def usual_gap_days(
    purchase_count: int, avg_gap_days: float | None, config: CareConfig, shop_gap_days: float
) -> float:
    """The gap between purchases that is normal for this member.

    Their own average once they have ``config.min_purchases_for_own_gap`` purchases, else the
    shop-wide typical gap; never below ``MIN_USUAL_GAP_DAYS``.
    """
    if purchase_count >= config.min_purchases_for_own_gap and avg_gap_days is not None:
        gap = avg_gap_days
    else:
        gap = shop_gap_days
    return max(gap, MIN_USUAL_GAP_DAYS)


def churn_risk(gap_days: float, usual_gap: float, config: CareConfig) -> float:
    """0 right after a purchase, rising linearly to 1 when the member counts as lapsed.

    Half-way (0.5 with the default factors) is where the at-risk stage begins. Rounded to
    hundredths (half up), so that an hourly refresh rewrites only the members whose risk moved.
    """
    ratio = min(1.0, max(0.0, gap_days / (config.lapsed_gap_factor * usual_gap)))
    return math.floor(ratio * 100 + 0.5) / 100
