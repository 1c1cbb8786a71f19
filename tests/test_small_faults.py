"""The smaller faults found by trying carebot as an attacker would, each fixed and kept fixed:
an unknown update type, a failing command menu, odd phone digits, NUL in a search, and a
database that refuses writes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import OperationalError

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.members.lookup import find_by_code_or_phone, find_members
from care.members.registration import InputProblem, normalize_phone
from care.staff.roles import role_of
from storage.db import create_engine, create_session_factory
from storage.enums import StaffRole
from storage.models import DEFAULT_TIERS, AuditEntry, Base, Member, Tier
from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, wait_button, walk_to
from tests.staff_helpers import OWNER_ID, make_member, make_staff

CASHIER_ID = 800002


async def test_an_unknown_update_type_is_skipped_without_an_error(
    app: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """A newer Bot API sends a kind of update this aiogram does not know: skip it, quietly."""
    future = Update.model_validate({"update_id": 77, "zz_future_update": {"text": "hi"}})
    with caplog.at_level(logging.DEBUG), pytest.warns(RuntimeWarning, match="unknown update"):
        await app.dp.feed_update(app.bot, future)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("update 77 unknown" in r.getMessage() for r in caplog.records)
    # And the bot goes on answering.
    user = app.user(4321, language_code="en")
    await user.send("/help")
    await user.expect("/start")


async def test_a_failing_command_menu_does_not_undo_the_role(
    app: RunningBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Any] = []

    async def broken_menu(*args: Any, **kwargs: Any) -> bool:
        calls.append(kwargs)
        raise RuntimeError("the menu call broke in a way nobody expected")

    monkeypatch.setattr(app.bot, "set_my_commands", broken_menu)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    with caplog.at_level(logging.WARNING):
        await owner.send(f"/staff add {CASHIER_ID} cashier")
        assert "is now cashier" in ((await owner.next_message()).text or "")
        await app.settle()
    assert calls, "the menu was tried (after the commit)"
    async with app.session() as session:
        assert await role_of(session, app.config, CASHIER_ID) == StaffRole.CASHIER
        assert await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "staff.add")
        )
    assert any("after-commit action failed" in r.getMessage() for r in caplog.records)
    # No "something went wrong" for a change that worked.
    assert not [m for m in app.sim.chat_messages(OWNER_ID) if "went wrong" in (m.text or "")]


@pytest.mark.parametrize(
    "raw", ["+٨٦١٣٨٠٠١٣٨٠٠٠", "+86１３８００１３８０００", "①②③④⑤⑥⑦", "+86 138 ００１３８０００"]
)
def test_a_phone_number_needs_ascii_digits(raw: str) -> None:
    with pytest.raises(InputProblem):
        normalize_phone(raw)


def test_ordinary_phone_numbers_still_pass() -> None:
    assert normalize_phone("86 (138) 0013-8000") == "+8613800138000"


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_contact_with_odd_digits_is_refused_politely(app: RunningBot, locale: str) -> None:
    user = app.user(
        4400 + len(locale), first_name="Mei", language_code=locale, phone_number="+٨٦١٣٨٠٠١٣٨٠٠٠"
    )
    await walk_to(user, locale, "phone")
    await user.press(label(locale, "reg.phone_button"))
    await user.expect(label(locale, "reg.reprompt_phone")[:12])
    member = await member_of(app, user.id)
    assert member is not None and member.phone is None


async def test_member_search_with_nul_finds_nobody(app: RunningBot) -> None:
    async with app.session() as session:
        for number in range(3):
            await make_member(session, app.config, app.clock, 3100 + number, f"Li {number}")
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code="en")
    for query in ("\x00", "Li\x00", "\u200b", "%\x00%"):
        await cashier.send(f"/member {query}")
        reply = (await cashier.next_message()).text or ""
        assert "match" not in reply and "👤" not in reply, reply


async def test_lookup_refuses_control_characters_on_every_backend(
    any_db_url: str, clock: FrozenClock
) -> None:
    engine = create_engine(any_db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
        async with create_session_factory(engine)() as session:
            config = CareConfig()
            await make_member(session, config, clock, 1, "Li Lei", phone="+8613800138000")
            await make_member(session, config, clock, 2, "Han Meimei")
            await session.commit()
            for query in ("\x00", "Li\x00Lei", "\x00%", "\x1b[2J"):
                assert await find_members(session, query) == []
                assert await find_by_code_or_phone(session, query) == []
            assert [m.name for m in await find_members(session, "li lei")] == ["Li Lei"]
            assert len(await find_by_code_or_phone(session, "138 0013 8000")) == 1
            assert await find_by_code_or_phone(session, "١٣٨٠٠١٣٨٠٠٠") == []
    finally:
        await engine.dispose()


async def test_start_with_a_read_only_database_is_one_polite_answer(app: RunningBot) -> None:
    """No first prompt followed by an error: the person hears one thing, and nothing is half
    begun; once the database takes writes again, /start works."""
    engine = app.services.engine
    await engine.dispose()
    read_only = True

    @event.listens_for(engine.sync_engine, "connect")
    def refuse_writes(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA query_only={'ON' if read_only else 'OFF'}")
        cursor.close()

    user = app.user(4501, language_code="en")
    await user.send("/start")
    reply = await user.expect("something went wrong")
    await asyncio.sleep(0.3)
    await app.settle()
    assert [m.text for m in app.sim.chat_messages(4501) if m.from_bot] == [reply.text]

    read_only = False
    await engine.dispose()
    await user.send("/start")
    await wait_button(user, "English")
    async with app.session() as session:
        assert await session.scalar(select(Member).where(Member.telegram_id == 4501))


@pytest.mark.parametrize("failure", ["database or disk is full", "could not serialize access"])
async def test_start_whose_commit_fails_is_one_polite_answer(
    app: RunningBot, failure: str
) -> None:
    """The write succeeds, the commit does not (a full disk, a serialization failure): the
    first question must not have gone out already, followed by an error."""
    engine = app.services.engine
    failing = True

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def note_writes(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            connection.info["wrote"] = True

    @event.listens_for(engine.sync_engine, "commit")
    def refuse_commit(connection: Any) -> None:
        # Only a commit that has something to keep: the write itself went through.
        if connection.info.pop("wrote", False) and failing:
            raise OperationalError("COMMIT", {}, Exception(failure))

    @event.listens_for(engine.sync_engine, "rollback")
    def forget_writes(connection: Any) -> None:
        connection.info.pop("wrote", None)

    user = app.user(4502, language_code="en")
    await user.send("/start")
    reply = await user.expect("something went wrong")
    await asyncio.sleep(0.3)
    await app.settle()
    assert [m.text for m in app.sim.chat_messages(4502) if m.from_bot] == [reply.text]
    async with app.session() as session:
        assert await session.scalar(select(Member).where(Member.telegram_id == 4502)) is None

    failing = False
    await user.send("/start")
    await wait_button(user, "English")
    async with app.session() as session:
        assert await session.scalar(select(Member).where(Member.telegram_id == 4502))


async def test_a_reply_held_for_the_commit_goes_out_after_it(app: RunningBot) -> None:
    """A referral note and the first question, in order, once the member row is kept."""
    owner_code = "NOSUCH01"
    user = app.user(4503, language_code="en")
    await user.send(f"/start ref_{owner_code}")
    await wait_button(user, "English")
    texts = [m.text for m in app.sim.chat_messages(4503) if m.from_bot]
    assert len(texts) == 2
    assert texts[0] == label("en", "link.ref_unknown")
