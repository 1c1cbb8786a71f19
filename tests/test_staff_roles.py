"""Roles: owners from ADMIN_IDS manage admins and cashiers in the chat; every change is audited;
and to anybody who is not staff, the staff console does not exist."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from care.conversations.tickets import open_ticket
from care.core.audit import recent_audit
from care.staff.roles import role_of
from storage.enums import StaffRole, TicketKind, TicketStatus
from storage.models import (
    AuditEntry,
    OutboxMessage,
    Staff,
    SurveyInvitation,
    SurveyResponse,
    Ticket,
    TicketMessage,
)
from tests.conftest import RunningBot
from tests.simulator import SimUser
from tests.staff_helpers import OWNER_ID, make_member, make_staff

ADMIN_ID, CASHIER_ID, STRANGER_ID = 800001, 800002, 1001


def _menu(app: RunningBot, chat_id: int, language: str) -> list[str]:
    scope = json.dumps({"type": "chat", "chat_id": chat_id}, sort_keys=True)
    return [command["command"] for command in app.sim.commands.get((scope, language), [])]


async def _role(app: RunningBot, user_id: int) -> StaffRole | None:
    await app.settle()
    async with app.session() as session:
        return await role_of(session, app.config, user_id)


async def _audit_count(app: RunningBot) -> int:
    await app.settle()
    async with app.session() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


async def test_owner_adds_a_cashier_by_id_and_an_admin_by_forwarding(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send(f"/staff add {CASHIER_ID} cashier")
    assert "is now cashier" in (await owner.next_message()).text
    assert await _role(app, CASHIER_ID) == StaffRole.CASHIER

    zhou = app.user(ADMIN_ID, first_name="Zhou", last_name="Min")
    await owner.forward_to_bot(zhou, "hello boss")
    choice = await owner.next_message()
    assert choice.text == f"What should Zhou Min ({ADMIN_ID}) be?"
    assert choice.inline_buttons == [["Admin", "Cashier"], ["Cancel"]]
    await owner.press("Admin")
    done = await owner.wait_until(lambda m: "is now" in m.text)
    assert done.text == f"✅ Zhou Min ({ADMIN_ID}) is now admin."
    assert done.inline_buttons == []
    assert await _role(app, ADMIN_ID) == StaffRole.ADMIN

    await owner.send("/staff list")
    listing = (await owner.next_message()).text
    assert listing.splitlines()[0] == "Staff (3)"
    assert f"{OWNER_ID} — owner" in listing
    assert f"Zhou Min {ADMIN_ID} — admin · since 2 Mar 2026" in listing
    assert f"{CASHIER_ID} — cashier" in listing

    await app.settle()
    async with app.session() as session:
        entries = await recent_audit(session)
    assert [(e.action, e.actor_telegram_id, e.target) for e in entries] == [
        ("staff.add", OWNER_ID, f"staff:{ADMIN_ID}"),
        ("staff.add", OWNER_ID, f"staff:{CASHIER_ID}"),
    ]
    assert entries[0].created_at == app.clock.now()
    # Their "/" menus now show the console commands of their role.
    assert "purchase" in _menu(app, CASHIER_ID, "en") and "export" not in _menu(
        app, CASHIER_ID, "en"
    )
    assert {"purchase", "export"} <= set(_menu(app, ADMIN_ID, "zh"))
    async with app.session() as session:
        told = list(await session.scalars(select(OutboxMessage.text).order_by(OutboxMessage.id)))
    english = "in this shop's staff console. Send /staff to see your commands"
    assert [text.split("\n\n")[0] for text in told] == [
        "你现在是本店员工后台的<b>收银员</b>。发送 /staff 查看可用命令；"
        "发送 /lang 可设置员工消息和提醒的语言（中文 / English）。",
        "你现在是本店员工后台的<b>管理员</b>。发送 /staff 查看可用命令；"
        "发送 /lang 可设置员工消息和提醒的语言（中文 / English）。",
    ]  # neither is a member yet: the shop's default language first
    # Added by id, nothing tells the cashier's language: English follows. The forwarded message
    # carried Zhou's (Chinese) language.
    assert english in told[0] and english not in told[1]


async def test_the_console_speaks_chinese_too(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, first_name="老板", language_code="zh")
    await owner.send("/staff")
    help_text = (await owner.next_message()).text
    assert "员工后台" in help_text and "你的角色：店主" in help_text
    assert all(f"/{c} " in help_text for c in ("member", "purchase", "export", "stats", "staff"))
    await owner.forward_to_bot(app.user(ADMIN_ID, first_name="周敏"), "你好")
    choice = await owner.next_message()
    assert "要让 周敏" in choice.text
    await owner.press("收银员")
    assert "现在是<b>收银员</b>" in (await owner.wait_until(lambda m: "现在是" in m.text)).html
    await app.settle()  # the menu follows the commit, which follows the reply
    assert "redeem" in _menu(app, ADMIN_ID, "zh")
    await owner.send(f"/staff remove {ADMIN_ID}")
    assert "已不再是员工" in (await owner.next_message()).text
    assert await _role(app, ADMIN_ID) is None
    assert _menu(app, ADMIN_ID, "zh") == []


async def test_cancel_and_hidden_forwards_change_nothing(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, language_code="en")
    await owner.forward_to_bot(app.user(ADMIN_ID, first_name="Zhou"), "hi")
    await owner.next_message()
    await owner.press("Cancel")
    assert (await owner.wait_until(lambda m: "Nothing changed" in m.text)).inline_buttons == []
    assert await _role(app, ADMIN_ID) is None
    assert await _audit_count(app) == 0


async def test_an_admin_manages_cashiers_only(app: RunningBot) -> None:
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, ADMIN_ID, StaffRole.ADMIN)
        await make_staff(session, app.config, app.clock, 800003, StaffRole.ADMIN)
        await session.commit()
    admin = app.user(ADMIN_ID, language_code="en")

    await admin.forward_to_bot(app.user(CASHIER_ID, first_name="Qian"), "hi")
    choice = await admin.next_message()
    assert choice.inline_buttons == [["Cashier"], ["Cancel"]]  # no "Admin" to grant

    # A forged "make admin" press does nothing either: the server decides, not the keyboard.
    await admin.press_data(f"sr:{CASHIER_ID}:admin", choice)
    refused = await admin.wait_until(lambda m: "You cannot do that" in m.text)
    assert "owners manage admins" in refused.text
    assert await _role(app, CASHIER_ID) is None

    await admin.send(f"/staff add {CASHIER_ID} cashier")
    assert "is now cashier" in (await admin.next_message()).text
    await admin.send("/staff remove 800003")
    assert "You cannot do that" in (await admin.next_message()).text
    await admin.send(f"/staff add {OWNER_ID} cashier")
    assert "is an owner" in (await admin.next_message()).text
    await admin.send(f"/staff remove {CASHIER_ID}")
    assert "no longer staff (was cashier)" in (await admin.next_message()).text
    assert await _role(app, 800003) == StaffRole.ADMIN
    assert await _role(app, OWNER_ID) == StaffRole.OWNER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/staff add", "Send /staff add USER_ID admin"),
        ("/staff add abc cashier", "“abc” is not a Telegram user id"),
        ("/staff add 123 boss", "“boss” is not a role"),
        ("/staff add 123 owner", "Owners are set in the ADMIN_IDS setting"),
        ("/staff remove", "Send /staff remove USER_ID"),
        ("/staff remove 424242", "424242 is not staff"),
        (f"/staff remove {OWNER_ID}", "is an owner"),
    ],
)
async def test_bad_staff_commands_get_a_short_explanation(
    app: RunningBot, text: str, expected: str
) -> None:
    owner = app.user(OWNER_ID, language_code="en")
    await owner.send(text)
    assert expected in (await owner.next_message()).text
    await app.settle()
    async with app.session() as session:
        # Nobody was granted anything (the owner's own profile row, name and language, grants
        # nothing and is the only row there may be).
        granted = select(func.count()).select_from(Staff).where(Staff.role != "owner")
        assert await session.scalar(granted) == 0


async def test_a_cashier_sees_their_commands_but_cannot_manage_staff(app: RunningBot) -> None:
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID)
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/staff")
    help_text = (await cashier.next_message()).text
    assert "you are cashier" in help_text
    assert "/purchase" in help_text and "/export" not in help_text
    await cashier.send("/staff list")
    assert "Only an admin or the owner" in (await cashier.next_message()).text
    await cashier.send("/export members")
    assert "only an admin or the owner can take one" in (await cashier.next_message()).text
    await cashier.forward_to_bot(app.user(777, first_name="X"), "hi")
    await cashier.next_message()
    assert await _role(app, 777) is None


# --------------------------------------------------------------------------------------------
# Invisibility: to a non-staff user every staff entry point is an unknown command.

STAFF_COMMANDS = [
    "/staff",
    "/staff list",
    f"/staff add {STRANGER_ID} admin",
    f"/staff remove {CASHIER_ID}",
    "/member Li",
    "/member 13800138000",
    "/purchase K7QX2M9P 88.50 grocery R-1",
    "/redeem ABCD2345",
    "/inbox",
    "/export members csv",
    "/export",
    "/stats",
    "/broadcast",
    "/offer",
    "/audit",
    "/birthday K7QX2M9P 1990-01-01",
]


async def _reply_to(user: SimUser, text: str) -> tuple[str, object]:
    await user.send(text)
    message = await user.next_message()
    return message.text or "", message.reply_markup


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_a_stranger_gets_the_unknown_command_answer_for_every_staff_command(
    app: RunningBot, language: str
) -> None:
    stranger = app.user(STRANGER_ID, first_name="Stranger", language_code=language)
    unknown = await _reply_to(stranger, "/frobnicate")
    # A fresh stranger per command keeps the flood control out of the way.
    for number, command in enumerate(STAFF_COMMANDS):
        other = app.user(STRANGER_ID + 1 + number, first_name="Stranger", language_code=language)
        assert await _reply_to(other, command) == unknown, command
    assert await _audit_count(app) == 0


async def test_a_registered_shopper_learns_nothing_either(app: RunningBot) -> None:
    async with app.session() as session:
        member = await make_member(session, app.config, app.clock, STRANGER_ID, "Li Lei")
        member.member_code = "K7QX2M9P"
        await session.commit()
    shopper = app.user(STRANGER_ID, first_name="Li", language_code="en")
    unknown = await _reply_to(shopper, "/frobnicate")
    for command in STAFF_COMMANDS:
        assert await _reply_to(shopper, command) == unknown, command
    # Forwarding someone's message to the bot is what it would be for any text: it joins the
    # shopper's conversation with the shop, and grants nothing.
    plain = await _reply_to(shopper, "hello")
    assert plain[0].startswith("✅")  # acknowledged, in the member's language
    await shopper.forward_to_bot(app.user(ADMIN_ID, first_name="Zhou"), "hello")
    await shopper.no_message_within(0.3)  # one acknowledgement per conversation
    async with app.session() as session:
        texts = list(await session.scalars(select(TicketMessage.text).order_by(TicketMessage.id)))
    assert texts == ["hello", "hello"]
    assert await _role(app, ADMIN_ID) is None
    assert await _audit_count(app) == 0


async def test_forged_staff_buttons_from_a_stranger_do_nothing(app: RunningBot) -> None:
    async with app.session() as session:
        member = await make_member(session, app.config, app.clock, 2001, "Li Lei")
        ticket = await open_ticket(
            session,
            app.clock,
            member=member,
            kind=TicketKind.COMPLAINT,
            text="cold",
        )
        invitation = SurveyInvitation(
            member_id=member.id, kind="nps", nonce="n", created_at=app.clock.now(),
            expires_at=app.clock.now(), answered_at=app.clock.now(),
        )  # fmt: skip
        session.add(invitation)
        await session.flush()
        response = SurveyResponse(
            invitation_id=invitation.id, member_id=member.id, kind="nps", score=2,
            created_at=app.clock.now(), needs_followup=True,
        )  # fmt: skip
        session.add(response)
        await session.commit()
        ticket_id, response_id, member_id = ticket.id, response.id, member.id

    stranger = app.user(STRANGER_ID, first_name="Mallory", language_code="en")
    await stranger.send("/frobnicate")
    await stranger.next_message()
    garbage = await stranger.wait_callback_answer(await stranger.press_data("zz:1"))
    forged = [
        f"sr:{STRANGER_ID}:admin",
        f"sr:{STRANGER_ID}:cashier",
        f"mp:{member_id}",
        "ib:0",
        f"tk:open:{ticket_id}:0",
        f"tk:reply:{ticket_id}:0",
        f"tk:close:{ticket_id}:0",
        f"tk:photos:{ticket_id}:0",
        "fl:0",
        f"fd:{response_id}",
        "ex:members:csv",
        "ex:purchases:xlsx",
    ]
    for data in forged:
        answer = await stranger.wait_callback_answer(await stranger.press_data(data))
        assert (answer.text, answer.show_alert) == (garbage.text, garbage.show_alert), data
        await stranger.no_message_within(0.05)

    # A stranger's next message is not taken as a ticket answer: no reply state was set.
    await stranger.send("you are fired")
    await stranger.next_message()
    await app.settle()
    async with app.session() as session:
        assert await role_of(session, app.config, STRANGER_ID) is None
        saved = await session.get(Ticket, ticket_id)
        assert saved is not None and saved.status == TicketStatus.OPEN
        kept = await session.get(SurveyResponse, response_id)
        assert kept is not None and kept.followed_up_at is None
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    assert all(m.document is None for m in stranger.messages)


async def test_forged_admin_buttons_from_a_cashier_do_nothing(app: RunningBot) -> None:
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, CASHIER_ID)
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    await cashier.send("/inbox")
    await cashier.next_message()
    for data in (f"sr:{CASHIER_ID}:admin", "sr:555:cashier", "ex:members:csv"):
        await cashier.wait_callback_answer(await cashier.press_data(data))
        await cashier.no_message_within(0.05)
    assert await _role(app, CASHIER_ID) == StaffRole.CASHIER
    assert await _role(app, 555) is None
    assert all(m.document is None for m in cashier.messages)
    assert await _audit_count(app) == 1  # only the owner adding the cashier


async def test_the_owner_reads_the_audit_log(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/audit")
    assert (await owner.next_message()).text == "The audit log is empty."
    await owner.send(f"/staff add {ADMIN_ID} admin")
    await owner.next_message()
    await app.settle()
    admin = app.user(
        ADMIN_ID, first_name="Li", last_name="Lei", username="lilei", language_code="en"
    )
    await admin.send(f"/staff add {CASHIER_ID} cashier")
    assert "is now cashier" in (await admin.next_message()).text
    await app.settle()
    await admin.send("/audit")
    assert (await admin.next_message()).text == "Only an owner can read the audit log."
    await owner.send("/audit")
    log = (await owner.next_message()).text.splitlines()
    # Sentences with names: the owner and the admin as Telegram shows them (they wrote); the
    # cashier, who never wrote, by id.
    assert log[:3] == [
        "Audit log — page 1 of 1",
        f"03-02 11:00 · Admin Li Lei (@lilei) added staff {CASHIER_ID} as cashier",
        "03-02 11:00 · Owner Boss added Li Lei (@lilei) as admin",
    ]
    # The owner's "/" menu, set in the background at start-up, offers /audit.
    for _ in range(100):
        if "audit" in _menu(app, OWNER_ID, "en"):
            break
        await asyncio.sleep(0.02)
    assert "audit" in _menu(app, OWNER_ID, "en")
    assert "audit" not in _menu(app, ADMIN_ID, "en")
