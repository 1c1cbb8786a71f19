"""care.staff.roles, care.core.audit and care.members.lookup: the rules other features build on."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from care.console.exports import write_export
from care.core.audit import recent_audit
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.imports.purchases import import_purchases
from care.members.lookup import find_members, find_one_member
from care.staff.profiles import (
    SeenAs,
    note_staff_seen,
    set_staff_locale,
    staff_labels,
    staff_locales,
)
from care.staff.roles import (
    StaffError,
    add_staff,
    list_staff,
    remove_staff,
    role_of,
    staff_recipients,
)
from storage.enums import MemberStatus, StaffRole
from storage.models import DEFAULT_TIERS, Base, Tier
from storage.repos.staff import StaffRepo
from tests.staff_helpers import OWNER_ID, make_member, session_factory

CONFIG = CareConfig(owner_ids=frozenset({OWNER_ID, 900002}))
ADMIN, CASHIER, OTHER_ADMIN = 7001, 7002, 7003


@pytest.fixture
async def session(sqlite_url: str) -> AsyncIterator[AsyncSession]:
    async with session_factory(sqlite_url) as factory, factory() as session:
        yield session


async def _add(session: AsyncSession, clock: FrozenClock, actor: int, who: int, role: str) -> None:
    await add_staff(
        session, CONFIG, clock, actor_telegram_id=actor, telegram_id=who, role=StaffRole(role)
    )


async def test_owner_adds_admin_and_admin_adds_cashier(
    session: AsyncSession, clock: FrozenClock
) -> None:
    await _add(session, clock, OWNER_ID, ADMIN, "admin")
    await _add(session, clock, ADMIN, CASHIER, "cashier")
    assert await role_of(session, CONFIG, ADMIN) == StaffRole.ADMIN
    assert await role_of(session, CONFIG, CASHIER) == StaffRole.CASHIER
    assert await role_of(session, CONFIG, OWNER_ID) == StaffRole.OWNER
    assert await role_of(session, CONFIG, 1) is None

    entries = await recent_audit(session, action="staff.add")
    assert [(e.actor_telegram_id, e.target) for e in entries] == [
        (ADMIN, f"staff:{CASHIER}"),
        (OWNER_ID, f"staff:{ADMIN}"),
    ]
    assert entries[0].actor_role == "admin"
    assert entries[0].created_at == clock.now()


@pytest.mark.parametrize(
    ("actor_role", "target_role", "new_role"),
    [
        ("admin", None, "admin"),  # an admin cannot create an admin
        ("admin", "admin", "cashier"),  # nor demote one
        ("cashier", None, "cashier"),  # cashiers manage nobody
    ],
)
async def test_nobody_grants_or_changes_a_role_at_or_above_their_own(
    session: AsyncSession,
    clock: FrozenClock,
    actor_role: str,
    target_role: str | None,
    new_role: str,
) -> None:
    await _add(session, clock, OWNER_ID, ADMIN, actor_role)
    if target_role:
        await _add(session, clock, OWNER_ID, OTHER_ADMIN, target_role)
    with pytest.raises(StaffError) as caught:
        await _add(session, clock, ADMIN, OTHER_ADMIN, new_role)
    assert caught.value.reason == "not_allowed"
    expected = StaffRole(target_role) if target_role else None
    assert await role_of(session, CONFIG, OTHER_ADMIN) == expected


async def test_owners_cannot_be_added_removed_or_granted(
    session: AsyncSession, clock: FrozenClock
) -> None:
    with pytest.raises(StaffError) as caught:
        await _add(session, clock, OWNER_ID, 900002, "cashier")
    assert caught.value.reason == "is_owner"
    with pytest.raises(StaffError) as caught:
        await remove_staff(session, CONFIG, clock, actor_telegram_id=OWNER_ID, telegram_id=900002)
    assert caught.value.reason == "is_owner"
    with pytest.raises(StaffError) as caught:
        await _add(session, clock, OWNER_ID, ADMIN, "owner")
    assert caught.value.reason == "bad_role"


async def test_remove_rules(session: AsyncSession, clock: FrozenClock) -> None:
    await _add(session, clock, OWNER_ID, ADMIN, "admin")
    await _add(session, clock, OWNER_ID, OTHER_ADMIN, "admin")
    await _add(session, clock, ADMIN, CASHIER, "cashier")

    with pytest.raises(StaffError) as caught:
        await remove_staff(
            session, CONFIG, clock, actor_telegram_id=ADMIN, telegram_id=OTHER_ADMIN
        )
    assert caught.value.reason == "not_allowed"
    with pytest.raises(StaffError) as caught:
        await remove_staff(session, CONFIG, clock, actor_telegram_id=ADMIN, telegram_id=12345)
    assert caught.value.reason == "not_staff"
    with pytest.raises(StaffError) as caught:
        await remove_staff(session, CONFIG, clock, actor_telegram_id=CASHIER, telegram_id=CASHIER)
    assert caught.value.reason == "not_allowed"

    removed = await remove_staff(
        session, CONFIG, clock, actor_telegram_id=ADMIN, telegram_id=CASHIER
    )
    assert removed == StaffRole.CASHIER
    assert await role_of(session, CONFIG, CASHIER) is None
    removed = await remove_staff(
        session, CONFIG, clock, actor_telegram_id=OWNER_ID, telegram_id=OTHER_ADMIN
    )
    assert removed == StaffRole.ADMIN
    assert [e.target for e in await recent_audit(session, action="staff.remove")] == [
        f"staff:{OTHER_ADMIN}",
        f"staff:{CASHIER}",
    ]


async def test_role_change_and_repeat_add(session: AsyncSession, clock: FrozenClock) -> None:
    await _add(session, clock, OWNER_ID, CASHIER, "cashier")
    change = await add_staff(
        session, CONFIG, clock, actor_telegram_id=OWNER_ID, telegram_id=CASHIER,
        role=StaffRole.CASHIER,
    )  # fmt: skip
    assert not change.changed
    change = await add_staff(
        session, CONFIG, clock, actor_telegram_id=OWNER_ID, telegram_id=CASHIER,
        role=StaffRole.ADMIN,
    )  # fmt: skip
    assert change.changed and change.previous_role == StaffRole.CASHIER
    assert len(await recent_audit(session, action="staff.role")) == 1


async def test_list_and_recipients(session: AsyncSession, clock: FrozenClock) -> None:
    await _add(session, clock, OWNER_ID, CASHIER, "cashier")
    clock.advance(minutes=1)
    await _add(session, clock, OWNER_ID, ADMIN, "admin")
    staff = await list_staff(session, CONFIG)
    assert [(s.telegram_id, s.role) for s in staff] == [
        (OWNER_ID, StaffRole.OWNER),
        (900002, StaffRole.OWNER),
        (ADMIN, StaffRole.ADMIN),
        (CASHIER, StaffRole.CASHIER),
    ]
    assert await staff_recipients(session, CONFIG) == [OWNER_ID, 900002, ADMIN]
    assert await staff_recipients(session, CONFIG, StaffRole.CASHIER) == [
        OWNER_ID,
        900002,
        ADMIN,
        CASHIER,
    ]
    assert await staff_recipients(session, CONFIG, StaffRole.OWNER) == [OWNER_ID, 900002]


async def test_find_members_by_every_identity(session: AsyncSession, clock: FrozenClock) -> None:
    li = await make_member(
        session, CONFIG, clock, 1, "Li Lei", phone="+8613800138000", username="LiLei88"
    )
    han = await make_member(session, CONFIG, clock, 2, "Han Meimei", phone="8613900139000")
    lin = await make_member(session, CONFIG, clock, 3, "Lin Li 100%")
    gone = await make_member(session, CONFIG, clock, 4, "Li Gone", phone="+8613700137000")
    gone.status = MemberStatus.DELETED
    await session.flush()

    assert await find_members(session, li.member_code.lower()) == [li]
    assert await find_members(session, f"{li.member_code[:4]}-{li.member_code[4:]}") == [li]
    assert await find_members(session, "+86 138-0013-8000") == [li]
    assert await find_members(session, "13800138000") == [li]  # no country code
    assert await find_members(session, "8613900139000") == [han]
    assert await find_members(session, "@lilei88") == [li]
    assert await find_members(session, "lilei88") == [li]
    assert await find_members(session, "han meimei") == [han]
    assert {m.id for m in await find_members(session, "li")} == {li.id, lin.id}
    assert await find_members(session, "100%") == [lin]
    assert await find_members(session, "_") == []
    assert await find_members(session, "li gone") == []
    assert await find_members(session, "13700137000") == []
    assert await find_members(session, "   ") == []
    assert await find_members(session, "x" * 500) == []
    assert await find_one_member(session, li.member_code) == li
    assert await find_one_member(session, "li") is None


async def test_staff_lookups_imports_and_exports_on_every_backend(
    any_db_url: str, clock: FrozenClock
) -> None:
    """The same queries on SQLite and PostgreSQL: look-ups, the till, import and export."""
    async with session_factory(any_db_url) as factory:
        async with factory() as session:
            connection = await session.connection()
            await connection.run_sync(Base.metadata.create_all)
            await session.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
            li = await make_member(session, CONFIG, clock, 1, "Li Lei", phone="+8613800138000")
            li.member_code = "K7QX2M9P"
            await make_member(session, CONFIG, clock, 2, "Li Na", username="lina")
            await _add(session, clock, OWNER_ID, ADMIN, "admin")
            await session.commit()
        async with factory() as session:
            assert [m.member_code for m in await find_members(session, "13800138000")] == [
                "K7QX2M9P"
            ]
            assert len(await find_members(session, "li")) == 2
            assert len(await find_members(session, "@LiNa")) == 1
            assert await staff_recipients(session, CONFIG) == [OWNER_ID, 900002, ADMIN]
        content = (
            "receipt_id,member,amount,purchased_at\n"
            "P-1,K7QX2M9P,10.00,2026-03-01T10:00:00+08:00\n"
            "P-2,13800138000,20.00,2026-03-01 11:00\n"
            "P-3,NOBODY,5,2026-03-01 11:00\n"
        )
        report = await import_purchases(factory, CONFIG, clock, io.StringIO(content))
        assert (report.imported, len(report.rejected)) == (2, 1)
        again = await import_purchases(factory, CONFIG, clock, io.StringIO(content))
        assert (again.imported, again.duplicates) == (0, 2)
        async with factory() as session:
            buffer = io.BytesIO()
            rows = await write_export(session, CONFIG, "purchases", "csv", buffer, batch_size=1)
            assert rows == 2
            assert "P-2,K7QX2M9P,20.00" in buffer.getvalue().decode("utf-8-sig")


async def test_an_owner_profile_row_grants_nothing_once_the_owner_is_no_longer_configured(
    session: AsyncSession, clock: FrozenClock
) -> None:
    """Owners get a row for their name and language; only ADMIN_IDS makes someone an owner."""
    seen = SeenAs(OWNER_ID, "Chen Jing", "chenjing", "en")
    await note_staff_seen(session, CONFIG, clock, seen, StaffRole.OWNER)
    assert await staff_locales(session, CONFIG, [OWNER_ID]) == {OWNER_ID: "en"}
    assert (await list_staff(session, CONFIG))[0].username == "chenjing"
    former = CareConfig(owner_ids=frozenset({900002}))
    assert await role_of(session, former, OWNER_ID) is None
    assert OWNER_ID not in await staff_recipients(session, former)
    assert await StaffRepo(session).roles() == {}
    with pytest.raises(StaffError) as refused:
        await remove_staff(session, former, clock, actor_telegram_id=900002, telegram_id=OWNER_ID)
    assert refused.value.reason == "not_staff"
    # Made a cashier later, they keep their name and language, and are audited as added.
    await add_staff(
        session, former, clock, actor_telegram_id=900002, telegram_id=OWNER_ID,
        role=StaffRole.CASHIER,
    )  # fmt: skip
    assert await role_of(session, former, OWNER_ID) == StaffRole.CASHIER
    assert (await recent_audit(session, limit=1))[0].action == "staff.add"
    assert await staff_locales(session, former, [OWNER_ID]) == {OWNER_ID: "en"}


async def test_staff_language_comes_from_choice_then_telegram_then_settings_then_member(
    session: AsyncSession, clock: FrozenClock
) -> None:
    config = CareConfig(owner_ids=frozenset({OWNER_ID}), owner_locales=((OWNER_ID, "en"),))
    await _add(session, clock, OWNER_ID, CASHIER, "cashier")
    await make_member(session, config, clock, ADMIN, "Ada", language_code="en")
    await _add(session, clock, OWNER_ID, ADMIN, "admin")
    # Nobody has written yet: the owner's setting, the admin's member row, the shop default.
    assert await staff_locales(session, config, [OWNER_ID, ADMIN, CASHIER]) == {
        OWNER_ID: "en",
        ADMIN: "en",
        CASHIER: "zh",
    }
    # First seen: Telegram's language; a staff member's own choice wins from then on.
    await note_staff_seen(
        session, config, clock, SeenAs(CASHIER, "Li", None, "en-US"), StaffRole.CASHIER
    )
    assert await staff_locales(session, config, [CASHIER]) == {CASHIER: "en"}
    await set_staff_locale(
        session, config, clock, SeenAs(CASHIER, "Li", None, "en"), StaffRole.CASHIER, "zh"
    )
    await note_staff_seen(
        session, config, clock, SeenAs(CASHIER, "Li Lei", "lilei", "en"), StaffRole.CASHIER
    )
    assert await staff_locales(session, config, [CASHIER]) == {CASHIER: "zh"}
    labels = await staff_labels(session, translator("en"), [CASHIER, ADMIN, 4242])
    assert labels == {CASHIER: "Li Lei (@lilei)", ADMIN: "Ada", 4242: "staff 4242"}
    assert (await staff_labels(session, translator("zh"), [CASHIER]))[
        CASHIER
    ] == "Li Lei（@lilei）"
