"""Every action the code audits reads as a sentence in /audit (none falls back to the generic
"who: action target" line), and the conversation actions — take, answer (text, media, a saved
reply), close, reopen, saved replies added and deleted — name the staff member and the shopper,
in zh and en, end to end through the simulator."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from care.console.audit_log import sentence_for
from care.console.exports import TABLES
from care.conversations.saved_replies import list_saved_replies
from care.core.i18n import LOCALES, translator
from storage.enums import StaffRole
from storage.models import AuditEntry
from tests.conftest import RunningBot
from tests.staff_helpers import OWNER_ID, make_staff
from tests.test_feedback import member_user, tickets_of

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "care", "handlers")
ACTION = re.compile(r"^[a-z_]+\.[a-z_]+$")
# Functions whose first positional argument is the action (``staff.audit("stats.view")``).
ACTION_FIRST = {"audit", "AuditNote"}
CONVERSATION_ACTIONS = {
    "ticket.take",
    "ticket.reply",
    "ticket.close",
    "ticket.reopen",
    "saved_reply.add",
    "saved_reply.delete",
    "survey.followed_up",
}
QIAN_ID = 800002


def _strings(node: ast.expr) -> list[str]:
    """The action names an expression can be: a literal, either side of ``a if c else b``, or
    an f-string's fixed start followed by ``*``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    if isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return [f"{head.value}*"]
    return []


def audited_actions() -> set[str]:
    """Every action name the code passes to the audit log (``action=…`` anywhere, or first
    to ``audit(…)`` / ``AuditNote(…)``); ``export.*`` stands for an f-string."""
    found: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                names = [
                    s for kw in node.keywords if kw.arg == "action" for s in _strings(kw.value)
                ]
                if name in ACTION_FIRST and node.args:
                    names += _strings(node.args[0])
                found |= {n for n in names if ACTION.match(n) or n.endswith(".*")}
    return found


def _entry(action: str, target: str | None = None, **details: object) -> AuditEntry:
    return AuditEntry(
        actor_telegram_id=QIAN_ID, actor_role="cashier", action=action, target=target,
        details=details or None, created_at=datetime(2026, 3, 2, 3, tzinfo=UTC),
    )  # fmt: skip


def _expanded(actions: set[str]) -> list[str]:
    expanded = []
    for action in sorted(actions):
        if action == "export.*":
            expanded += [f"export.{table}" for table in TABLES]
        else:
            assert not action.endswith("*"), f"an f-string action the test cannot expand: {action}"
            expanded.append(action)
    return expanded


@pytest.mark.parametrize("locale", LOCALES)
def test_every_audited_action_in_the_code_has_a_sentence(locale: str) -> None:
    actions = audited_actions()
    # The scan finds what it must (so that it cannot pass by finding nothing).
    assert CONVERSATION_ACTIONS | {"purchase.record", "export.*", "broadcast.send"} <= actions
    assert len(actions) >= 30
    t = translator(locale)
    missing = [a for a in _expanded(actions) if sentence_for(t, _entry(a, "x:1")) is None]
    assert missing == []


@pytest.mark.parametrize("locale", LOCALES)
def test_the_variants_of_conversation_sentences(locale: str) -> None:
    t = translator(locale)
    variants = [
        _entry("ticket.take", "ticket:4", **{"from": 900002}),
        _entry("ticket.reply", "ticket:4", length=0, media="photo"),
        _entry("ticket.reply", "ticket:4", length=12, saved_reply="Hours"),
        _entry("ticket.close", "ticket:4", via="forum"),
        _entry("points.adjust", "member:4", delta=-5, reason="typo"),
        _entry("purchase.refund", "member:4", refunded_minor=500, currency="CNY", points_taken=5),
    ]
    sentences = [sentence_for(t, entry) for entry in variants]
    assert None not in sentences
    assert len(set(sentences)) == len(sentences)
    in_forum = t.plain("staff_language.audit.in_forum")
    assert str(sentences[3]).endswith(in_forum)
    assert "Hours" in str(sentences[2])
    assert t.count("conversation.inbox.points", 5) in str(sentences[4])
    assert "¥5.00" in str(sentences[5])


