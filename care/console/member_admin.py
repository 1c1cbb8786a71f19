"""Profile changes only staff may make (a member sets their birthday once; it carries a reward)."""

from __future__ import annotations

from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.loyalty.till import till_member
from care.members.registration import parse_birthday, set_birthday
from storage.models import Member


async def change_birthday(
    session: AsyncSession,
    clock: Clock,
    *,
    member_query: str,
    birthday_text: str,
    staff_telegram_id: int,
    staff_role: str,
) -> tuple[Member, date | None]:
    """Set a member's birthday on staff authority, even when the member already set it.

    ``member_query`` is a member code or phone number (never a guess by name). Raises
    ``care.loyalty.till.TillInputError`` for an unknown or ambiguous member and
    ``care.members.registration.InputProblem`` for a date that cannot be a birthday. Audited (who,
    when, on whom, whether a date was replaced) so a changed reward date can always be traced;
    the dates themselves stay out of the audit log, which outlives the member's erasure.
    """
    member = await till_member(session, member_query)
    born = parse_birthday(birthday_text, clock.now().date())
    previous = member.birthday
    set_birthday(member, born, clock, by_staff=True)
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="member.birthday",
        target=f"member:{member.id}",
        # Whether one was replaced, not the dates: the audit log must not keep a birthday.
        details={"replaced": previous is not None},
    )
    return member, previous
