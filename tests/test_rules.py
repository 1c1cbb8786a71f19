"""The rules registry is complete and consistent; the dry run and the report from the CLI."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main as cli
from care.automation.report import render_report, rule_report
from care.automation.rules import RULES, Rule, Trigger, get_rule, scheduled_rules
from care.automation.triggers import TRIGGERS
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.core.i18n import LOCALES
from care.core.templates import check_message, member_context, render_rule
from storage.db import create_engine, create_session_factory
from storage.enums import MessageKind
from storage.models import CareTouch, Coupon, Member, OutboxMessage
from tests.rules_helpers import add_member

Factory = async_sessionmaker[AsyncSession]

SAMPLE_FACTS: dict[str, object] = {
    "coupon": {"code": "ABCD-2345", "offer": "10% off", "expires": "2026-04-01"},
    "coupon_waiting": True,
    "purchase_count": 0,
    "purchase_day": "2026-03-02",
    "years": 2,
    "multiplier_pct": 125,
    "multiplier": "1.25",
    "next_tier": "Gold",
    "next_multiplier_pct": 150,
    "next_multiplier": "1.5",
    "remaining": "¥100.00",
    "reward_points": 200,
    "friend": "Mei",
}


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    db_engine = create_engine(sqlite_url)
    yield create_session_factory(db_engine)
    await db_engine.dispose()


def test_rule_names_are_unique_and_short_enough_for_the_schema() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(len(name) <= 32 for name in names)  # care_touches.rule, outbox.rule


def test_the_registry_covers_every_care_rule_the_shop_was_promised() -> None:
    triggers = {rule.trigger for rule in RULES}
    assert triggers == set(Trigger)
    assert len(RULES) >= 14


@pytest.mark.parametrize("rule", [r for r in RULES if not r.event], ids=lambda r: r.name)
def test_every_scheduled_rule_renders_valid_telegram_html_in_every_language(rule: Rule) -> None:
    assert rule.trigger in TRIGGERS
    assert rule.template is not None
    for locale in LOCALES:
        member = Member(
            id=1, member_code="AB23CD45", name="<Li & Co>", locale=locale, tier_code="silver",
            points_balance=10, spend_12m_minor=0, timezone="Asia/Shanghai",
        )  # fmt: skip
        text = render_rule(
            rule.template, locale, member_context(member, CareConfig(), **SAMPLE_FACTS)
        )
        assert check_message(text) == text
        assert "&lt;Li &amp; Co&gt;" in text


def test_service_messages_never_carry_offers_and_only_marketing_is_held_out() -> None:
    for rule in RULES:
        if rule.kind != MessageKind.MARKETING:
            assert rule.offer is None or rule.trigger == Trigger.REFERRAL, rule.name
            assert not rule.holdout, rule.name
    with pytest.raises(ValueError, match="only marketing rules carry offers"):
        Rule(
            name="x", trigger=Trigger.PURCHASE, kind=MessageKind.SERVICE, template="x",
            offer="welcome",
        )  # fmt: skip


def test_the_low_score_alert_is_listed_and_points_at_the_code_that_sends_it() -> None:
    rule = get_rule("low_score_alert")
    assert rule.event and rule.kind == MessageKind.ALERT and rule.handled_by
    assert rule not in scheduled_rules(CareConfig())
    for path in rule.handled_by.split(" → "):
        module, name = path.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name))


def test_rules_switch_off_by_configuration() -> None:
    config = CareConfig(rules_disabled=frozenset({"birthday", "winback"}))
    names = {rule.name for rule in scheduled_rules(config)}
    assert "birthday" not in names and "winback" not in names and "welcome" in names
    assert scheduled_rules(config, "birthday") == []
    with pytest.raises(KeyError, match="known: welcome"):
        get_rule("no_such_rule")


async def test_report_counts_each_arm_and_the_uplift(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    async with db() as session:
        members = [await add_member(session, now) for _ in range(15)]
        for n, member in enumerate(members):
            held = n >= 10
            converted = (n < 4) or n == 10
            session.add(
                CareTouch(
                    rule="welcome",
                    member_id=member.id,
                    occasion="joined",
                    arm="holdout" if held else "treatment",
                    decided_at=now - timedelta(days=2),
                    converted_at=now if converted else None,
                )
            )
        await session.commit()
        results = {r.rule: r for r in await rule_report(session, clock, CareConfig())}
    welcome = results["welcome"]
    assert (welcome.sent, welcome.held_out) == (10, 5)
    assert (welcome.converted_sent, welcome.converted_held_out) == (4, 1)
    assert welcome.rate_sent == pytest.approx(0.4) and welcome.rate_held_out == pytest.approx(0.2)
    assert welcome.uplift == pytest.approx(20.0)
    assert results["birthday"].uplift is None
    table = render_report(list(results.values()), CareConfig(), 90)
    assert "+20.0 pp" in table and "40.0%" in table


def test_cli_dry_run_prints_who_would_get_what_and_keeps_nothing(
    clock: FrozenClock, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    async def add_ann() -> None:
        db_engine = create_engine(sqlite_url)
        async with create_session_factory(db_engine)() as session:
            await add_member(session, clock.now(), name="Ann", locale="en")
            await session.commit()
        await db_engine.dispose()

    async def kept() -> list[int]:
        db_engine = create_engine(sqlite_url)
        async with create_session_factory(db_engine)() as session:
            counts = [
                await session.scalar(select(func.count()).select_from(model))
                for model in (OutboxMessage, CareTouch, Coupon)
            ]
        await db_engine.dispose()
        return [int(n or 0) for n in counts]

    asyncio.run(add_ann())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    # Ann joined at 11:00 Shanghai time; a dry run "at" 11:30 finds her welcome due.
    assert cli(["care", "dry-run", "--rule", "welcome", "--at", "2026-03-02T11:30"]) == 0
    out = capsys.readouterr().out
    assert "Dry run at 2026-03-02 11:30" in out
    assert "welcome: 1 would be sent" in out and "Ann" in out and "Welcome to" in out
    assert asyncio.run(kept()) == [0, 0, 0]

    assert cli(["care", "report"]) == 0
    assert "welcome" in capsys.readouterr().out
    assert cli(["care", "dry-run", "--rule", "nope"]) == 2
    assert "no care rule 'nope'" in capsys.readouterr().err