async def _conversation_actions(app: RunningBot, locale: str) -> int:
    """Qian takes a shopper's conversation, answers it with text, a photo and a saved reply,
    closes and reopens it; the owner adds and deletes saved replies."""
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, QIAN_ID, StaffRole.CASHIER, "Qian")
        await session.commit()
    shopper = await member_user(app, 5201, locale)
    await shopper.send("Hello, is the bakery open?")
    await shopper.next_message()
    [ticket] = await tickets_of(app)

    owner = app.user(OWNER_ID, first_name="Chen", language_code=locale)
    await owner.send(f"/lang {locale}")
    await owner.next_message()
    await owner.send("/replies add Hours | We open at 9.")
    await owner.next_message()
    await owner.send("/replies add Old | Not used any more.")
    await owner.next_message()
    await owner.send("/replies")
    listing = await owner.next_message()
    await owner.press(
        next(b for row in listing.inline_buttons for b in row if "Old" in b), listing
    )
    await owner.wait_until(lambda m: m.text is not None and "Not used" not in m.text)

    qian = app.user(QIAN_ID, first_name="Qian", username="qian", language_code=locale)
    await qian.send(f"/lang {locale}")
    await qian.next_message()
    await qian.send("/inbox")
    await qian.next_message()
    await qian.press_data(f"tk:take:{ticket.id}:0")
    await app.settle()
    await qian.press_data(f"tk:reply:{ticket.id}:0")
    await qian.wait_until(lambda m: "/cancel" in (m.text or ""))
    first_prompt = qian.messages[-1].message_id
    await qian.send("Yes, until 8 pm.")
    await qian.next_message()
    await qian.press_data(f"tk:reply:{ticket.id}:0")
    await qian.wait_until(lambda m: "/cancel" in (m.text or "") and m.message_id > first_prompt)
    await qian.send_photo(caption="Our shelves today")
    await qian.next_message()
    await app.settle()
    async with app.session() as session:
        [hours] = await list_saved_replies(session)
    await qian.press_data(f"cr:send:{ticket.id}:{hours.id}:0")
    await app.settle()
    await qian.press_data(f"tk:close:{ticket.id}:0")
    await app.settle()
    await qian.press_data(f"tk:reopen:{ticket.id}:0")
    await app.settle()
    return ticket.id


async def test_conversation_actions_read_as_sentences_with_names_in_english(
    app: RunningBot,
) -> None:
    number = await _conversation_actions(app, "en")
    owner = app.user(OWNER_ID, first_name="Chen", language_code="en")
    await owner.send("/audit")
    log = [line.partition(" · ")[2] for line in (await owner.next_message()).text.splitlines()]
    shopper = next(line for line in log if "took conversation" in line).split(" with ")[1]
    assert shopper.startswith("Ann (")  # the member by name and card code
    for sentence in [
        f"Cashier Qian (@qian) reopened conversation #{number} with {shopper}",
        f"Cashier Qian (@qian) closed conversation #{number} with {shopper}",
        f"Cashier Qian (@qian) answered {shopper} in conversation #{number} with the saved"
        " reply “Hours”",
        f"Cashier Qian (@qian) sent {shopper} a photo in conversation #{number}",
        f"Cashier Qian (@qian) answered {shopper} in conversation #{number}",
        f"Cashier Qian (@qian) took conversation #{number} with {shopper}",
        "Owner Chen deleted the saved reply “Old”",
        "Owner Chen added the saved reply “Hours”",
    ]:
        assert sentence in log, (sentence, log)
    assert not any(": ticket" in line or "saved_reply" in line for line in log)


async def test_conversation_actions_read_as_sentences_with_names_in_chinese(
    app: RunningBot,
) -> None:
    number = await _conversation_actions(app, "zh")
    owner = app.user(OWNER_ID, first_name="Chen", language_code="zh")
    await owner.send("/audit")
    log = [line.partition(" · ")[2] for line in (await owner.next_message()).text.splitlines()]
    took = next(line for line in log if "接手了与" in line)
    shopper = took.removeprefix("收银员Qian（@qian）接手了与").removesuffix(f"的会话 #{number}")
    assert shopper.startswith("Ann（")
    for sentence in [
        f"收银员Qian（@qian）重新打开了与{shopper}的会话 #{number}",
        f"收银员Qian（@qian）关闭了与{shopper}的会话 #{number}",
        f"收银员Qian（@qian）在会话 #{number} 中用快捷回复“Hours”回复了{shopper}",
        f"收银员Qian（@qian）在会话 #{number} 中给{shopper}发送了一张图片",
        f"收银员Qian（@qian）在会话 #{number} 中回复了{shopper}",
        "店主Chen删除了快捷回复“Old”",
        "店主Chen添加了快捷回复“Hours”",
    ]:
        assert sentence in log, (sentence, log)
