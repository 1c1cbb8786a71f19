"""The member card image: a landscape card in the tier's colour with the shop, the member and
the QR code; Chinese where a CJK font is plugged in, readable English where none is."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from care.core.qr import qr_png
from care.loyalty import cards
from care.loyalty.cards import CARD_SIZE, TIER_COLOURS, CardView, member_card_image

LATIN_FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
PROJECT_FONT = cards.CARE / "core" / "fonts" / "CarebotCJK-Regular.otf"


def view(name: str = "Li Lei", tier: str = "gold", tier_name: str = "Gold") -> CardView:
    return CardView(
        code="K7QX2M9P", name=name, tier_name=tier_name, points=1250, next_tier_name=None,
        remaining_minor=0, spend_12m_minor=0, tier_code=tier, tier_name_en="Gold",
    )  # fmt: skip


def pixels(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def hex_colour(rgb: tuple[int, ...]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb[:3])


def test_the_card_is_a_tier_coloured_landscape_image_unlike_a_coupon() -> None:
    gold = pixels(member_card_image(view(), "Test Shop", "en"))
    assert gold.size == CARD_SIZE and CARD_SIZE[0] > CARD_SIZE[1]
    assert hex_colour(gold.getpixel((5, 5))) == TIER_COLOURS["gold"][0]  # type: ignore[arg-type]
    silver = pixels(member_card_image(view(tier="silver"), "Test Shop", "en"))
    assert hex_colour(silver.getpixel((5, 5))) == TIER_COLOURS["silver"][0]  # type: ignore[arg-type]
    coupon = pixels(qr_png("K7QX2M9P"))
    assert coupon.size[0] == coupon.size[1]  # a coupon is a bare square QR
    # Name, shop and points are drawn: changing any of them changes the picture.
    base = member_card_image(view(), "Test Shop", "en")
    assert member_card_image(view(name="Han Mei"), "Test Shop", "en") != base
    assert member_card_image(view(), "Other Shop", "en") != base


def test_without_a_cjk_font_the_card_falls_back_to_english(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cards, "cjk_font_path", lambda: None)
    chinese = member_card_image(view(name="王小明", tier_name="金卡会员"), "Test Shop", "zh")
    english = member_card_image(view(name=""), "Test Shop", "en")
    assert chinese == english  # English labels and tier; the Chinese name stays in the caption


def test_a_font_without_a_character_never_draws_empty_boxes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A font file that lacks Chinese glyphs: Latin text is drawn with it, Chinese falls back.
    assert LATIN_FONT.is_file()
    monkeypatch.setattr(cards, "cjk_font_path", lambda: LATIN_FONT)
    assert cards.drawable("Li Lei") and not cards.drawable("王小明")
    chinese = member_card_image(view(name="王小明", tier_name="金卡会员"), "Test Shop", "zh")
    english = member_card_image(view(name=""), "Test Shop", "en")
    assert chinese == english


@pytest.mark.skipif(not PROJECT_FONT.is_file(), reason="the project's CJK font is not merged yet")
def test_the_project_font_draws_the_card_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cards.cjk_font_path() == PROJECT_FONT  # found without any setting
    assert cards.drawable("王小明") and cards.drawable("金卡会员")
    chinese = member_card_image(view(name="王小明", tier_name="金卡会员"), "鲜果小铺", "zh")
    monkeypatch.setattr(cards, "cjk_font_path", lambda: None)
    assert (
        member_card_image(view(name="王小明", tier_name="金卡会员"), "鲜果小铺", "zh") != chinese
    )
