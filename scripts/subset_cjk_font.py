"""Make care/core/fonts/CarebotCJK-Regular.otf: the chart font, cut from Noto Sans CJK SC.

    pip download --no-deps noto-cjk-sans-otc   # the OFL-licensed Noto Sans CJK collection
    python scripts/subset_cjk_font.py path/to/NotoSansCJK-Regular.ttc

Keeps the Simplified Chinese face's glyphs for ASCII, Latin-1, general and CJK punctuation, the
3,755 most common Chinese characters (GB 2312 level 1) and every character of the zh message
catalogues, so chart labels render in Chinese without a 16 MB font in the repository. The
family is renamed (``Carebot CJK``), as the SIL Open Font License asks of a modified version;
the licence travels with it (care/core/fonts/OFL.txt). Re-run after adding chart labels with
rare characters: tests/test_charts_cjk.py checks that the catalogue is covered.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "care" / "core" / "fonts" / "CarebotCJK-Regular.otf"
FAMILY = "Carebot CJK"
SC_FACE = "Noto Sans CJK SC"


def gb2312_level1() -> set[str]:
    chars = set()
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                chars.add(bytes([high, low]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def wanted_characters() -> set[str]:
    chars = {chr(code) for code in range(0x20, 0x7F)} | {chr(c) for c in range(0xA0, 0x100)}
    chars |= {chr(code) for code in range(0x2000, 0x2070)}  # general punctuation
    chars |= {chr(code) for code in range(0x3000, 0x3040)}  # CJK symbols and punctuation
    chars |= {chr(code) for code in range(0xFF00, 0xFFF0)}  # full-width forms
    chars |= gb2312_level1()
    for path in (ROOT / "care" / "core" / "locales" / "zh").glob("*.toml"):
        chars |= set(path.read_text(encoding="utf-8"))
    return {ch for ch in chars if ch.isprintable()}


def main(source: str) -> None:
    collection = TTCollection(source)
    faces = [face for face in collection.fonts if face["name"].getDebugName(1) == SC_FACE]
    if not faces:
        raise SystemExit(f"{source} has no {SC_FACE!r} face")
    font = faces[0]
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(ch) for ch in wanted_characters()])
    subsetter.subset(font)
    names = font["name"]
    for record in names.names:
        if record.nameID in (1, 16):
            record.string = FAMILY
        elif record.nameID == 4:
            record.string = f"{FAMILY} Regular"
        elif record.nameID == 6:
            record.string = "CarebotCJK-Regular"
    font["CFF "].cff.fontNames = ["CarebotCJK-Regular"]
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    font.save(TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
