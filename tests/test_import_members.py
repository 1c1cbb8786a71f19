"""`carebot import members FILE.csv`: the shop's old customer list in, idempotent, line-numbered
rejects; imported people count but are never messaged, and become themselves in Telegram when
they share that phone number."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from care.console.stats import member_stats
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.imports.csvfile import ImportFileError
from care.imports.members import import_members
from care.imports.purchases import import_purchases
from care.loyalty.purchases import record_purchase
from care.members.membership import TelegramIdentity, create_member
from care.members.registration import claim_imported, find_imported, set_consent
from care.segments.audience import Audience, count_audience
from storage.db import create_engine, create_session_factory
from storage.enums import ConsentKind, MemberStatus, PointsReason
from storage.models import Base, ConsentEvent, Member, PointsEntry, Purchase
from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, register, wait_button, without_throttling
from tests.staff_helpers import OWNER_ID, make_member, session_factory

CONFIG = CareConfig(owner_ids=frozenset({OWNER_ID}))

MEMBERS_CSV = (
    "\ufeffPhone;Name;Birthday;Language;Points;Member_Code;Joined;"
    "Marketing_Consent;Consent_Date;Consent_Source\n"
    """+86 138-0013-8000;王芳;1988-04-12;zh;1200;OLD00017;2019-06-01;yes;2019-06-01;paper form
