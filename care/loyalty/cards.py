"""The digital member card: what it shows and the QR code a till scans."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.qr import qr_png
from care.loyalty.tiers import tier_name, tier_progress
from storage.models import Member


@lru_cache(maxsize=4096)
def member_card_png(code: str) -> bytes:
    """A PNG QR code of the member code (made locally with segno) for the till's scanner.

    Kept for the members who asked lately: drawing one costs ~7 ms of CPU, and a code never
    changes what it draws (4,096 cards of ~1 kB each).
    """
    return qr_png(code)


class CardPhotos:
    """The Telegram ``file_id`` of each member's card image this bot has sent, by what it draws.

    Telegram keeps every photo a bot sends; sending its ``file_id`` again shows the same image
    without drawing or uploading it (an upload costs the bot a multipart body, Telegram a new
    file). The key is everything the image depends on: today only the member code, as the
    image is the code's QR (the caption carries tier and points). A ``file_id`` belongs to one
    bot token, so each dispatcher keeps its own; the newest ``limit`` are kept (~100 bytes each).
    """

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, str] = OrderedDict()

    def file_id(self, key: str) -> str | None:
        found = self._ids.get(key)
        if found is not None:
            self._ids.move_to_end(key)
        return found

    def remember(self, key: str, file_id: str) -> None:
        self._ids[key] = file_id
        self._ids.move_to_end(key)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def forget(self, key: str) -> None:
        self._ids.pop(key, None)


@dataclass(frozen=True, slots=True)
class CardView:
    code: str
    name: str
    tier_name: str
    points: int
    next_tier_name: str | None
    remaining_minor: int
    spend_12m_minor: int


async def card_view(session: AsyncSession, member: Member, locale: str) -> CardView:
    """Everything the member card shows, with tier names in ``locale``."""
    progress = await tier_progress(session, member)
    return CardView(
        code=member.member_code,
        name=member.name or "",
        tier_name=tier_name(progress.current, locale),
        points=member.points_balance,
        next_tier_name=tier_name(progress.next, locale) if progress.next else None,
        remaining_minor=progress.remaining_minor,
        spend_12m_minor=progress.spend_12m_minor,
    )
