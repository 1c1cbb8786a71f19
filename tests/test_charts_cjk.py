"""The /stats chart draws Chinese with the font the project ships, on any machine."""

from __future__ import annotations

import re
import warnings
from datetime import timedelta

from fontTools.ttLib import TTFont
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text

from care.console.charts import CJK_FONT_FILE, stats_chart_figure, stats_chart_png
from care.console.stats import shop_stats
from care.core.formatting import format_duration
from care.core.i18n import catalogue
from tests.conftest import RunningBot

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_the_shipped_font_covers_every_chinese_chart_label_and_carries_its_licence() -> None:
    cmap = TTFont(CJK_FONT_FILE)["cmap"].getBestCmap()
    texts = [
        text
        for key, text in catalogue("zh").items()
        if key.startswith(("chart.", "stats.ratings."))
    ]
    assert texts
    # The conversation panel's durations, as Babel writes them in Chinese.
    texts += [format_duration(span, "zh") for span in (timedelta(seconds=5), timedelta(days=1.6))]
    missing = {ch for text in texts for ch in text if not ch.isspace() and ord(ch) not in cmap}
    assert not missing, f"re-run scripts/subset_cjk_font.py: {sorted(missing)}"
    assert "SIL Open Font License" in (CJK_FONT_FILE.parent / "OFL.txt").read_text()


async def test_a_chinese_chart_is_labelled_in_chinese_in_the_shipped_font(
    app: RunningBot,
) -> None:
    async with app.session() as session:
        stats = await shop_stats(session, app.config, app.clock)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = stats_chart_figure(stats, "zh")
        FigureCanvasAgg(figure).draw()
    assert not [w for w in caught if "missing from font" in str(w.message)]
    labels = [
        text
        for text in figure.findobj(Text)
        if isinstance(text, Text) and HAN.search(text.get_text())
    ]
    shown = {text.get_text() for text in labels}
    assert {"各生命周期阶段的会员", "会员数", "新会员", "有流失风险"} <= shown, shown
    assert any("月" in s and "日" in s for s in shown)  # week ticks read 11月30日
    for text in labels:
        found = font_manager.findfont(FontProperties(family=text.get_fontfamily()))
        assert found == str(CJK_FONT_FILE), (text.get_text(), found)
    assert stats_chart_png(stats, "zh").startswith(b"\x89PNG")
