"""The /stats chart: weekly NPS and CSAT lines over 12 weeks, and members by lifecycle stage.

Rendered off-screen into PNG bytes on matplotlib's Agg canvas, set explicitly per figure (no
pyplot, no global backend state, no display needed). Labels come from the message
catalogues; Chinese labels need a font with CJK glyphs, which matplotlib's bundled DejaVu lacks,
so a zh chart is drawn in Chinese only when such a font is installed (Noto Sans CJK, Source Han
Sans, WenQuanYi, …) and in English otherwise — never with missing-glyph boxes.
"""

from __future__ import annotations

import io
from functools import cache

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from care.console.stats import ShopStats
from care.core.i18n import Translator, translator
from storage.enums import CURRENT_STAGES

CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "AR PL UMing CN",
    "PingFang SC",
    "Microsoft YaHei",
    "SimHei",
)
NPS_COLOR = "#2b6cb0"
CSAT_COLOR = "#dd6b20"
BAR_COLOR = "#38a169"


@cache
def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, or None."""
    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    return None


def chart_translator(locale: str) -> tuple[Translator, list[str]]:
    """The catalogue to label the chart with, and the font families to draw it in."""
    families = ["DejaVu Sans"]
    if locale == "en":
        return translator("en"), families
    font = cjk_font()
    if font is None:
        return translator("en"), families
    return translator(locale), [font, *families]


def stats_chart_png(stats: ShopStats, locale: str) -> bytes:
    """A PNG with two panels: NPS and CSAT per week, and members per lifecycle stage."""
    t, families = chart_translator(locale)
    figure = Figure(figsize=(9, 7.5), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    trend, stages = figure.subplots(2, 1, height_ratios=(3, 2))

    labels = [week.start.strftime("%m-%d") for week in stats.weeks]
    positions = list(range(len(labels)))
    nps = [week.nps for week in stats.weeks]
    csat = [week.csat for week in stats.weeks]

    trend.set_title(t.plain("chart.trend_title"), fontfamily=families)
    trend.axhline(0, color="#999999", linewidth=0.8)
    # Weeks without answers are left out, and the line joins the weeks around them.
    nps_points = [(i, v) for i, v in enumerate(nps) if v is not None]
    trend.plot(
        [i for i, _ in nps_points],
        [v for _, v in nps_points],
        marker="o",
        color=NPS_COLOR,
    )
    trend.set_xlim(-0.5, len(labels) - 0.5)
    trend.set_ylim(-105, 105)
    trend.set_ylabel(t.plain("chart.nps"), color=NPS_COLOR, fontfamily=families)
    trend.set_xticks(positions, labels, fontsize=8)
    trend.set_xlabel(t.plain("chart.week_of"), fontfamily=families)
    trend.grid(axis="y", alpha=0.3)

    csat_axis = trend.twinx()
    csat_points = [(i, v) for i, v in enumerate(csat) if v is not None]
    csat_axis.plot(
        [i for i, _ in csat_points],
        [v for _, v in csat_points],
        marker="s",
        color=CSAT_COLOR,
    )
    csat_axis.set_ylim(0.9, 5.1)
    csat_axis.set_ylabel(t.plain("chart.csat"), color=CSAT_COLOR, fontfamily=families)
    if all(v is None for v in nps + csat):
        trend.text(
            0.5,
            0.5,
            t.plain("chart.no_answers"),
            transform=trend.transAxes,
            ha="center",
            va="center",
            color="#777777",
            fontfamily=families,
        )

    names = [t.plain(f"chart.stage.{stage.value}") for stage in CURRENT_STAGES]
    counts = [stats.members.by_stage.get(stage.value, 0) for stage in CURRENT_STAGES]
    bars = stages.bar(range(len(names)), counts, color=BAR_COLOR)
    stages.bar_label(bars, fontsize=8)
    stages.set_xticks(range(len(names)), names, fontsize=8, fontfamily=families)
    stages.set_title(t.plain("chart.stages_title"), fontfamily=families)
    stages.set_ylabel(t.plain("chart.members"), fontfamily=families)
    stages.yaxis.set_major_locator(MaxNLocator(integer=True))
    stages.margins(y=0.15)

    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()
