"""/delete_me erases the person from every table: a scan of every column of every table finds
nothing of them afterwards, on SQLite and PostgreSQL.

The member leaves traces everywhere a real one would (registration, a complaint, a survey
reason, a staff search by name, a birthday corrected by staff, alerts still queued for staff,
a conversation left half-way), each with a value that cannot occur by chance.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import create_invitation, invitation_markup, invitation_text
from care.members.privacy import delete_member_data
from storage.db import create_engine
from storage.enums import MessageKind, SurveyKind
from storage.models import DEFAULT_TIERS, AuditEntry, Base, Member, OutboxMessage, Tier
from tests.conftest import RunningBot, running_bot
from tests.journey_helpers import label, register, wait_button, without_throttling
from tests.simulator import BotAPISimulator
from tests.staff_helpers import OWNER_ID, make_member

TELEGRAM_ID = 8_765_432_109
NAME = "Qwxyzzy Erasable"
TWIN = "Qwxyzzy Twin"
USERNAME = "vorpal_erasable"
PHONE = "+8613900112233"
BIRTHDAY = "1987-06-05"
NEW_BIRTHDAY = "1986-04-03"
COMPLAINT = "The Frumious cashier shouted at me"
REASON = "Snarfblat queue took forever"
SEARCH = "qwxyzzy"


@pytest.fixture
async def any_app(sim: BotAPISimulator, any_db_url: str, clock: Any) -> AsyncIterator[RunningBot]:
    """The real bot on an empty database of each backend, schema and tiers in place."""
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    await engine.dispose()
    async with running_bot(sim, any_db_url, clock) as running:
        yield without_throttling(running)


def _flat(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def traces(session: AsyncSession, needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, needle) wherever a needle occurs in any column of any table."""
    found = []
    for table in Base.metadata.sorted_tables:
        rows = (await session.execute(select(table))).mappings().all()
        for row in rows:
            for column, value in row.items():
                if value is None:
                    continue
                text = _flat(value).lower()
                found += [(table.name, column, n) for n in needles if n.lower() in text]
    return sorted(set(found))


async def _send_survey(app: RunningBot, member: Member) -> None:
    """An invitation as the care engine queues it, sent straight to the member."""
    async with app.session() as session:
        invitation = await create_invitation(
            session, app.clock, member_id=member.id, kind=SurveyKind.CSAT
        )
        await session.commit()
    assert member.chat_id is not None
    await app.bot.send_message(
        member.chat_id,
        invitation_text(invitation, "en"),
        reply_markup=invitation_markup(invitation, "en"),  # type: ignore[arg-type]
    )


async def _seed_everything(app: RunningBot) -> tuple[Any, Member]:
    user = app.user(
        TELEGRAM_ID,
        first_name="Qwxyzzy",
        username=USERNAME,
        language_code="en",
        phone_number=PHONE,
    )
    await register(user, "en", marketing=True, name=NAME, birthday=BIRTHDAY)
    await app.settle()
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == TELEGRAM_ID))
        assert member is not None
        await make_member(session, app.config, app.clock, None, TWIN)
        await session.commit()

    # A complaint in their own words: a ticket, and alerts to staff that quote it.
    await user.send("/feedback")
    await user.expect("What would you like to tell us?")
    await user.press(label("en", "feedback.kind.complaint"))
    await user.expect("Please write it in one message")
    await user.send(COMPLAINT)
    await user.expect("as ticket #")

    # A low score with a reason: the response, and alerts quoting the reason.
    await _send_survey(app, member)
    question = await user.expect("How satisfied were you")
    await user.press("1 😞", question)
    await wait_button(user, label("en", "survey.expectation.worse"))
    await user.press(label("en", "survey.expectation.worse"))
    await wait_button(user, label("en", "survey.comment.add"))
    await user.press(label("en", "survey.comment.add"))
    await user.expect(label("en", "survey.write_comment"))
    await user.send(REASON)
    await user.expect("Thank you for being honest")

    # Staff look them up by name (two match: the search is audited), then fix the birthday.
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send(f"/member {SEARCH}")
    await owner.expect("2 members match")
    await owner.send(f"/birthday {member.member_code} {NEW_BIRTHDAY}")
    await owner.expect("is now")

    # A conversation left half-way leaves a state row behind.
    await user.press(label("en", "menu.settings"))
    await wait_button(user, label("en", "settings.btn_timezone"))
    await user.press(label("en", "settings.btn_timezone"))
    await wait_button(user, label("en", "tz.location_button"))
    await app.settle()
    return user, member


