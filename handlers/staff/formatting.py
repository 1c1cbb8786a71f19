"""Small formatting helpers shared by the staff console's handlers (local times, excerpts)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from care.conversations.surveys import score_scale
from care.core.config import CareConfig
from care.core.formatting import format_day
from care.core.i18n import Translator
from storage.enums import MemberStatus
from storage.models import Member


def local(when: datetime, config: CareConfig) -> datetime:
    """``when`` in the shop's timezone: staff read times as the shop's clock shows them."""
    return when.astimezone(ZoneInfo(config.default_timezone))


def local_date(when: datetime, config: CareConfig, locale: str) -> str:
    """A shop-local date in a sentence: ``2026年3月2日`` / ``2 Mar 2026``."""
    return format_day(local(when, config), locale, with_year=True)


def local_time(when: datetime, config: CareConfig) -> str:
    return local(when, config).strftime("%Y-%m-%d %H:%M")


def short_time(when: datetime, config: CareConfig) -> str:
    return local(when, config).strftime("%m-%d %H:%M")


def score_text(t: Translator, score: int, kind: str) -> str:
    """A survey score with its scale, "3/5" or "6/10": a bare "3" does not say out of what."""
    return t.plain("staff_language.score", score=score, scale=score_scale(kind))


def excerpt(text: str | None, limit: int = 80) -> str:
    """One line of at most ``limit`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def member_name(t: Translator, member: Member | None) -> str:
    """The member as staff call them; one who erased their data reads "erased member", not "?"."""
    if member is None or member.status == MemberStatus.DELETED:
        return t.plain("staff_language.erased_member")
    return member.name or member.member_code
