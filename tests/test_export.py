"""/export: admins and owners download members, purchases, feedback or surveys as CSV or Excel;
every export is audited; the batches keep memory flat."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cli import main
from care.console.exports import iter_rows, write_export
from care.conversations.tickets import open_ticket
from care.core.audit import recent_audit
from care.loyalty.purchases import record_purchase
from storage.enums import MemberStatus, StaffRole, TicketKind
from storage.models import MemberValue, SurveyInvitation, SurveyResponse
from tests.conftest import RunningBot
from tests.staff_helpers import OWNER_ID, make_member, make_staff, session_factory

ADMIN_ID = 800001


async def _shop(session: AsyncSession, app: RunningBot) -> None:
    clock, config = app.clock, app.config
    li = await make_member(session, config, clock, 2001, '=HYPERLINK("x")', phone="+8613800138000")
    li.member_code = "K7QX2M9P"
    wang = await make_member(session, config, clock, 2002, "王芳")
    wang.member_code = "H4ND8W3R"
    gone = await make_member(session, config, clock, 2003, "Gone")
    gone.status = MemberStatus.DELETED
    await record_purchase(
        session, config, clock, member_id=li.id, amount_minor=8850, receipt_id="R-1",
        category="grocery",
    )  # fmt: skip
    await record_purchase(
        session, config, clock, member_id=wang.id, amount_minor=120000, receipt_id="R-2"
    )
    await open_ticket(session, clock, member=wang, kind=TicketKind.COMPLAINT, text="牛奶坏了")
    invitation = SurveyInvitation(
        member_id=wang.id, kind="nps", nonce="n", created_at=clock.now(),
        expires_at=clock.now() + timedelta(days=7), answered_at=clock.now(),
    )  # fmt: skip
    session.add(invitation)
    await session.flush()
    session.add(
        SurveyResponse(
            invitation_id=invitation.id, member_id=wang.id, kind="nps", score=9,
            comment="+1 great", created_at=clock.now(),
        )
    )  # fmt: skip
    session.add(
        MemberValue(
            member_id=wang.id, p_alive=0.8123, purchases_30d=0.5, purchases_90d=1.4,
            spend_per_purchase_minor=95_050, value_12m_minor=532_280, refreshed_at=clock.now(),
        )
    )  # fmt: skip
    await make_staff(session, config, clock, ADMIN_ID, StaffRole.ADMIN)
    await session.commit()


def _csv(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


async def test_members_as_csv(app: RunningBot) -> None:
    async with app.session() as session:
        await _shop(session, app)
    admin = app.user(ADMIN_ID, language_code="en")
    await admin.send("/export members")
    document = await admin.next_message()
    assert document.caption == "Members: 2 rows · 2026-03-02 11:00"
    assert document.document is not None
    filename, content = document.document
    assert filename == "carebot-members-20260302-1100.csv"
    rows = _csv(content)
    header = rows[0]
    assert header[:4] == ["id", "member_code", "status", "name"]
    assert "registered_at (Asia/Shanghai)" in header
    by_code = {row[1]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert sorted(by_code) == ["H4ND8W3R", "K7QX2M9P"]  # the deleted member is not exported
    assert by_code["K7QX2M9P"]["name"] == '\'=HYPERLINK("x")'  # never a formula in Excel
    assert by_code["K7QX2M9P"]["phone"] == "+8613800138000"
    assert by_code["K7QX2M9P"]["total_spent"] == "88.50"
    assert by_code["H4ND8W3R"]["name"] == "王芳"
    assert by_code["H4ND8W3R"]["tier"] == "silver"
    assert by_code["H4ND8W3R"]["registered_at (Asia/Shanghai)"] == "2026-03-02 11:00:00"
    assert by_code["H4ND8W3R"]["marketing_opt_in"] == "no"
    # The value model's predictions; blank where it has none (no fit covered that member).
    wang = by_code["H4ND8W3R"]
    assert (wang["p_alive"], wang["expected_purchases_90d"]) == ("0.8123", "1.4")
    assert wang["expected_spend_per_purchase"] == "950.50"
    assert wang["predicted_value_12m"] == "5322.80"
    assert (
        by_code["K7QX2M9P"]["p_alive"] == "" and by_code["K7QX2M9P"]["predicted_value_12m"] == ""
    )

    await app.settle()
    async with app.session() as session:
        [entry] = await recent_audit(session, action="export.members")
    assert (entry.actor_telegram_id, entry.actor_role) == (ADMIN_ID, "admin")
    assert entry.details == {"format": "csv", "rows": 2}


async def test_every_table_as_excel_from_the_buttons(app: RunningBot) -> None:
    async with app.session() as session:
        await _shop(session, app)
    owner = app.user(OWNER_ID, language_code="zh")
    await owner.send("/export")
    menu = await owner.next_message()
    assert menu.inline_buttons[0] == ["会员 · CSV", "会员 · XLSX"]
    await owner.press("消费记录 · XLSX")
    document = await owner.wait_until(lambda m: m.document is not None)
    filename, content = document.document or ("", b"")
    assert filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(content), read_only=True)["purchases"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("id", "receipt_id", "member_code", "amount")
    assert [(r[1], r[2], float(str(r[3]))) for r in rows[1:]] == [
        ("R-1", "K7QX2M9P", 88.5),
        ("R-2", "H4ND8W3R", 1200.0),
    ]

    await owner.send("/export feedback xlsx")
    document = await owner.wait_until(
        lambda m: m.document is not None and "feedback" in m.document[0]
    )
    sheet = load_workbook(io.BytesIO(document.document[1]), read_only=True)["feedback"]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 2 and "牛奶坏了" in rows[1]

    await owner.send("/export surveys csv")
    document = await owner.wait_until(
        lambda m: m.document is not None and "surveys" in m.document[0]
    )
    survey_rows = _csv(document.document[1])
    assert survey_rows[1][3:7] == ["nps", "9", "", "'+1 great"]

    await app.settle()
    async with app.session() as session:
        actions = sorted(e.action for e in await recent_audit(session) if e.action != "staff.add")
    assert actions == ["export.feedback", "export.purchases", "export.surveys"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/export secrets", "“secrets” cannot be exported"),
        ("/export members pdf", "“pdf” is not a file format"),
    ],
)
async def test_bad_export_requests(app: RunningBot, command: str, expected: str) -> None:
    owner = app.user(OWNER_ID, language_code="en")
    await owner.send(command)
    assert expected in (await owner.next_message()).text
    await app.settle()
    async with app.session() as session:
        assert await recent_audit(session) == []


async def test_batches_page_through_a_table_without_loading_it(
    sqlite_url: str, app: RunningBot
) -> None:
    async with session_factory(sqlite_url) as factory, factory() as session:
        for number in range(25):
            await make_member(session, app.config, app.clock, 5000 + number, f"M{number}")
        await session.commit()
        ids = [row[0] async for row in iter_rows(session, "members", batch_size=4)]
        assert ids == sorted(ids) and len(ids) == 25
        buffer = io.BytesIO()
        assert (
            await write_export(session, app.config, "members", "xlsx", buffer, batch_size=7) == 25
        )
        sheet = load_workbook(io.BytesIO(buffer.getvalue()), read_only=True)["members"]
        assert len(list(sheet.iter_rows(values_only=True))) == 26


async def test_the_cli_writes_the_same_exports_for_scheduled_jobs(
    app: RunningBot,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with app.session() as session:
        await _shop(session, app)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "members.csv"
    assert await asyncio.to_thread(main, ["export", "members", "--output", str(target)]) == 0
    assert "2 rows of members written to" in capsys.readouterr().out
    rows = _csv(target.read_bytes())
    assert sorted(row[1] for row in rows[1:]) == ["H4ND8W3R", "K7QX2M9P"]
    assert "predicted_value_12m" in rows[0]

    assert await asyncio.to_thread(main, ["export", "purchases", "--format", "xlsx"]) == 0
    [made] = await asyncio.to_thread(lambda: list(tmp_path.glob("carebot-purchases-*.xlsx")))
    sheet = load_workbook(made, read_only=True)["purchases"]
    assert [row[1] for row in sheet.iter_rows(min_row=2, values_only=True)] == ["R-1", "R-2"]

    unwritable = ["export", "surveys", "--output", str(tmp_path / "missing" / "x.csv")]
    assert await asyncio.to_thread(main, unwritable) == 2
    assert "cannot write" in capsys.readouterr().err
