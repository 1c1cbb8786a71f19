"""Who is staff, and with which role. Owners are configured; admins and cashiers are rows.

The rules for managing staff, in one place:

* Owners come from ``ADMIN_IDS`` only: nobody can add, remove or demote an owner in the chat.
* A role can be granted only by someone who ranks *above* it: owners grant admin and cashier,
  admins grant cashier. Cashiers manage nobody.
* Someone's existing role can be changed or removed only by someone who ranks above that role:
  an admin cannot demote or remove another admin (or themselves), only an owner can.
* Every change is written to the audit log in the same unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, normalize_locale, translator
from care.messaging.outbox import enqueue
from care.staff.profiles import known_staff_locales
from storage.enums import MessageKind, StaffRole
from storage.models import Staff
from storage.repos.staff import StaffRepo

NAME_MAX = 128
StaffProblem = Literal["not_allowed", "is_owner", "bad_role", "not_staff"]


class StaffError(Exception):
    """A staff change was refused; ``reason`` says why (a catalogue key suffix)."""

    def __init__(self, reason: StaffProblem) -> None:
        super().__init__(reason)
        self.reason: StaffProblem = reason


@dataclass(frozen=True, slots=True)
class StaffMember:
    telegram_id: int
    role: StaffRole
    name: str | None = None
    added_by: int | None = None
    created_at: datetime | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class StaffChange:
    telegram_id: int
    role: StaffRole
    previous_role: StaffRole | None
    changed: bool


async def role_of(session: AsyncSession, config: CareConfig, telegram_id: int) -> StaffRole | None:
    """The staff role of a Telegram user, or None for everyone else."""
    if config.is_owner(telegram_id):
        return StaffRole.OWNER
    staff = await StaffRepo(session).by_telegram_id(telegram_id)
    return _granted(staff)


def _granted(staff: Staff | None) -> StaffRole | None:
    """The role a staff row grants: an owner's profile row grants nothing by itself."""
    if staff is None or staff.role == StaffRole.OWNER:
        return None
    return StaffRole(staff.role)


def allows(role: StaffRole | None, minimum: StaffRole) -> bool:
    return role is not None and role.rank >= minimum.rank


def can_grant(actor: StaffRole | None, role: StaffRole) -> bool:
    """May ``actor`` give someone ``role``? Only roles strictly below one's own, never owner."""
    return actor is not None and role != StaffRole.OWNER and role.rank < actor.rank


def can_manage(actor: StaffRole | None, current: StaffRole) -> bool:
    """May ``actor`` change or remove someone who has ``current``? Only if ranked above it."""
    return actor is not None and current != StaffRole.OWNER and current.rank < actor.rank


async def add_staff(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    actor_telegram_id: int,
    telegram_id: int,
    role: StaffRole,
    name: str | None = None,
    username: str | None = None,
    language_code: str | None = None,
) -> StaffChange:
    """Give ``telegram_id`` the ``role`` (adding them, or changing their role); audited.

    Raises ``StaffError`` with ``is_owner`` (owners are configured), ``bad_role`` (owner cannot
    be granted) or ``not_allowed`` (the actor does not rank above the role, old or new).
    Giving someone the role they already have changes nothing and is not audited.
    ``name``, ``username`` and ``language_code`` are what Telegram showed of the person (a
    forwarded message), kept on their row until they write themselves.
    """
    actor_role = await role_of(session, config, actor_telegram_id)
    if config.is_owner(telegram_id):
        raise StaffError("is_owner")
    if role == StaffRole.OWNER:
        raise StaffError("bad_role")
    if not can_grant(actor_role, role):
        raise StaffError("not_allowed")
    repo = StaffRepo(session)
    existing = await repo.by_telegram_id(telegram_id)
    clean_name = (name.strip()[:NAME_MAX] or None) if name else None
    locale = normalize_locale(language_code, config.default_locale) if language_code else None
    previous: StaffRole | None
    if existing is not None:
        previous = _granted(existing)
        if previous is not None and not can_manage(actor_role, previous):
            raise StaffError("not_allowed")
        if clean_name:
            existing.name = clean_name
        if username:
            existing.username = username[:64]
        existing.locale = existing.locale or locale
        if previous == role:
            await session.flush()
            return StaffChange(telegram_id, role, previous, changed=False)
        await repo.change_role(existing, role)
    else:
        previous = None
        await repo.add(
            Staff(
                telegram_id=telegram_id,
                role=role,
                name=clean_name,
                username=username[:64] if username else None,
                locale=locale,
                added_by=actor_telegram_id,
                created_at=clock.now(),
            )
        )
    await audit(
        session,
        clock,
        actor_telegram_id=actor_telegram_id,
        actor_role=actor_role,
        action="staff.add" if previous is None else "staff.role",
        target=f"staff:{telegram_id}",
        details={"role": str(role), "previous_role": str(previous) if previous else None},
    )
    await _tell_new_role(session, config, clock, telegram_id, role)
    return StaffChange(telegram_id, role, previous, changed=True)


