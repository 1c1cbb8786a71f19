"""The /stats chart: weekly NPS and CSAT lines over 12 weeks, members by lifecycle stage, and
the conversations: handling ratings per staff member under the answer times and open counts.

Rendered off-screen into PNG bytes on matplotlib's Agg canvas, set explicitly per figure (no
pyplot, no global backend state, no display needed). Labels come from the message
catalogues. Chinese labels need a font with CJK glyphs, which matplotlib's bundled DejaVu lacks
and a fresh server seldom has, so the project ships one: ``fonts/CarebotCJK-Regular.otf``, cut
from Noto Sans CJK SC (SIL Open Font License, ``fonts/OFL.txt``) by
``scripts/subset_cjk_font.py``, registered with matplotlib's font manager on first use.
"""

from __future__ import annotations

import io
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from care.console.stats import ShopStats
from care.conversations.surveys import score_scale
from care.core.formatting import format_average, format_count, format_day, format_duration
from care.core.i18n import Translator, translator
from storage.enums import CURRENT_STAGES, SurveyKind

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CJK_FONT_FILE = (
    Path(__file__).resolve().parent.parent / "core" / "fonts" / "CarebotCJK-Regular.otf"
)
CJK_FAMILY = "Carebot CJK"
NPS_COLOR = "#2b6cb0"
CSAT_COLOR = "#dd6b20"
BAR_COLOR = "#38a169"
RATING_COLOR = "#805ad5"


@cache
def chart_families() -> list[str]:
    """The font families to draw with: the shipped CJK font first (registered once per
    process), then DejaVu Sans for anything it lacks."""
    from matplotlib import font_manager  # matplotlib costs ~1 s to import: only when drawn

    font_manager.fontManager.addfont(str(CJK_FONT_FILE))
    return [CJK_FAMILY, "DejaVu Sans"]


def stats_chart_png(
    stats: ShopStats, locale: str, staff_names: dict[int, str] | None = None
) -> bytes:
    """A PNG with three panels: NPS and CSAT per week, members per lifecycle stage, and the
    conversations (ratings per staff member, named by ``staff_names``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = stats_chart_figure(stats, locale, staff_names)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def stats_chart_figure(
    stats: ShopStats, locale: str, staff_names: dict[int, str] | None = None
) -> Figure:
    """The chart as a matplotlib figure, labelled in ``locale``."""
    # Imported here, not at the top: the bot starts without paying for matplotlib.
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    t, families = translator(locale), chart_families()
    figure = Figure(figsize=(9, 10), dpi=100, layout="constrained")
    trend, stages, conversations = figure.subplots(3, 1, height_ratios=(3, 2, 2))

    labels = [format_day(week.start, t.locale) for week in stats.weeks]
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
    trend.set_xticks(positions, labels, fontsize=8, fontfamily=families)
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
        _no_data(trend, t.plain("chart.no_answers"), families)

    names = [t.plain(f"chart.stage.{stage.value}") for stage in CURRENT_STAGES]
    counts = [stats.members.by_stage.get(stage.value, 0) for stage in CURRENT_STAGES]
    bars = stages.bar(range(len(names)), counts, color=BAR_COLOR)
    stages.bar_label(bars, fontsize=8)
    stages.set_xticks(range(len(names)), names, fontsize=8, fontfamily=families)
    stages.set_title(t.plain("chart.stages_title"), fontfamily=families)
    stages.set_ylabel(t.plain("chart.members"), fontfamily=families)
    stages.yaxis.set_major_locator(MaxNLocator(integer=True))
    stages.margins(y=0.15)
    _conversations_panel(conversations, stats, t, families, staff_names or {})
    return figure


def _conversations_panel(
    axes: Axes,
    stats: ShopStats,
    t: Translator,
    families: list[str],
    staff_names: dict[int, str],
) -> None:
    """Ratings per staff member as bars on the 1–5 scale, the answer times and open counts
    in the panel's title."""
    figures = stats.conversations

    def duration(span: timedelta | None) -> str:
        return format_duration(span, t.locale) if span is not None else "–"

    axes.set_title(
        t.plain("chart.conversations_title")
        + "\n"
        + t.plain(
            "chart.conversations_figures",
            first=duration(figures.first_response),
            resolution=duration(figures.resolution),
            open=format_count(figures.open),
            waiting=format_count(figures.waiting),
        ),
        fontfamily=families,
        fontsize=10,
    )
    scale = score_scale(SurveyKind.TICKET)
    axes.set_xlim(0, scale + 0.9)
    if not figures.ratings:
        axes.set_yticks([])
        _no_data(axes, t.plain("chart.no_ratings"), families)
        return
    ratings = list(reversed(figures.ratings))  # the best on top
    names = [
        staff_names.get(rating.staff_telegram_id)
        or t.plain("staff_language.label_unknown", user_id=rating.staff_telegram_id)
        for rating in ratings
    ]
    bars = axes.barh(range(len(ratings)), [r.average for r in ratings], color=RATING_COLOR)
    axes.bar_label(
        bars,
        [
            t.plain(
                "chart.rating_bar",
                score=format_average(r.average),
                scale=scale,
                ratings=t.count("stats.ratings", r.count),
            )
            for r in ratings
        ],
        padding=3,
        fontsize=8,
        fontfamily=families,
    )
    axes.set_yticks(range(len(ratings)), names, fontsize=8, fontfamily=families)


def _no_data(axes: Axes, text: str, families: list[str]) -> None:
    """A grey line in the middle of an empty panel saying what is missing."""
    axes.text(
        0.5,
        0.5,
        text,
        transform=axes.transAxes,
        ha="center",
        va="center",
        color="#777777",
        fontfamily=families,
    )
