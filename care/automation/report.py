"""Does each care rule work? Sent vs held out, conversions in each arm, and the uplift.

A touch converts when the member buys within ``config.conversion_days`` of it
(``care.loyalty.purchases.record_purchase`` marks ``CareTouch.converted_at``). The held-out arm is
a deterministic random ``config.holdout_pct`` of the members each rule found due, so the
difference between the arms' conversion rates is what the message itself achieved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.automation.engine import RuleOutcome
from care.automation.rules import RULES
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.templates import visible_text
from storage.enums import HoldoutArm
from storage.models import CareTouch

DEFAULT_REPORT_DAYS = 90


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's numbers over the report period."""

    rule: str
    kind: str
    holdout: bool
    sent: int
    held_out: int
    converted_sent: int
    converted_held_out: int

    @property
    def rate_sent(self) -> float | None:
        return self.converted_sent / self.sent if self.sent else None

    @property
    def rate_held_out(self) -> float | None:
        return self.converted_held_out / self.held_out if self.held_out else None

    @property
    def uplift(self) -> float | None:
        """Conversion rate sent minus held out, in percentage points; None without both arms."""
        if self.rate_sent is None or self.rate_held_out is None:
            return None
        return (self.rate_sent - self.rate_held_out) * 100


async def rule_report(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    days: int = DEFAULT_REPORT_DAYS,
) -> list[RuleResult]:
    """Per scheduled rule (in registry order): touches of the last ``days`` days by arm, and
    how many of each arm converted. One grouped query over the touches' (rule, decided_at)
    index."""
    since = clock.now() - timedelta(days=days)
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    query = (
        select(
            CareTouch.rule,
            CareTouch.arm,
            func.count(),
            func.count(CareTouch.converted_at),
        )
        .where(CareTouch.decided_at >= since)
        .group_by(CareTouch.rule, CareTouch.arm)
    )
    for rule_name, arm, total, converted in await session.execute(query):
        counts[(rule_name, arm)] = (int(total), int(converted))
    results = []
    for rule in RULES:
        if rule.event:
            continue
        sent, converted_sent = counts.get((rule.name, HoldoutArm.TREATMENT), (0, 0))
        held, converted_held = counts.get((rule.name, HoldoutArm.HOLDOUT), (0, 0))
        results.append(
            RuleResult(
                rule=rule.name,
                kind=str(rule.kind),
                holdout=rule.holdout,
                sent=sent,
                held_out=held,
                converted_sent=converted_sent,
                converted_held_out=converted_held,
            )
        )
    return results


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def render_report(results: list[RuleResult], config: CareConfig, days: int) -> str:
    """The report as a plain-text table for the terminal."""
    header = (
        f"{'rule':<20} {'kind':<9} {'sent':>7} {'held out':>8} {'conv sent':>10} "
        f"{'conv held':>10} {'uplift':>9}"
    )
    lines = [
        f"Care rules, last {days} days — conversion = a purchase within "
        f"{config.conversion_days} days; holdout {config.holdout_pct}% of due members.",
        header,
        "-" * len(header),
    ]
    for r in results:
        uplift = "—" if r.uplift is None else f"{r.uplift:+.1f} pp"
        conv_sent = f"{r.converted_sent} {_pct(r.rate_sent)}" if r.sent else "—"
        conv_held = f"{r.converted_held_out} {_pct(r.rate_held_out)}" if r.held_out else "—"
        if not r.holdout:
            conv_held, uplift = "n/a", "n/a"
        lines.append(
            f"{r.rule:<20} {r.kind:<9} {r.sent:>7} {r.held_out:>8} {conv_sent:>10} "
            f"{conv_held:>10} {uplift:>9}"
        )
    lines.append("uplift: conversion rate of members sent the message minus that of the holdout.")
    return "\n".join(lines)


def render_plan(outcomes: list[RuleOutcome], at: datetime, timezone: str) -> str:
    """What a dry run found: per rule, who would get what, and who would be held out."""
    zone = ZoneInfo(timezone)
    lines = [f"Dry run at {at.astimezone(zone):%Y-%m-%d %H:%M %Z} — nothing was sent or saved."]
    for outcome in outcomes:
        if not (outcome.decided or outcome.blocked or outcome.error):
            lines.append(f"== {outcome.rule}: nobody due")
            continue
        blocked = ", ".join(f"{k} {v}" for k, v in sorted(outcome.blocked.items()))
        lines.append(
            f"== {outcome.rule}: {outcome.sent} would be sent, {outcome.held_out} held out"
            + (f", blocked: {blocked}" if blocked else "")
            + (f" — {outcome.error}" if outcome.error else "")
        )
        for d in outcome.decisions:
            who = f"{d.member_code} {d.name or ''}".strip()
            if d.arm == HoldoutArm.HOLDOUT:
                lines.append(f"  - {who} [{d.locale}] held out (gets nothing; measured)")
                continue
            when = (
                f" at {d.not_before.astimezone(zone):%Y-%m-%d %H:%M}"
                if d.not_before and d.not_before > at
                else ""
            )
            lines.append(f"  - {who} [{d.locale}]{when}:")
            lines.extend(f"      {line}" for line in visible_text(d.text or "").splitlines())
    return "\n".join(lines)
