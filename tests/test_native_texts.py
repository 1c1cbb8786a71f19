"""Texts read natively in Chinese and English: no ASCII list commas between Chinese words, no raw
identifiers (category keys, rule names, stage codes, zone names) in what a person reads, counts
grouped alike, English plurals right, discounts and dates as people say them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from care.core.clock import FrozenClock
from care.core.config import DEFAULT_CATEGORIES
from care.core.formatting import (
    discount_label,
    format_average,
    format_count,
    format_day,
    format_duration,
    join_list,
    zone_label,
)
from care.core.i18n import LOCALES_DIR, catalogue, translator
from care.core.templates import TEMPLATES_DIR
from handlers.shopper.settings import overview_text
from storage.enums import LifecycleStage, StaffRole
from storage.models import Member, MemberInterest
from tests.conftest import RunningBot
from tests.staff_helpers import make_member, make_staff
from tests.test_member_view import CASHIER_ID, CODE, _rich_member

HAN = r"[\u3400-\u9fff]"
ASCII_LIST_COMMA = re.compile(rf"{HAN}[\s*_<>/b]*,\s*[\s*_<>/b]*{HAN}|\}}, \{{")
RULES = [path.stem.removesuffix(".html") for path in (TEMPLATES_DIR / "zh").glob("*.j2")]
# Identifiers that must never reach a reader: snake_case codes and zone ids everywhere, and in
# Chinese text any rule name or category key (in English "birthday" and "fresh" are words).
SNAKE_CODES = sorted(
    code for code in {*RULES, *(stage.value for stage in LifecycleStage)} if "_" in code
)
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def raw_identifiers(text: str, locale: str) -> list[str]:
    found = [code for code in SNAKE_CODES if re.search(rf"\b{code}\b", text)]
    found += re.findall(r"\b(?:Asia|Europe|America|Etc|Australia|Africa|Pacific)/\w+", text)
    if locale == "zh":
        words = {*DEFAULT_CATEGORIES, *RULES}
        found += [word for word in sorted(words) if re.search(rf"\b{word}\b", text)]
    return found


def test_no_zh_text_has_an_ascii_list_comma_between_chinese_words() -> None:
    offenders = [
        (key, text) for key, text in catalogue("zh").items() if ASCII_LIST_COMMA.search(text)
    ]
    for path in sorted((TEMPLATES_DIR / "zh").glob("*.j2")):
        offenders += [
            (path.name, line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if ASCII_LIST_COMMA.search(line)
        ]
    assert offenders == []
    # The check itself bites.
    assert ASCII_LIST_COMMA.search("美妆护肤, 生鲜食品")
    assert ASCII_LIST_COMMA.search("{a}, {b}")


def test_no_catalogue_text_names_a_raw_identifier() -> None:
    for locale in ("zh", "en"):
        for key, text in catalogue(locale).items():
            # Placeholders and commands (<code>/purchase …</code>) are for the code and the
            # staff's keyboard, not prose.
            prose = re.sub(r"\{[^}]*\}|<code>.*?</code>|/\w+", "", text)
            assert raw_identifiers(prose, locale) == [], (locale, key)
    assert list(Path(LOCALES_DIR, "en").glob("*.toml")) != []


def test_english_texts_have_no_plural_shortcuts_and_counted_phrases_agree() -> None:
    en, zh = catalogue("en"), catalogue("zh")
    assert [key for key, text in en.items() if "(s)" in text] == []
    counted = sorted(key.removesuffix(".one") for key in en if key.endswith(".one"))
    assert counted, "no counted phrases"
    t_en, t_zh = translator("en"), translator("zh")
    for base in counted:
        assert f"{base}.other" in en and f"{base}.one" in zh and f"{base}.other" in zh
        one, two = t_en.count(base, 1), t_en.count(base, 2)
        assert one.startswith("1 ") and two.startswith("2 ") and one[2:] != two[2:], base
        assert "1,200" in t_en.count(base, 1200)
        assert t_zh.count(base, 1).replace("1", "2") == t_zh.count(base, 2)
    assert t_en.count("stats.answers", 1) == "1 answer"
    assert t_en.count("stats.answers", 2) == "2 answers"
    assert t_en.count("stats.answers", 0) == "0 answers"


@pytest.mark.parametrize(
    ("percent", "zh", "en"),
    [(10, "9 折", "10% off"), (15, "8.5 折", "15% off"), (5, "9.5 折", "5% off"),
     (50, "5 折", "50% off"), (12, "8.8 折", "12% off")],
)  # fmt: skip
def test_discounts_read_as_people_say_them(percent: int, zh: str, en: str) -> None:
    assert discount_label(percent, "zh") == zh
    assert discount_label(percent, "en") == en


def test_lists_dates_counts_and_zones_read_natively() -> None:
    assert join_list(["美妆护肤", "生鲜食品"], "zh") == "美妆护肤、生鲜食品"
    assert join_list(["Beauty", "Fresh food"], "en") == "Beauty, Fresh food"
    assert format_day(date(2026, 11, 30), "zh") == "11月30日"
    assert format_day(date(2026, 11, 30), "en") == "30 Nov"
    assert format_day(date(1990, 5, 17), "zh", with_year=True) == "1990年5月17日"
    assert format_day(date(1990, 5, 17), "en", with_year=True) == "17 May 1990"
    assert format_count(2988) == "2,988" and format_count(1378) == "1,378"
    assert zone_label("Asia/Shanghai", "zh", NOW) == "北京时间（UTC+8）"
    assert zone_label("Asia/Shanghai", "en", NOW) == "China Time (UTC+8)"
    assert zone_label("Etc/GMT-8", "zh", NOW) == "UTC+8"
    assert zone_label("Etc/UTC", "en", NOW) == "UTC"
    assert zone_label("Asia/Kolkata", "zh", NOW) == "印度时间（UTC+5:30）"
    assert zone_label("Asia/Kathmandu", "en", NOW) == "Nepal Time (UTC+5:45)"
    assert zone_label("America/Indiana/Indianapolis", "en", NOW) == "Eastern Time (UTC-5)"


@pytest.mark.parametrize("language", ["zh", "en"])
async def test_the_member_view_shows_names_not_identifiers(app: RunningBot, language: str) -> None:
    await _rich_member(app)
    cashier = app.user(CASHIER_ID, language_code=language)
    await cashier.send(f"/member {CODE}")
    text = (await cashier.next_message()).text or ""
    assert raw_identifiers(text, language) == [], text
    if language == "zh":
        assert "美妆护肤" in text and "有流失风险" in text and "北京时间（UTC+8）" in text
        assert "1990年5月17日" in text
    else:
        assert "China Time (UTC+8)" in text and "17 May 1990" in text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("zh", ["兴趣：美妆护肤、生鲜食品", "时区：印度时间（UTC+5:30）", "生日：1990年5月17日"]),
        (
            "en",
            [
                "Interests: Beauty, Fresh food",
                "Timezone: India Time (UTC+5:30)",
                "Birthday: 17 May 1990",
            ],
        ),
    ],
)
def test_the_settings_overview_reads_natively(language: str, expected: list[str]) -> None:
    member = Member(
        locale=language,
        timezone="Asia/Kolkata",
        marketing_opt_in=False,
        surveys_opt_in=True,
        birthday=date(1990, 5, 17),
    )
    member.interests = [MemberInterest(category="beauty"), MemberInterest(category="fresh")]
    text = overview_text(translator(language), member, FrozenClock(NOW))
    for line in expected:
        assert line in text.splitlines(), text
    assert raw_identifiers(text, language) == []


def test_every_audited_action_has_a_name_in_both_languages() -> None:
    root = Path(__file__).resolve().parent.parent
    actions: set[str] = set()
    for folder in ("care", "handlers"):
        for path in (root / folder).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            actions |= set(re.findall(r'action="([a-z_]+\.[a-z_.]+)"', source))
            if 'action=f"export.{table}"' in source:
                actions |= {f"export.{table}" for table in ("members", "purchases")}
    assert {"purchase.record", "staff.add", "export.members"} <= actions
    for locale in ("zh", "en"):
        texts = catalogue(locale)
        missing = [
            a for a in sorted(actions) if f"roles.audit_action.{a.replace('.', '_')}" not in texts
        ]
        assert missing == [], (locale, missing)


@pytest.mark.parametrize(
    ("language", "shopper_sees", "staff_sees"),
    [("zh", "您的积分：2,988", "2,988 积分"), ("en", "Your points: 2,988", "2,988 points")],
)
async def test_points_are_grouped_alike_for_shoppers_and_staff(
    app: RunningBot, language: str, shopper_sees: str, staff_sees: str
) -> None:
    async with app.session() as session:
        member = await make_member(
            session, app.config, app.clock, 2301, "Mei", language_code=language,
            points_balance=2988,
        )  # fmt: skip
        code = member.member_code
        await make_staff(session, app.config, app.clock, 800031, StaffRole.CASHIER)
        await session.commit()
    shopper = app.user(2301, language_code=language)
    await shopper.send("/points")
    assert shopper_sees in (await shopper.next_message()).text
    await shopper.send("/card")
    assert "2,988" in (await shopper.wait_until(lambda m: m.photo is not None)).caption
    cashier = app.user(800031, language_code=language)
    await cashier.send(f"/member {code}")
    assert staff_sees in (await cashier.next_message()).text


@pytest.mark.parametrize(
    ("span", "zh", "en"),
    [
        (timedelta(seconds=40), "40秒", "40 secs"),
        (timedelta(minutes=1), "1分钟", "1 min"),
        (timedelta(hours=2, minutes=15), "2小时15分钟", "2 hrs 15 mins"),
        (timedelta(hours=1, seconds=29), "1小时", "1 hr"),
        (timedelta(days=1, hours=23, minutes=59), "2天", "2 days"),
        (timedelta(days=3, hours=4, minutes=10), "3天4小时", "3 days 4 hrs"),
    ],
)
def test_durations_read_natively_in_both_languages(span: timedelta, zh: str, en: str) -> None:
    assert (format_duration(span, "zh"), format_duration(span, "en")) == (zh, en)


def test_average_scores_drop_a_needless_decimal() -> None:
    assert (format_average(4.5), format_average(4.0), format_average(3.666)) == ("4.5", "4", "3.7")
