"""/birthday: only staff may change a birthday the member already set (it carries a reward)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from care.staff.roles import add_staff
from storage.enums import StaffRole
from storage.models import AuditEntry, Member
from tests.conftest import RunningBot
from tests.journey_helpers import register
from tests.staff_helpers import OWNER_ID


async def _member(app: RunningBot, telegram_id: int) -> Member:
    await app.settle()
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == telegram_id))
    assert member is not None
    return member


async def test_the_owner_corrects_a_locked_birthday_and_it_is_audited(app: RunningBot) -> None:
    shopper = app.user(4101, first_name="Lan", language_code="en")
    await register(shopper, "en", birthday="1990-05-17")
    member = await _member(app, 4101)
    assert member.birthday == date(1990, 5, 17) and member.birthday_locked

    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send(f"/birthday {member.member_code} 1990-06-18")
    reply = await owner.expect("is now")
    assert "18 Jun 1990" in reply.text and "17 May 1990" in reply.text

    member = await _member(app, 4101)
    assert member.birthday == date(1990, 6, 18)
    assert member.birthday_md == 618
    async with app.session() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "member.birthday")
        )
    assert entry is not None
    assert entry.actor_telegram_id == OWNER_ID
    # Who changed it and on whom; the dates stay out of a log that outlives erasure.
    assert entry.target == f"member:{member.id}"
    assert entry.details == {"replaced": True}


async def test_refusals_change_nothing(app: RunningBot) -> None:
    shopper = app.user(4102, first_name="Bo", language_code="zh")
    await register(shopper, "zh", birthday="1988-01-02")
    member = await _member(app, 4102)

    owner = app.user(OWNER_ID, first_name="Boss", language_code="zh")
    await owner.send(f"/birthday {member.member_code} 2999-01-01")
    assert "不是有效的生日" in (await owner.next_message()).text
    await owner.send("/birthday NOSUCHCODE 1990-01-01")
    assert "没有唯一的会员" in (await owner.next_message()).text
    await owner.send("/birthday")
    assert "/birthday" in (await owner.next_message()).text

    async with app.session() as session:
        await add_staff(
            session, app.config, app.clock,
            actor_telegram_id=OWNER_ID, telegram_id=4103, role=StaffRole.CASHIER,
        )  # fmt: skip
        await session.commit()
    cashier = app.user(4103, first_name="Cai", language_code="en")
    await cashier.send(f"/birthday {member.member_code} 1990-01-01")
    assert "Only an admin or the owner" in (await cashier.next_message()).text

    stranger = app.user(4104, first_name="Stranger", language_code="en")
    await stranger.send(f"/birthday {member.member_code} 1990-01-01")
    assert "don't know that command" in (await stranger.next_message()).text

    assert (await _member(app, 4102)).birthday == date(1988, 1, 2)
