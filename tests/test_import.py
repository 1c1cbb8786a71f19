"""`carebot import purchases FILE.csv`: a till export in, idempotent, line-by-line report."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from care.core.audit import recent_audit
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.imports.purchases import ImportFileError, import_purchases, progress_bar, render_report
from storage.models import Member, OutboxMessage, Purchase
from tests.staff_helpers import OWNER_ID, make_member, session_factory

SAMPLE = Path(__file__).parent / "data" / "pos_sample.csv"
CONFIG = CareConfig(owner_ids=frozenset({OWNER_ID}))


@pytest.fixture
async def factory(
    sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with session_factory(sqlite_url) as made:
        async with made() as session:
            li = await make_member(session, CONFIG, clock, 1, "Li Lei", phone="+8613800138000")
            li.member_code = "K7QX2M9P"
            han = await make_member(session, CONFIG, clock, 2, "Han Meimei")
            han.member_code = "H4ND8W3R"
            await make_member(session, CONFIG, clock, None, "Wang Fang", phone="8613900139000")
            await session.commit()
        yield made


async def _purchases(factory: async_sessionmaker[AsyncSession]) -> list[Purchase]:
    async with factory() as session:
        return list(await session.scalars(select(Purchase).order_by(Purchase.receipt_id)))


async def test_the_sample_file_imports_good_lines_and_reports_bad_ones(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    seen: list[tuple[int, int]] = []
    report = await import_purchases(
        factory, CONFIG, clock, SAMPLE, batch_size=4, progress=lambda d, t: seen.append((d, t))
    )
    assert report.lines == 15  # the blank line is skipped
    assert report.imported == 6
    assert report.duplicates == 1
    rejected = {item.line: item.reason for item in report.rejected}
    assert sorted(rejected) == [6, 7, 8, 9, 10, 12, 13, 16]
    assert "no member" in rejected[6] and "NOSUCH99" in rejected[6]
    assert "not an amount" in rejected[7]
    assert "USD" in rejected[8]
    assert "toys" in rejected[9]
    assert "ISO 8601" in rejected[10]
    assert "receipt_id is empty" in rejected[12]
    assert "larger than any single purchase" in rejected[13]
    assert "future" in rejected[16]
    # Progress came per batch and ended at the total.
    assert seen[-1] == (15, 15)
    assert len(seen) >= 4

    purchases = {p.receipt_id: p for p in await _purchases(factory)}
    assert sorted(purchases) == [
        "R-10001", "R-10002", "R-10003", "R-10004", "R-10011", "R-10013",
    ]  # fmt: skip
    assert purchases["R-10001"].amount_minor == 8850
    assert purchases["R-10013"].amount_minor == 102400
    assert purchases["R-10011"].category == "home"
    assert purchases["R-10001"].source == "import"
    # Without an offset the time is the shop's (Shanghai, +08:00); "Z" is UTC.
    assert purchases["R-10002"].purchased_at.isoformat() == "2026-02-21T10:40:00+00:00"
    assert purchases["R-10003"].purchased_at.isoformat() == "2026-02-22T01:05:00+00:00"

    async with factory() as session:
        li = await session.scalar(select(Member).where(Member.member_code == "K7QX2M9P"))
        assert li is not None
        assert li.purchase_count == 3  # R-10001, R-10002 (by phone), R-10013
        assert li.total_spent_minor == 8850 + 120000 + 102400
        assert li.points_balance > 0
        entry = (await recent_audit(session, action="import.purchases"))[0]
        assert entry.details == {"lines": 15, "imported": 6, "duplicates": 1, "rejected": 8}

    text = render_report(report)
    assert "6 new purchases, 1 already recorded, 8 rejected" in text
    assert "  line 6: no member with the code or phone 'NOSUCH99'" in text


async def test_a_second_import_counts_nothing_new(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await import_purchases(factory, CONFIG, clock, SAMPLE)
    before = await _balance(factory)
    again = await import_purchases(factory, CONFIG, clock, SAMPLE)
    assert again.imported == 0
    assert again.duplicates == 7
    assert len(again.rejected) == 8
    assert len(await _purchases(factory)) == 6
    # 88 + 1200 at the base rate, then Silver (×1.25) for the 1,024.00: earned once only.
    assert before == await _balance(factory) == 88 + 1200 + 1280


async def _balance(factory: async_sessionmaker[AsyncSession]) -> int | None:
    async with factory() as session:
        return await session.scalar(
            select(Member.points_balance).where(Member.member_code == "K7QX2M9P")
        )


async def test_a_dry_run_reports_and_saves_nothing(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    report = await import_purchases(factory, CONFIG, clock, SAMPLE, dry_run=True)
    assert report.imported == 6
    assert len(report.rejected) == 8
    assert await _purchases(factory) == []
    assert render_report(report).startswith("Dry run")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("receipt_id,amount\nR1,10\n", "missing columns: member, purchased_at"),
    ],
)
async def test_a_file_that_cannot_be_imported_says_why(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, content: str, message: str
) -> None:
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await import_purchases(factory, CONFIG, clock, io.StringIO(content))
    assert await _purchases(factory) == []


async def test_semicolons_bom_and_short_lines(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    content = (
        "\ufeffReceipt_ID;Member;Amount;Purchased_At\n"
        "S-1;K7QX2M9P;12.5;2026-03-01T09:00:00+08:00\n"
        "S-2;K7QX2M9P\n"
    )
    report = await import_purchases(
        factory, CONFIG, clock, io.StringIO(content.removeprefix("\ufeff"))
    )
    assert report.imported == 1
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "fewer values than columns in the header")
    ]


def test_progress_bar_draws_plain_text() -> None:
    stream = io.StringIO()
    draw = progress_bar(stream, width=10)
    draw(5, 10)
    draw(10, 10)
    assert stream.getvalue() == (
        "\rimporting purchases [#####-----]  50% 5/10"
        "\rimporting purchases [##########] 100% 10/10\n"
    )


async def test_the_cli_imports_with_a_progress_bar_and_a_report(
    factory: async_sessionmaker[AsyncSession],
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("ADMIN_IDS", str(OWNER_ID))
    monkeypatch.chdir(Path(os.environ.get("TMPDIR", "/tmp")))
    code = await _run_cli(["import", "purchases", str(SAMPLE)])
    out, err = capsys.readouterr()
    assert code == 1  # some lines were rejected
    assert "importing purchases [" in err and "15/15" in err
    assert "6 new purchases" in out
    assert "line 13: amount '5000000.00' is larger" in out

    missing = await _run_cli(["import", "purchases", "/nonexistent/file.csv"])
    assert missing == 2
    assert "cannot open" in capsys.readouterr().err


async def _run_cli(argv: list[str]) -> int:
    # main() runs its own event loop: keep it off this test's loop.
    return await asyncio.to_thread(main, argv)


async def test_a_gbk_file_from_a_chinese_till_imports_too(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock, tmp_path: Path
) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(
        "receipt_id,member,amount,category,purchased_at\n"
        "G-1,K7QX2M9P,18.00,,2026-03-01 10:00\n"
        "G-2,K7QX2M9P,9.00,生鲜,2026-03-01 10:05\n".encode("gbk")
    )
    report = await import_purchases(factory, CONFIG, clock, path)
    assert report.imported == 1
    assert [r.reason for r in report.rejected] == [
        "category '生鲜' is not one of the shop's: grocery, fresh, beauty, home, apparel, "
        "electronics, kids"
    ]


async def test_european_decimals_import_and_ambiguous_amounts_are_reported(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    content = (
        "receipt_id;member;amount;purchased_at\n"
        "E-1;K7QX2M9P;12,50;2026-03-01T09:00:00+08:00\n"
        "E-2;K7QX2M9P;1.250;2026-03-01T10:00:00+08:00\n"
    )
    report = await import_purchases(factory, CONFIG, clock, io.StringIO(content))
    assert report.imported == 1
    assert [(r.line, r.reason.split(" (")[0]) for r in report.rejected] == [
        (3, "amount '1.250' is ambiguous")
    ]


async def test_an_import_sends_no_receipts_even_for_todays_purchases(
    factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    today = io.StringIO(
        "receipt_id,member,amount,currency,category,purchased_at\n"
        f"R-TODAY,K7QX2M9P,10,CNY,,{clock.now().isoformat()}\n"
    )
    report = await import_purchases(factory, CONFIG, clock, today)
    assert report.imported == 1
    async with factory() as session:
        queued = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.rule == "receipt")
        )
    assert queued == 0  # receipts are for purchases just made at a till (care.loyalty.receipts)