async def test_nothing_of_the_person_survives_erasure(any_app: RunningBot) -> None:
    app = any_app
    user, member = await _seed_everything(app)
    needles = [
        NAME,
        "Qwxyzzy",
        USERNAME,
        PHONE,
        PHONE.removeprefix("+86"),
        str(TELEGRAM_ID),
        BIRTHDAY,
        NEW_BIRTHDAY,
        "Frumious",
        "Snarfblat",
        member.member_code,
    ]
    async with app.session() as session:
        before = {(table, needle) for table, _, needle in await traces(session, needles)}
        # The scan sees the person everywhere first, so its silence afterwards means something.
        for table, needle in [
            ("members", NAME),
            ("members", USERNAME),
            ("members", PHONE),
            ("members", NEW_BIRTHDAY),
            ("ticket_messages", "Frumious"),
            ("survey_responses", "Snarfblat"),
            ("outbox", "Frumious"),
            ("outbox", "Snarfblat"),
            ("outbox", NAME),
            ("fsm_state", str(TELEGRAM_ID)),
        ]:
            assert (table, needle) in before
        queued_alerts = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == MessageKind.ALERT, OutboxMessage.member_id.is_(None))
        )
        assert queued_alerts and queued_alerts >= 3
        assert await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "member.search")
        )

    await user.send("/delete_me")
    await wait_button(user, label("en", "delete.yes"))
    await user.press(label("en", "delete.yes"))
    await user.expect("All your data has been deleted")
    await app.settle()
    # The other "Qwxyzzy" the search also found asks for erasure too.
    async with app.session() as session:
        twin = await session.scalar(select(Member).where(Member.name == TWIN))
        assert twin is not None
        await delete_member_data(session, app.clock, twin)
        await session.commit()

    async with app.session() as session:
        assert await traces(session, needles) == []
        shell = await session.get(Member, member.id)
        assert shell is not None and shell.status == "deleted"
        assert shell.member_code != member.member_code
        # What stays: anonymous scores, and audit entries that say who did what, not to whom.
        birthday_audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "member.birthday")
        )
        assert birthday_audit is not None
        assert birthday_audit.target == f"member:{member.id}"
        assert birthday_audit.actor_telegram_id == OWNER_ID


async def test_staff_lookups_and_birthday_changes_never_quote_the_person(
    app: RunningBot,
) -> None:
    """The audit log outlives erasure, so it records whom and whether, never names or dates."""
    async with app.session() as session:
        first = await make_member(
            session, app.config, app.clock, 5101, "Mirabel Quill", phone="+8613700000001"
        )
        await make_member(session, app.config, app.clock, 5102, "Mirabel Stone")
        first.birthday = date(1990, 1, 2)
        await session.commit()
    owner = app.user(OWNER_ID, first_name="Boss", language_code="zh")
    await owner.send("/member Mirabel")
    await owner.expect("2")
    await owner.send(f"/birthday {first.member_code} 1991-02-03")
    await owner.expect("1991年2月3日")
    await app.settle()
    async with app.session() as session:
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    quoted = json.dumps([[e.target, e.details] for e in entries], ensure_ascii=False)
    for personal in (
        "Mirabel",
        "1990-01-02",
        "1991-02-03",
        "1991年2月3日",
        first.member_code,
        "13700000001",
    ):
        assert personal not in quoted
    search = next(e for e in entries if e.action == "member.search")
    assert search.details is not None and search.details["matches"] == 2
    birthday = next(e for e in entries if e.action == "member.birthday")
    assert birthday.target == f"member:{first.id}" and birthday.details == {"replaced": True}
