"""Each staff member in their own language, shown by name; scores with their scale; the audit
log as sentences with names and amounts, paged and filtered — end to end through the simulator.

The shop's default language is Chinese in these tests, so an English text anywhere below can
only come from the staff member's own language.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from care.conversations.surveys import add_comment, answer, create_invitation, parse_press
from care.core.audit import audit
from care.core.clock import FrozenClock
from care.members.privacy import delete_member_data
from storage.enums import MessageKind, StaffRole, SurveyKind
from storage.models import Member, OutboxMessage, Staff
from tests.conftest import RunningBot, running_bot
from tests.journey_helpers import without_throttling
from tests.simulator import BotAPISimulator, SimUser
from tests.staff_helpers import OWNER_ID, make_member, make_staff

ADMIN_ZH = 800011
ADMIN_EN = 800012
CASHIER = 800020
SHOPPER = 3101


@pytest.fixture
async def english_owner(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[RunningBot]:
    """A shop whose owner is configured as English and has never written to the bot."""
    async with running_bot(sim, sqlite_url, clock, admin_languages=f"{OWNER_ID}:en") as app:
        yield without_throttling(app)


async def alerts_to(app: RunningBot, chat_id: int) -> list[str]:
    async with app.session() as session:
        rows = await session.scalars(
            select(OutboxMessage.text)
            .where(OutboxMessage.kind == MessageKind.ALERT, OutboxMessage.chat_id == chat_id)
            .order_by(OutboxMessage.id)
        )
        return [text or "" for text in rows]


async def complain(app: RunningBot, shopper: SimUser, text: str) -> None:
    await shopper.send("/feedback")
    menu = await shopper.next_message()
    await shopper.press(menu.inline_buttons[0][0], menu)  # complaint comes first
    await app.settle()
    await shopper.send(text)
    await shopper.next_message()
    await app.settle()


async def test_alerts_and_staff_texts_reach_each_staff_member_in_their_own_language(
    english_owner: RunningBot,
) -> None:
    app = english_owner
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, ADMIN_ZH, StaffRole.ADMIN)
        await make_staff(session, app.config, app.clock, ADMIN_EN, StaffRole.ADMIN)
        # The English admin is also a member who shops in Chinese: staff texts still use the
        # staff language, the member setting is for the shop's messages to them as a shopper.
        await make_member(session, app.config, app.clock, ADMIN_EN, "Ben", language_code="zh")
        await make_member(session, app.config, app.clock, SHOPPER, "Ann", language_code="en")
        await session.commit()

    # Each admin is seen once: their Telegram language becomes their staff language.
    admin_zh = app.user(ADMIN_ZH, first_name="Wang", language_code="zh")
    await admin_zh.send("/staff")
    greeting_zh = await admin_zh.next_message()
    assert "员工后台" in greeting_zh.text and "/lang" in greeting_zh.text
    assert greeting_zh.inline_buttons == [["🌐 语言：中文"]]
    admin_en = app.user(ADMIN_EN, first_name="Ben", language_code="en")
    await admin_en.send("/staff")
    greeting_en = await admin_en.next_message()
    assert "Staff console" in greeting_en.text
    assert greeting_en.inline_buttons == [["🌐 Language: English"]]
    await app.settle()

    shopper = app.user(SHOPPER, first_name="Ann", language_code="en")
    await complain(app, shopper, "The milk was sour")
    # The owner never wrote: ADMIN_LANGUAGES speaks for them.
    [owner_alert] = await alerts_to(app, OWNER_ID)
    assert "complaint" in owner_alert.lower() and "投诉" not in owner_alert
    _, zh_alert = await alerts_to(app, ADMIN_ZH)  # after the welcome sent when added
    assert "投诉" in zh_alert
    _, en_alert = await alerts_to(app, ADMIN_EN)
    assert "complaint" in en_alert.lower() and "投诉" not in en_alert

    # The Chinese admin switches to English with the greeting's button; everything follows.
    await admin_zh.press("🌐 语言：中文", greeting_zh)
    prompt = await admin_zh.wait_until(lambda m: "请选择语言" in m.text)
    await admin_zh.press("English", prompt)
    await admin_zh.wait_until(lambda m: "now reach you in English" in m.text)
    await app.settle()
    await admin_zh.send("/staff")
    await admin_zh.wait_until(lambda m: "Staff console" in m.text)
    await complain(app, shopper, "Still sour")
    assert "投诉" not in (await alerts_to(app, ADMIN_ZH))[-1]
    # ... and back with /lang zh; the English admin's member language was never touched.
    await admin_zh.send("/lang fr")
    unknown = await admin_zh.wait_until(lambda m: "/lang en or /lang zh" in m.text)
    assert unknown.inline_buttons == [["中文", "English"]]
    await admin_zh.send("/lang zh")
    await admin_zh.wait_until(lambda m: "今后员工消息和提醒将使用" in m.text)
    await admin_zh.send("/stats")
    stats = await admin_zh.wait_until(lambda m: "店铺数据" in (m.text or m.caption or ""))
    assert stats is not None
    async with app.session() as session:
        assert (
            await session.scalar(select(Member.locale).where(Member.telegram_id == ADMIN_EN))
        ) == "zh"
        locales = dict((await session.execute(select(Staff.telegram_id, Staff.locale))).all())
    assert locales[ADMIN_ZH] == "zh" and locales[ADMIN_EN] == "en"
    assert OWNER_ID not in locales  # the owner has not written yet: no row, the setting speaks


@pytest.mark.parametrize(
    ("language", "greeting"),
    [("en", "You are now <b>cashier</b>"), ("zh", "收银员")],
)
async def test_a_new_cashier_is_greeted_in_their_language(
    app: RunningBot, language: str, greeting: str
) -> None:
    cashier = app.user(CASHIER, first_name="Li", last_name="Lei", username="lilei",
                       language_code=language)  # fmt: skip
    await cashier.send("/start")  # anyone a bot can write to has opened the chat first
    await cashier.next_message()
    owner = app.user(OWNER_ID, first_name="Chen", language_code="zh")
    await owner.send(f"/staff add {CASHIER} cashier")
    added = await owner.next_message()
    assert "收银员" in added.text
    await app.settle()
    [welcome] = await alerts_to(app, CASHIER)
    assert greeting in welcome
    if language == "en":
        assert "收银员" not in welcome


async def test_low_scores_say_their_scale_in_every_alert(english_owner: RunningBot) -> None:
    app = english_owner
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, ADMIN_ZH, StaffRole.ADMIN)
        await session.commit()
    admin = app.user(ADMIN_ZH, first_name="Wang", language_code="zh")
    await admin.send("/staff")
    await admin.next_message()
    await app.settle()
    async with app.session() as session:
        member = await make_member(session, app.config, app.clock, SHOPPER, "Ann")
        for kind, score in ((SurveyKind.CSAT, 2), (SurveyKind.NPS, 6)):
            invitation = await create_invitation(
                session, app.clock, member_id=member.id, kind=kind
            )
            for step, value in (("s", score), ("e", 2), ("c", 0)):
                data = f"sv:{invitation.id}:{invitation.nonce}:{step}:{value}"
                press = parse_press(data)
                assert press is not None
                if step == "e" and kind == SurveyKind.NPS:
                    continue
                await answer(session, app.clock, app.config, member=member, press=press)
            await add_comment(
                session, app.clock, app.config, member=member, invitation_id=invitation.id,
                nonce=invitation.nonce, text=f"why {kind}",
            )  # fmt: skip
        await session.commit()
    english = "\n".join(await alerts_to(app, OWNER_ID))
    chinese = "\n".join(await alerts_to(app, ADMIN_ZH))
    assert "gave 2/5" in english and "gave NPS 6/10" in english
    assert "who scored 2/5" in english and "who scored 6/10" in english
    assert "打了 2/5 分" in chinese and "6/10" in chinese
    assert "打了 2 分" not in chinese and "打了 6 分" not in chinese


async def _audit_setup(app: RunningBot) -> str:
    async with app.session() as session:
        member = await make_member(session, app.config, app.clock, SHOPPER, "Wang Fang")
        code = member.member_code
        await make_staff(session, app.config, app.clock, CASHIER, StaffRole.CASHIER)
        await session.commit()
    cashier = app.user(CASHIER, first_name="Li", last_name="Lei", username="lilei",
                       language_code="en")  # fmt: skip
    await cashier.send(f"/purchase {code} 50 - R-77")
    await cashier.next_message()
    await app.settle()
    owner = app.user(OWNER_ID, first_name="Chen", language_code="en")
    await owner.send(f"/staff add {CASHIER} admin")
    await owner.next_message()
    await app.settle()
    return code


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_audit_log_reads_as_sentences_with_names(app: RunningBot, language: str) -> None:
    code = await _audit_setup(app)
    owner = app.user(OWNER_ID, first_name="Chen", language_code=language)
    await owner.send(f"/lang {language}")
    await owner.next_message()
    await owner.send("/audit")
    log = (await owner.next_message()).text.splitlines()
    if language == "en":
        assert log[:3] == [
            "Audit log — page 1 of 1",
            "03-02 11:00 · Owner Chen changed Li Lei (@lilei) from cashier to admin",
            f"03-02 11:00 · Cashier Li Lei (@lilei) recorded ¥50.00 for Wang Fang ({code}), "
            "receipt R-77 (+50 points)",
        ]
    else:
        assert log[:3] == [
            "审计日志 — 第 1/1 页",
            "03-02 11:00 · 店主Chen将Li Lei（@lilei）从收银员改为管理员",
            f"03-02 11:00 · 收银员Li Lei（@lilei）为Wang Fang（{code}）记录了 ¥50.00 的消费，"
            "小票号 R-77（+50 积分）",
        ]
    # The audit rows hold ids, never the member's name.
    async with app.session() as session:
        from storage.models import AuditEntry

        for entry in await session.scalars(select(AuditEntry)):
            assert "Wang" not in str(entry.details) and "Wang" not in (entry.target or "")


async def test_an_erased_member_reads_as_erased_in_the_audit_log(app: RunningBot) -> None:
    await _audit_setup(app)
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == SHOPPER))
        assert member is not None
        await delete_member_data(session, app.clock, member)
        await session.commit()
    owner = app.user(OWNER_ID, first_name="Chen", language_code="en")
    await owner.send("/audit purchase")
    log = (await owner.next_message()).text.splitlines()
    assert log[0] == "Audit log · purchases — page 1 of 1"
    # Erasure dropped the entry's details (the receipt could lead back to the person): who
    # recorded a purchase stays, for an erased member.
    assert log[1] == "03-02 11:00 · Cashier Li Lei (@lilei) recorded a purchase for erased member"
    await owner.send("/audit member")
    assert "erased member deleted their data" in (await owner.next_message()).text


async def test_the_audit_log_pages_and_filters(app: RunningBot) -> None:
    await _audit_setup(app)
    async with app.session() as session:
        for _ in range(20):
            await audit(session, app.clock, actor_telegram_id=CASHIER, actor_role="admin",
                        action="stats.view")  # fmt: skip
        await session.commit()
    owner = app.user(OWNER_ID, first_name="Chen", language_code="en")
    await owner.send("/audit")
    first = await owner.next_message()
    assert first.text.startswith("Audit log — page 1 of 2")
    assert first.inline_buttons[0] == ["Older ▶"]
    assert first.text.count("Admin Li Lei (@lilei) looked at the stats") == 15
    await owner.press("Older ▶", first)
    second = await owner.wait_until(lambda m: "page 2 of 2" in m.text)
    assert "recorded ¥50.00" in second.text and "changed Li Lei" in second.text
    assert second.inline_buttons[0] == ["◀ Newer"]

    # Filter by person: only the owner's own change.
    await owner.send(f"/audit {OWNER_ID}")
    mine = (await owner.next_message()).text.splitlines()
    assert mine[0] == "Audit log · by Chen — page 1 of 1"
    assert mine[1].endswith("Owner Chen changed Li Lei (@lilei) from cashier to admin")
    assert "stats" not in "\n".join(mine[1:-2])
    await owner.send("/audit @lilei")
    theirs = await owner.next_message()
    assert theirs.text.startswith("Audit log · by Li Lei (@lilei) — page 1 of 2")
    # A kind no button offers (a feature's own actions) filters by the command as well.
    await owner.send("/audit @lilei stats")
    stats_only = (await owner.next_message()).text
    assert stats_only.startswith("Audit log · by Li Lei (@lilei) · stats — page 1 of 2")
    assert "recorded" not in stats_only
    await owner.send("/audit @nobody")
    assert "No staff member matches @nobody" in (await owner.next_message()).text

    # Filter by kind with a button; the chosen one is marked.
    await owner.press("staff changes", theirs)
    staff_only = await owner.wait_until(lambda m: "· staff changes" in m.text)
    assert "recorded" not in staff_only.text and "changed Li Lei" not in staff_only.text
    assert "No audit entries match" in staff_only.text  # Li Lei changed no staff
    assert [b for row in staff_only.inline_buttons for b in row if "•" in b] == ["• staff changes"]


async def test_a_cashier_whose_language_is_unknown_is_greeted_in_both(app: RunningBot) -> None:
    """Added by id before writing to the bot: nothing tells their language, so both are used."""
    owner = app.user(OWNER_ID, first_name="Chen", language_code="zh")
    await owner.send(f"/staff add {CASHIER} cashier")
    await owner.next_message()
    await app.settle()
    [welcome] = await alerts_to(app, CASHIER)
    assert "收银员" in welcome and "You are now <b>cashier</b>" in welcome
    assert welcome.index("收银员") < welcome.index("You are now")  # the shop's language first
