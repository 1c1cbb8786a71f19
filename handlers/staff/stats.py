"""/stats (admin and up): the shop's numbers as a compact text and a chart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message

from care.automation.report import RuleResult
from care.campaigns.report import CampaignReport
from care.console.charts import stats_chart_png
from care.console.conversation_stats import ConversationStats
from care.console.stats import MemberStats, ShopStats, WeekStats, shop_stats
from care.conversations.surveys import score_scale
from care.core.formatting import (
    format_average,
    format_count,
    format_day,
    format_duration,
    join_list,
)
from care.core.i18n import Translator
from care.core.money import format_money
from care.core.quiet_hours import member_zone
from care.staff.profiles import staff_labels
from care.value.signal import (
    MIN_CUSTOMERS,
    MIN_RETURNERS,
    REASON_BACKTEST,
    REASON_THIN,
    SignalStatus,
)
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from storage.enums import CURRENT_STAGES, StaffRole, SurveyKind, ValueTier


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "–"


def _age(t: Translator, age: timedelta | None) -> str:
    return format_duration(age, t.locale) if age is not None else "–"


def _conversations(t: Translator, stats: ShopStats, staff_names: dict[int, str]) -> list[str]:
    """Open and waiting now; first answer and closing times; ratings per staff member."""
    figures: ConversationStats = stats.conversations
    lines = [
        t("stats.conversations_title"),
        t(
            "stats.tickets",
            open=format_count(figures.open),
            waiting=format_count(figures.waiting),
            oldest=_age(t, stats.tickets.oldest_age),
            median=_age(t, stats.tickets.median_age),
        )
        if figures.open
        else t("stats.tickets_none"),
    ]
    for key, median, count in (
        ("stats.first_response", figures.first_response, figures.first_response_count),
        ("stats.resolution", figures.resolution, figures.resolution_count),
    ):
        lines.append(
            t(
                key,
                median=format_duration(median, t.locale),
                conversations=t.count("stats.conversations", count),
            )
            if median is not None
            else t(f"{key}_none")
        )
    if not figures.ratings:
        lines.append(t("stats.ratings_none"))
        return lines
    lines.append(t("stats.ratings_title"))
    scale = score_scale(SurveyKind.TICKET)
    for rating in figures.ratings:
        lines.append(
            t(
                "stats.rating_line",
                staff=staff_names.get(rating.staff_telegram_id)
                or t.plain("staff_language.label_unknown", user_id=rating.staff_telegram_id),
                score=format_average(rating.average),
                scale=scale,
                ratings=t.count("stats.ratings", rating.count),
            )
        )
    return lines


def _satisfaction(t: Translator, period: WeekStats, last: WeekStats) -> str:
    if period.nps_count:
        nps = t(
            "stats.nps",
            score=f"{period.nps:+.0f}",
            promoters=_percent(period.promoters, period.nps_count),
            passives=_percent(period.passives, period.nps_count),
            detractors=_percent(period.detractors, period.nps_count),
            answers=t.count("stats.answers", period.nps_count),
        )
    else:
        nps = t("stats.nps_none")
    if period.csat_count:
        csat = t(
            "stats.csat",
            score=f"{period.csat:.2f}",
            answers=t.count("stats.answers", period.csat_count),
        )
        if period.expectation_count:
            csat += "\n" + t(
                "stats.expectation",
                worse=_percent(period.worse, period.expectation_count),
                same=_percent(period.as_expected, period.expectation_count),
                better=_percent(period.better, period.expectation_count),
            )
    else:
        csat = t("stats.csat_none")
    this_week = t(
        "stats.this_week",
        nps=f"{last.nps:+.0f}" if last.nps is not None else "–",
        csat=f"{last.csat:.2f}" if last.csat is not None else "–",
    )
    return f"{nps}\n{csat}\n{this_week}"


def _campaign_line(t: Translator, report: CampaignReport, tz_name: str) -> str:
    started = report.started_at.astimezone(member_zone(tz_name)) if report.started_at else None
    line = t(
        "stats.campaign_line",
        id=report.campaign_id,
        date=format_day(started, t.locale) if started else "–",
        recipients=report.recipients,
        sent=report.sent,
        failed=report.failed,
        blocked=report.blocked + report.held_back,
        pending=report.pending,
    )
    if report.coupons:
        # A coupon issue whose notices could not go still gave members something.
        line += t("content.stats_coupons", coupons=report.coupons)
    return line


def _predicted(t: Translator, members: MemberStats, currency: str) -> list[str]:
    """The value model's outlook: 12-month value per value tier, purchases expected next month."""
    if members.expected_purchases_30d is None:
        return []
    parts = [
        t.plain(
            "stats.count",
            label=t.plain(f"stats.value.{tier}"),
            n=format_money(value, currency),
        )
        for tier in [*(v.value for v in ValueTier), "unscored"]
        if (value := members.predicted_value_by_tier.get(tier))
    ]
    return [
        t("stats.predicted_value", parts=join_list(parts, t.locale) or "–"),
        t("stats.expected_purchases", n=format_count(round(members.expected_purchases_30d))),
    ]