13900139000;Li Lei;;en;;;2020-01-15;no;;old app
+8613700137000;;;;;;;;;
not-a-phone;Bad;;;;;;;;
+8613600136000;Bad Birthday;1890-01-01;;;;;;;
+8613500135000;Bad Points;;;-5;;;;;
+8613400134000;Bad Language;;fr;;;;;;
+8613300133000;Taken Code;;;;OLD00017;;;;
+8613200132000;Future;;;;;2099-01-01;;;
+8613100131000;Consent?;;;;;;maybe;;
+8613000130000;Short
"""
)


@pytest.fixture
async def factory(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with session_factory(sqlite_url) as made:
        yield made


def _write(tmp_path: Path, text: str, name: str = "members.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


async def _members(factory: async_sessionmaker[AsyncSession]) -> list[Member]:
    async with factory() as session:
        return list(await session.scalars(select(Member).order_by(Member.id)))


async def test_a_customer_list_imports_good_lines_and_names_the_bad_ones(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    path = _write(tmp_path, MEMBERS_CSV)
    seen: list[tuple[int, int]] = []
    report = await import_members(
        factory, CONFIG, clock, path, batch_size=4, progress=lambda d, t: seen.append((d, t))
    )
    assert (report.lines, report.imported, report.duplicates) == (11, 3, 0)
    assert seen[-1] == (11, 11)
    reasons = {item.line: item.reason for item in report.rejected}
    assert reasons == {
        5: "phone 'not-a-phone' is not a phone number (5 to 15 digits)",
        6: "birthday '1890-01-01' makes them older than 120",
        7: "points '-5' is not a whole number of points",
        8: "language 'fr' is not zh or en",
        9: "member_code 'OLD00017' belongs to another member",
        10: "joined '2099-01-01' is in the future",
        11: "marketing_consent 'maybe' is not yes or no",
        12: "fewer values than columns in the header",
    }

    wang, li, anon = await _members(factory)
    assert wang.status == MemberStatus.IMPORTED and wang.telegram_id is None
    assert wang.chat_id is None
    assert (wang.phone, wang.name, wang.member_code) == ("+8613800138000", "王芳", "OLD00017")
    assert wang.birthday is not None and wang.birthday.isoformat() == "1988-04-12"
    assert wang.points_balance == 1200 and wang.marketing_opt_in
    assert wang.registered_at is not None and wang.registered_at.year == 2019
    assert (li.phone, li.locale, li.marketing_opt_in) == ("13900139000", "en", False)
    assert len(li.member_code) == 8
    assert anon.locale == CONFIG.default_locale and anon.name is None

    async with factory() as session:
        ledger = list(await session.scalars(select(PointsEntry)))
        consents = list(await session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)))
    assert [(e.member_id, e.delta, e.balance_after, e.reason) for e in ledger] == [
        (wang.id, 1200, 1200, PointsReason.OPENING)
    ]
    assert [(c.member_id, c.kind, c.granted, c.source) for c in consents] == [
        (wang.id, ConsentKind.MARKETING, True, "import:paper form"),
        (li.id, ConsentKind.MARKETING, False, "import:old app"),
    ]
    assert consents[0].at.year == 2019


async def test_a_second_run_changes_nothing_and_a_dry_run_saves_nothing(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    path = _write(tmp_path, MEMBERS_CSV)
    dry = await import_members(factory, CONFIG, clock, path, dry_run=True)
    assert (dry.imported, len(dry.rejected), dry.dry_run) == (3, 8, True)
    assert await _members(factory) == []

    await import_members(factory, CONFIG, clock, path)
    again = await import_members(factory, CONFIG, clock, path)
    assert (again.imported, again.duplicates) == (0, 3)
    assert len(await _members(factory)) == 3
    async with factory() as session:
        assert await session.scalar(select(func.count()).select_from(PointsEntry)) == 1
        assert await session.scalar(select(func.count()).select_from(ConsentEvent)) == 2


async def test_a_file_that_cannot_be_imported_says_why_and_changes_nothing(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    no_phone = _write(tmp_path, "name,points\nWang,10\n", "no_phone.csv")
    with pytest.raises(ImportFileError, match="missing column"):
        await import_members(factory, CONFIG, clock, no_phone)
    # A bad byte at the end: GB18030 cannot read it either, found before line 2 is saved.
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"phone\n+8613800138000\n\xff\xff\xff\x80\n")
    with pytest.raises(ImportFileError):
        await import_members(factory, CONFIG, clock, broken)
    assert await _members(factory) == []


async def test_a_gbk_list_imports_too(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    path = _write(tmp_path, "phone,name\n13800138000,王芳\n", encoding="gbk")
    report = await import_members(factory, CONFIG, clock, path)
    assert report.imported == 1
    assert [m.name for m in await _members(factory)] == ["王芳"]


async def test_imported_members_count_buy_by_phone_and_are_never_messaged(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    await import_members(factory, CONFIG, clock, _write(tmp_path, MEMBERS_CSV))
    purchases = _write(
        tmp_path,
        "receipt_id,member,amount,purchased_at\n"
        "R-1,+8613800138000,120.00,2026-02-01T10:00:00+08:00\n"
        "R-2,13900139000,80.00,2026-02-03T10:00:00+08:00\n"
        "R-3,OLD00017,20.00,2026-02-04T10:00:00+08:00\n",
        "purchases.csv",
    )
    report = await import_purchases(factory, CONFIG, clock, purchases)
    assert (report.imported, report.rejected) == (3, [])
    async with factory() as session:
        await make_member(session, CONFIG, clock, 77, "Telegram Tom", marketing_opt_in=True)
        await session.commit()
        wang = await session.scalar(select(Member).where(Member.member_code == "OLD00017"))
        assert wang is not None and wang.purchase_count == 2
        assert wang.points_balance == 1200 + 140
        stats = await member_stats(session, clock)
        assert stats.total == 4  # three imported, one from Telegram
        # Broadcasts and coupon issues reach only the member with a chat.
        assert await count_audience(session, Audience("all")) == 1
        assert await count_audience(session, Audience("all"), marketing=False) == 1


async def test_the_cli_imports_members_with_a_progress_bar_and_exit_codes(
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ADMIN_IDS", str(OWNER_ID))
    monkeypatch.chdir(Path(os.environ.get("TMPDIR", "/tmp")))
    path = _write(tmp_path, MEMBERS_CSV)
    assert await asyncio.to_thread(main, ["import", "members", str(path), "--dry-run"]) == 1
    out, err = capsys.readouterr()
    assert "Dry run" in out and "3 new members" in out and "line 9: member_code" in out
    assert "importing members [" in err and "11/11" in err
    good = _write(tmp_path, "phone\n+8613800138000\n", "good.csv")
    assert await asyncio.to_thread(main, ["import", "members", str(good)]) == 0
    assert "1 new member" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["import", "members", "/nonexistent.csv"]) == 2


# ------------------------------------------------------------------ joining in Telegram


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def _import_shop_history(app: RunningBot, tmp_path: Path, birthday: str) -> int:
    members = _write(
        tmp_path,
        "phone,name,birthday,points,member_code,joined,marketing_consent,consent_source\n"
        f"13800138000,Wang Fang,{birthday},500,OLD00017,2019-06-01,yes,paper form\n",
    )
    purchases = _write(
        tmp_path,
        "receipt_id,member,amount,purchased_at\n"
        "R-1,13800138000,900.00,2026-01-10T10:00:00+08:00\n"
        "R-2,OLD00017,300.00,2026-02-10T10:00:00+08:00\n",
        "purchases.csv",
    )
    factory = app.services.session_factory
    assert (await import_members(factory, app.config, app.clock, members)).imported == 1
    assert (await import_purchases(factory, app.config, app.clock, purchases)).imported == 2
    async with app.session() as session:
        imported = await session.scalar(select(Member).where(Member.member_code == "OLD00017"))
        assert imported is not None and imported.telegram_id is None
        return imported.id


@pytest.mark.parametrize(
    ("locale", "tier", "points", "carried"),
    [
        ("zh", "等级：银卡会员", "积分：{}", "原积分转入"),
        ("en", "Tier: Silver", "Points: {}", "Balance carried over"),
    ],
)
async def test_sharing_the_imported_phone_makes_them_that_member(
    app: RunningBot, tmp_path: Path, locale: str, tier: str, points: str, carried: str
) -> None:
    # In zh the shop knows the birthday (the step is skipped); in en it does not.
    imported_id = await _import_shop_history(app, tmp_path, "1988-04-12" if locale == "zh" else "")
    user = app.user(5001, first_name="Fang", language_code=locale, phone_number="+8613800138000")
    if locale == "en":
        await register(user, locale, marketing=True)
    else:
        await user.send("/start")
        await wait_button(user, "中文")
        await user.press("中文")
        await wait_button(user, label(locale, "reg.consent_yes"))
        await user.press(label(locale, "reg.consent_yes"))
        await wait_button(user, label(locale, "reg.marketing_yes"))
        await user.press(label(locale, "reg.marketing_yes"))
        keep = label(locale, "reg.name_keep", name="Fang")
        await wait_button(user, keep)
        await user.press(keep)
        await wait_button(user, label(locale, "reg.phone_button"))
        await user.press(label(locale, "reg.phone_button"))
        await wait_button(user, label(locale, "buttons.done"))
        await user.press(label(locale, "buttons.done"))
        await user.wait_until(lambda m: m.photo is not None)
    assert any(label(locale, "reg.phone_linked") in (m.text or "") for m in user.messages)

    member = await member_of(app, 5001)
    assert member is not None and member.id == imported_id
    assert member.status == MemberStatus.ACTIVE and member.member_code == "OLD00017"
    assert member.purchase_count == 2 and member.points_balance >= 500 + 1200
    assert member.registered_at is not None and member.registered_at.year == 2019
    assert member.phone == "+8613800138000"
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Member)) == 1
        sources = list(
            await session.scalars(
                select(ConsentEvent.source)
                .where(ConsentEvent.member_id == imported_id)
                .order_by(ConsentEvent.id)
            )
        )
    # The import's consent stays on record with its source, beside the registration's own.
    assert sources == ["import:paper form", "registration", "registration"]

    await user.send("/card")
    card = await user.wait_until(lambda m: m.photo is not None and "OLD00017" in (m.caption or ""))
    balance = f"{member.points_balance:,}"
    assert tier in (card.caption or "")
    assert points.format(balance) in (card.caption or "")
    await user.send("/points")
    history = await user.wait_until(lambda m: carried in (m.text or ""))
    assert balance in (history.text or "")


async def test_a_phone_nobody_imported_registers_a_new_member(
    app: RunningBot, tmp_path: Path
) -> None:
    await _import_shop_history(app, tmp_path, "")
    user = app.user(5002, language_code="en", phone_number="+447700900123")
    await register(user, "en")
    member = await member_of(app, 5002)
    assert member is not None and member.member_code != "OLD00017"
    assert member.points_balance == 0
    async with app.session() as session:
        still = await session.scalar(select(Member).where(Member.member_code == "OLD00017"))
        assert still is not None and still.status == MemberStatus.IMPORTED


async def test_a_half_registered_row_merges_into_the_imported_member_safely(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    await import_members(
        factory, CONFIG, clock, _write(tmp_path, "phone,points\n13800138000,300\n")
    )
    async with factory() as session:
        identity = TelegramIdentity(user_id=6001, chat_id=6001, first_name="Fang")
        half = await create_member(session, identity, CONFIG, clock)
        await set_consent(session, clock, half, ConsentKind.PROFILE, True, "registration")
        # A cashier rang up a purchase for them while they were still registering.
        await record_purchase(
            session, CONFIG, clock, member_id=half.id, amount_minor=5_000, receipt_id="T-1"
        )
        await session.commit()
        half_id = half.id

    async with factory() as session:
        registering = await session.get(Member, half_id)
        assert registering is not None
        # Someone else's number links nobody.
        assert await claim_imported(session, clock, registering, "+8613900000000") is None
        linked = await claim_imported(session, clock, registering, "+8613800138000")
        await session.commit()
    assert linked is not None and linked.id != half_id

    async with factory() as session:
        assert await session.get(Member, half_id) is None
        member = await session.get(Member, linked.id)
        assert member is not None
        assert (member.telegram_id, member.chat_id, member.status) == (
            6001,
            6001,
            MemberStatus.IMPORTED,
        )
        assert member.profile_consent_at is not None
        assert member.purchase_count == 1 and member.points_balance == 300 + 50
        owners = set(await session.scalars(select(Purchase.member_id)))
        assert owners == {linked.id}
        consent_owners = set(await session.scalars(select(ConsentEvent.member_id)))
        assert consent_owners == {linked.id}


async def test_the_phone_match_runs_on_sqlite_and_postgresql(
    any_db_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    engine = create_engine(any_db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        made = create_session_factory(engine)
        members = "phone\n13800138000\n+447700900123\n912345678\n12345678\n"
        report = await import_members(made, CONFIG, clock, _write(tmp_path, members))
        assert report.imported == 4
        async with made() as session:
            by_suffix = await find_imported(session, "+8613800138000")
            exact = await find_imported(session, "+447700900123")
            # A country code is never guessed: +44 7700 900123 is not 447700900123 in Germany.
            assert await find_imported(session, "+497700900123") is None
            # "…912345678" ends two imported numbers: a person never gets someone else's card.
            assert await find_imported(session, "+8613912345678") is None
            only = await find_imported(session, "+8613812345678")
            assert only is not None and only.phone == "12345678"
        assert by_suffix is not None and by_suffix.phone == "13800138000"
        assert exact is not None and exact.phone == "+447700900123"
    finally:
        await engine.dispose()
