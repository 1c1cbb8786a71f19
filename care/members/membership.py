"""Membership: who a Telegram user is to the shop."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import normalize_locale
from storage.enums import MemberStatus
from storage.models import Member, MemberInterest
from storage.repos.members import MemberRepo

# No 0/O, 1/I/L: a cashier reads these aloud and types them.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8


@dataclass(frozen=True, slots=True)
class TelegramIdentity:
    user_id: int
    chat_id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


def new_member_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def unique_member_code(repo: MemberRepo) -> str:
    while True:
        code = new_member_code()
        if not await repo.code_taken(code):
            return code


async def find_member(session: AsyncSession, telegram_id: int) -> Member | None:
    """The member behind a Telegram user, if any (deleted members are strangers again)."""
    return await MemberRepo(session).by_telegram_id(telegram_id)


@dataclass(frozen=True, slots=True)
class UpdateContext:
    """What one query tells about an update: who sent it, the staff version (see
    ``care.staff.directory``) and whether an earlier delivery of it was handled already."""

    member: Member | None
    staff_version: int
    handled_before: bool


async def update_context(
    session: AsyncSession, telegram_id: int, update_id: int | None, history: int = 0
) -> UpdateContext:
    """The context of an update from ``telegram_id`` (``update_id`` None: no dedupe check);
    with ``history``, the member's latest ledger entries are read along, for this session's
    ``points_history``."""
    member, version, handled = await MemberRepo(session).for_update_context(
        telegram_id, update_id, history
    )
    return UpdateContext(member, version, handled)


async def load_interests(session: AsyncSession, member: Member) -> list[MemberInterest]:
    """The member's interests, loaded where they are shown or changed (never implicitly)."""
    return await MemberRepo(session).load_interests(member)


async def create_member(
    session: AsyncSession,
    identity: TelegramIdentity,
    config: CareConfig,
    clock: Clock,
    *,
    status: MemberStatus = MemberStatus.REGISTERING,
) -> Member:
    """Create the member row for a Telegram user who has just met the bot."""
    repo = MemberRepo(session)
    now = clock.now()
    member = Member(
        telegram_id=identity.user_id,
        chat_id=identity.chat_id,
        username=identity.username,
        name=identity.full_name[:128] or None,
        member_code=await unique_member_code(repo),
        status=status,
        locale=normalize_locale(identity.language_code, config.default_locale),
        timezone=config.default_timezone,
        created_at=now,
        registered_at=now if status == MemberStatus.ACTIVE else None,
    )
    return await repo.add(member)