def _churn_signal(t: Translator, status: SignalStatus | None, tz_name: str) -> list[str]:
    """Which signal says who is likely to leave, and why, in the owner's words: an AUC reads
    as "picks out the leaver N times in 100"."""
    if status is None:
        return []
    signal = t.plain(f"stats.churn.signal.{status.signal}")
    if status.reason == REASON_BACKTEST and status.chosen_at is not None:
        chosen = status.chosen_at.astimezone(member_zone(tz_name))
        others = [
            t.plain("stats.churn.other", signal=t.plain(f"stats.churn.signal.{name}"),
                    score=_in_100(auc))
            if auc is not None
            else t.plain("stats.churn.untested", signal=t.plain(f"stats.churn.signal.{name}"))
            for name, auc in status.aucs.items()
            if name != status.signal
        ]  # fmt: skip
        return [
            t(
                "stats.churn.chosen",
                signal=signal,
                date=format_day(chosen, t.locale),
                score=_in_100(status.aucs.get(status.signal)),
                others=join_list(others, t.locale),
            )
        ]
    if status.reason == REASON_THIN and status.cutoff is not None:
        return [
            t(
                "stats.churn.thin",
                signal=signal,
                customers=t.count("stats.churn.customers", status.customers),
                date=format_day(status.cutoff, t.locale),
                returners=format_count(status.returners),
                min_customers=format_count(MIN_CUSTOMERS),
                min_returners=format_count(MIN_RETURNERS),
            )
        ]
    return [t("stats.churn.none", signal=signal)]


def _in_100(auc: float | None) -> str:
    return "–" if auc is None else str(round(100 * auc))


def render_stats(
    t: Translator,
    stats: ShopStats,
    tz_name: str,
    currency: str,
    staff_names: dict[int, str] | None = None,
) -> str:
    """The /stats text: short lines a shop owner reads at a glance; ``staff_names`` shows the
    staff members rated (``care.staff.profiles.staff_labels``)."""
    members = stats.members
    stage_parts = [
        t.plain("stats.count", label=t.plain(f"chart.stage.{stage.value}"), n=format_count(count))
        for stage in CURRENT_STAGES
        if (count := members.by_stage.get(stage.value, 0))
    ]
    value_parts = [
        t.plain("stats.count", label=t.plain(f"stats.value.{tier}"), n=format_count(count))
        for tier in [*(v.value for v in ValueTier), "unscored"]
        if (count := members.by_value_tier.get(tier, 0))
    ]
    lines = [
        t("stats.title"),
        t(
            "stats.members",
            total=format_count(members.total),
            new_7d=format_count(members.new_7d),
            new_30d=format_count(members.new_30d),
        ),
        t("stats.by_stage", parts=join_list(stage_parts, t.locale) or "–"),
        t("content.stats_offers_off", n=format_count(members.offers_off)),
        t("stats.by_value", parts=join_list(value_parts, t.locale) or "–"),
        *_predicted(t, members, currency),
        *_churn_signal(t, stats.churn, tz_name),
        "",
        t("stats.satisfaction_title"),
        _satisfaction(t, stats.period, stats.weeks[-1]),
        "",
        *_conversations(t, stats, staff_names or {}),
    ]
    lines += ["", t("stats.campaigns_title")]
    if stats.campaigns:
        lines += [_campaign_line(t, report, tz_name) for report in stats.campaigns]
    else:
        lines.append(t("stats.campaigns_none"))
    if stats.rules:
        lines += ["", t("stats.rules_title")]
        lines += [_rule_line(t, row) for row in stats.rules]
    return "\n".join(lines)


def _rule_line(t: Translator, result: RuleResult) -> str:
    key = f"stats.rule.{result.rule}"
    uplift = result.uplift
    return t(
        "stats.rule_line",
        rule=t.plain(key) if t.has(key) else result.rule,
        sent=result.sent,
        converted=_percent(result.converted_sent, result.sent),
        uplift=t.plain("stats.uplift", pp=f"{uplift:+.1f}") if uplift is not None else "–",
    )


async def cmd_stats(message: Message, staff: StaffContext) -> None:
    t, config = staff.t, staff.config
    stats = await shop_stats(staff.session, config, staff.clock)
    await staff.audit("stats.view")
    rated = [rating.staff_telegram_id for rating in stats.conversations.ratings]
    names = await staff_labels(staff.session, t, rated)
    await message.answer(render_stats(t, stats, config.default_timezone, config.currency, names))
    # Drawing takes a few hundred milliseconds of CPU: keep the event loop free meanwhile.
    png = await asyncio.to_thread(stats_chart_png, stats, t.locale, names)
    await message.answer_photo(
        BufferedInputFile(png, filename="stats.png"), caption=t("stats.chart_caption")
    )


async def refuse_cashier(message: Message, t: Translator) -> None:
    await message.answer(t("console.admin_only"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_stats, Command("stats"), MinRole(StaffRole.ADMIN))
    router.message.register(refuse_cashier, Command("stats", "broadcast", "offer"))
    return router
