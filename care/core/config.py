"""The shop's policy, as the care engine and the chat UI see it.

Built by ``bot.settings.Settings.care_config()`` from the environment; tests build it directly.
Nothing here knows where the values came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "grocery",
    "fresh",
    "beauty",
    "home",
    "apparel",
    "electronics",
    "kids",
)


@dataclass(frozen=True, slots=True)
class CareConfig:
    owner_ids: frozenset[int] = frozenset()
    # The language of owners who have not chosen one in the chat yet (ADMIN_LANGUAGES).
    owner_locales: tuple[tuple[int, str], ...] = ()
    shop_name: str = "carebot shop"
    default_locale: str = "zh"
    default_timezone: str = "Asia/Shanghai"
    currency: str = "CNY"
    categories: tuple[str, ...] = DEFAULT_CATEGORIES

    # Loyalty: points per whole currency unit spent (before the tier multiplier).
    points_per_unit: int = 1
    # A till purchase of at least this much (minor units) waits for the cashier to confirm it;
    # 0 never asks.
    large_purchase_minor: int = 500_000
    # How long a cashier may still void or refund a purchase they recorded (admins: always).
    void_window_minutes: int = 30

    # Guardrails.
    quiet_start: time = time(21, 0)
    quiet_end: time = time(9, 0)
    marketing_cap: int = 2
    marketing_cap_days: int = 7
    holdout_pct: int = 10

    # Lifecycle thresholds.
    new_member_days: int = 30
    at_risk_gap_factor: float = 2.0
    lapsed_gap_factor: float = 4.0
    fallback_gap_days: float = 30.0
    min_purchases_for_own_gap: int = 3
    won_back_days: int = 60
    conversion_days: int = 14

    # Delivery.
    send_rate: float = 25.0
    per_chat_interval: float = 1.0
    max_attempts: int = 5

    staff_chat_id: int | None = None
    # When the shop answers, in the shop's own words ("Mon–Sat 9:00–21:00"); told to a shopper
    # who opens a conversation. Empty: "we usually answer within a few hours".
    opening_hours: str = ""
    rules_disabled: frozenset[str] = field(default_factory=frozenset)

    def is_owner(self, telegram_id: int) -> bool:
        return telegram_id in self.owner_ids

    def owner_locale(self, telegram_id: int) -> str | None:
        """The language configured for an owner, if any (their own choice in the chat wins)."""
        return next((loc for owner, loc in self.owner_locales if owner == telegram_id), None)