async def _tell_new_role(
    session: AsyncSession, config: CareConfig, clock: Clock, telegram_id: int, role: StaffRole
) -> None:
    """Let the person know (through the outbox) what they can do now: in their language, or in
    every language the shop speaks when nothing tells which one they read yet."""
    known = (await known_staff_locales(session, config, [telegram_id]))[telegram_id]
    locales = (
        [known] if known else sorted(LOCALES, key=lambda locale: locale != config.default_locale)
    )
    texts = []
    for locale in locales:
        t = translator(locale)
        texts.append(t("roles.welcome", role=t.plain(f"roles.{role}")))
    await enqueue(
        session,
        clock,
        config,
        key=f"staff:{telegram_id}:{role}:{clock.now().isoformat()}",
        chat_id=telegram_id,
        text="\n\n".join(texts),
        kind=MessageKind.ALERT,
        respect_quiet_hours=False,
    )


async def remove_staff(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    actor_telegram_id: int,
    telegram_id: int,
) -> StaffRole:
    """Take away the staff role of ``telegram_id``; returns the role they had. Audited.

    Raises ``StaffError`` with ``is_owner``, ``not_staff`` or ``not_allowed``.
    """
    actor_role = await role_of(session, config, actor_telegram_id)
    if config.is_owner(telegram_id):
        raise StaffError("is_owner")
    if not allows(actor_role, StaffRole.ADMIN):
        raise StaffError("not_allowed")
    repo = StaffRepo(session)
    previous = _granted(await repo.by_telegram_id(telegram_id))
    if previous is None:
        raise StaffError("not_staff")
    if not can_manage(actor_role, previous):
        raise StaffError("not_allowed")
    await repo.remove(telegram_id)
    await audit(
        session,
        clock,
        actor_telegram_id=actor_telegram_id,
        actor_role=actor_role,
        action="staff.remove",
        target=f"staff:{telegram_id}",
        details={"previous_role": str(previous)},
    )
    return previous


async def list_staff(session: AsyncSession, config: CareConfig) -> list[StaffMember]:
    """Everyone with a staff role: owners first, then admins, then cashiers (oldest first)."""
    all_rows = await StaffRepo(session).all()
    profiles = {row.telegram_id: row for row in all_rows if config.is_owner(row.telegram_id)}
    owners = [
        StaffMember(
            owner_id,
            StaffRole.OWNER,
            name=profiles[owner_id].name if owner_id in profiles else None,
            username=profiles[owner_id].username if owner_id in profiles else None,
        )
        for owner_id in sorted(config.owner_ids)
    ]
    rows = [
        StaffMember(
            telegram_id=row.telegram_id,
            role=StaffRole(row.role),
            name=row.name,
            added_by=row.added_by,
            created_at=row.created_at,
            username=row.username,
        )
        for row in all_rows
        if not config.is_owner(row.telegram_id) and row.role != StaffRole.OWNER
    ]
    rows.sort(key=lambda staff: -staff.role.rank)  # stable: keeps the oldest first per role
    return owners + rows


async def staff_recipients(
    session: AsyncSession, config: CareConfig, minimum: StaffRole = StaffRole.ADMIN
) -> list[int]:
    """Telegram ids of everyone at ``minimum`` or above: who receives staff alerts."""
    return [
        staff.telegram_id
        for staff in await list_staff(session, config)
        if staff.role.rank >= minimum.rank
    ]
