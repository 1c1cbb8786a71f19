"""The digital member card: what it shows, and the card image the shopper carries.

The image (drawn with Pillow) is a landscape card in the colour of the member's tier with the
shop's name, the member's name, code, tier and points beside the QR code the till scans, so it
can never be mistaken for a coupon (a bare square QR, see ``care.core.qr``).

Chinese text needs a font with CJK glyphs, which Pillow does not ship. ``cjk_font_path`` is the
one place that finds such a font file (the project's own first); without one the card still
renders: labels fall back to English, the tier to its English name, and a name the font cannot
draw is left off the image (the caption under the photo carries it in full).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.codes import display_code
from care.core.i18n import translator
from care.core.qr import qr_png
from care.loyalty.tiers import tier_name, tier_progress
from storage.models import Member

CARD_SIZE = (900, 560)
QR_SIZE = 300
MARGIN = 40
# Colours per tier code (background, accent); an unknown tier gets the first.
TIER_COLOURS: dict[str, tuple[str, str]] = {
    "member": ("#1f4e79", "#8fb8de"),
    "silver": ("#5b6470", "#d9dde2"),
    "gold": ("#8a6d1d", "#f2d27a"),
    "platinum": ("#2b2b33", "#b9c3d6"),
}
CARE = Path(__file__).resolve().parent.parent
# Fonts with Chinese glyphs, most preferred first: the project's own (the subset of Noto Sans CJK
# SC shipped in care/core/fonts, which the /stats charts draw with too), then the usual system
# locations on Debian/Ubuntu, Fedora, macOS.
CJK_FONT_CANDIDATES: tuple[Path, ...] = (
    CARE / "core" / "fonts" / "CarebotCJK-Regular.otf",
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/System/Library/Fonts/PingFang.ttc"),
)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


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
    file). The key is everything the image draws (``card_image_key``: shop, language, code,
    name, tier and points), so a changed balance draws a new card. A ``file_id`` belongs to one
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
    tier_code: str = "member"
    tier_name_en: str = ""


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
        tier_code=progress.current.code,
        tier_name_en=progress.current.name_en,
    )


def cjk_font_path() -> Path | None:
    """The font file used for Chinese text on the card, or None when there is none.

    The one place to plug a font in: a shipped font (for example the one the /stats charts
    use) only needs to be returned from here.
    """
    return next((path for path in CJK_FONT_CANDIDATES if path.is_file()), None)


def needs_cjk(text: str) -> bool:
    return any(ord(char) >= 0x2E80 for char in text)


@cache
def _font(size: int, cjk: Path | None) -> Font:
    if cjk is not None:
        return ImageFont.truetype(str(cjk), size)
    return ImageFont.load_default(size)


def card_font(size: int) -> Font:
    """A font for the card at ``size`` px: the CJK font when there is one, else Pillow's own."""
    return _font(size, cjk_font_path())


@cache
def _glyphs(path: Path) -> frozenset[int]:
    """The code points a font file has glyphs for (a shipped subset may lack rare characters)."""
    with TTFont(str(path), fontNumber=0, lazy=True) as font:
        return frozenset(font.getBestCmap())


def drawable(text: str) -> bool:
    """Whether the card's font can draw every character of ``text``: Chinese needs a CJK font
    that has each of its characters, or the card would show empty boxes."""
    path = cjk_font_path()
    if path is None:
        return not needs_cjk(text)
    glyphs = _glyphs(path)
    return all(ord(char) in glyphs for char in text if not char.isspace())


def card_image_key(view: CardView, shop_name: str, locale: str) -> str:
    """Everything the card image shows: the same key, the same picture."""
    return "\x1f".join(
        (shop_name, locale, view.code, view.name, view.tier_code, view.tier_name, str(view.points))
    )


def member_card_image(view: CardView, shop_name: str, locale: str) -> bytes:
    """The member card as a PNG: shop, name, code, tier and points beside the QR code."""
    return _card_png(view, shop_name, locale, cjk_font_path())


# Drawing a card costs ~25 ms of CPU; a member asking for it twice with nothing changed (the
# view is the whole input, the font path too) gets the same bytes without drawing again.
@lru_cache(maxsize=1024)
def _card_png(view: CardView, shop_name: str, locale: str, font: Path | None) -> bytes:
    # ``font`` only keys the cache: the drawing asks ``cjk_font_path`` itself.
    labels = translator(locale if drawable(translator(locale)("rewards.card.title")) else "en")
    background, accent = TIER_COLOURS.get(view.tier_code, TIER_COLOURS["member"])
    image = Image.new("RGB", CARD_SIZE, background)
    draw = ImageDraw.Draw(image)
    width, height = CARD_SIZE
    draw.rectangle((0, height - 18, width, height), fill=accent)  # a tier-coloured stripe

    shop = shop_name if drawable(shop_name) else ""
    draw.text((MARGIN, MARGIN - 6), shop, font=card_font(44), fill="white")
    draw.text((MARGIN, MARGIN + 48), labels.plain("rewards.card.title"), font=card_font(22),
              fill=accent)  # fmt: skip

    # Pasted at its own size: scaling a QR by a non-whole factor makes its modules uneven.
    qr = Image.open(io.BytesIO(qr_png(view.code))).convert("RGB")
    if qr.width > QR_SIZE:
        qr = qr.resize((QR_SIZE, QR_SIZE), Image.Resampling.NEAREST)
    left = width - MARGIN - QR_SIZE - 12 + (QR_SIZE - qr.width) // 2
    qr_top = (height - qr.height) // 2 + 10
    draw.rounded_rectangle(
        (width - MARGIN - QR_SIZE - 24, qr_top - 12, width - MARGIN, qr_top + qr.height + 12),
        radius=18, fill="white",
    )  # fmt: skip
    image.paste(qr, (left, qr_top))
    qr_left = width - MARGIN - QR_SIZE - 24

    top = 170
    if view.name and drawable(view.name):
        draw.text((MARGIN, top), _fit(view.name, 40, qr_left - 2 * MARGIN), font=card_font(40),
                  fill="white")  # fmt: skip
    tier = view.tier_name if drawable(view.tier_name) else (view.tier_name_en or view.tier_code)
    rows = (
        (labels.plain("rewards.card.code"), display_code(view.code)),
        (labels.plain("rewards.card.tier"), tier),
        (labels.plain("rewards.card.points"), f"{view.points:,}"),
    )
    for index, (label, value) in enumerate(rows):
        y = top + 70 + index * 80
        draw.text((MARGIN, y), label, font=card_font(22), fill=accent)
        draw.text((MARGIN, y + 26), value, font=card_font(38), fill="white")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _fit(text: str, size: int, room: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``room`` pixels wide at ``size``."""
    font = card_font(size)
    if font.getlength(text) <= room:
        return text
    while text and font.getlength(text + "…") > room:
        text = text[:-1]
    return text + "…"
