"""Who a staff member is to other people: their name, @username and the language they read.

Staff texts and alerts reach each staff member in their own language, whatever language the
shop's members or its default speak. That language comes, in order, from their own choice
(``/lang``), from Telegram's ``language_code`` the first time they are seen, from
``ADMIN_LANGUAGES`` for an owner, from their member row if they are also a member, and last from
the shop's default.
Their name and @username are what Telegram last showed for them, refreshed whenever they write,
so every staff text can say "Li Lei (@lilei)" instead of a number.

Owners are configured, not stored; their row (role ``owner``) holds only this profile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, normalize_locale
from storage.enums import StaffRole
from storage.models import Staff
from storage.repos.members import MemberRepo
from storage.repos.staff import StaffRepo

NAME_MAX = 128
USERNAME_MAX = 64


@dataclass(frozen=True, slots=True)
class SeenAs:
    """How Telegram shows a person on their update: the profile staff rows keep current."""

    telegram_id: int
    full_name: str
    username: str | None
    language_code: str | None


def clean_name(name: str | None) -> str | None:
    return (name.strip()[:NAME_MAX] or None) if name else None


def label(telegram_id: int, name: str | None, username: str | None, t: Translator) -> str:
    """ "Li Lei (@lilei)", "Li Lei", "@lilei" — or "staff 9002" for someone never seen."""
    handle = f"@{username}" if username else None
    if name and handle:
        return t.plain("staff_language.label_both", name=name, handle=handle)
    if name or handle:
        return name or handle or ""
    return t.plain("staff_language.label_unknown", user_id=telegram_id)


async def note_staff_seen(
    session: AsyncSession, config: CareConfig, clock: Clock, seen: SeenAs, role: StaffRole
) -> Staff:
    """Keep the staff row of someone who just wrote current: name, @username, and their language
    the first time it is known. Writes only what changed; an owner gets their profile row here.
    """
    repo = StaffRepo(session)
    row = await repo.by_telegram_id(seen.telegram_id)
    name = clean_name(seen.full_name)
    username = seen.username[:USERNAME_MAX] if seen.username else None
    if row is None:
        # Only an owner can be staff without a row: make their profile now.
        return await repo.add(
            Staff(
                telegram_id=seen.telegram_id,
                role=role,
                name=name,
                username=username,
                locale=config.owner_locale(seen.telegram_id)
                or normalize_locale(seen.language_code, config.default_locale),
                created_at=clock.now(),
            )
        )
    if name and row.name != name:
        row.name = name
    if row.username != username:
        row.username = username
    if row.locale is None:
        row.locale = config.owner_locale(seen.telegram_id) or normalize_locale(
            seen.language_code, config.default_locale
        )
    await session.flush()  # a no-op when nothing changed
    return row


async def set_staff_locale(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    seen: SeenAs,
    role: StaffRole,
    locale: str,
) -> Staff:
    """The staff member's own choice of language; it wins over every guess from then on."""
    if locale not in LOCALES:
        raise ValueError(f"unsupported locale {locale!r}")
    row = await note_staff_seen(session, config, clock, seen, role)
    row.locale = locale
    await session.flush()
    return row


async def staff_locales(
    session: AsyncSession, config: CareConfig, telegram_ids: Iterable[int]
) -> dict[int, str]:
    """The language each of these staff members reads staff texts in (two queries at most)."""
    known = await known_staff_locales(session, config, telegram_ids)
    return {telegram_id: locale or config.default_locale for telegram_id, locale in known.items()}


async def known_staff_locales(
    session: AsyncSession, config: CareConfig, telegram_ids: Iterable[int]
) -> dict[int, str | None]:
    """Each person's language as far as the shop knows it: their choice or Telegram's, the
    owner setting, their member profile; ``None`` when nothing tells (a new cashier who has
    never written to the bot)."""
    wanted = list(dict.fromkeys(telegram_ids))
    if not wanted:
        return {}
    rows = {row.telegram_id: row for row in await StaffRepo(session).by_telegram_ids(wanted)}
    found: dict[int, str | None] = {}
    missing: list[int] = []
    for telegram_id in wanted:
        row = rows.get(telegram_id)
        chosen = (row.locale if row is not None else None) or config.owner_locale(telegram_id)
        if chosen:
            found[telegram_id] = chosen
        else:
            missing.append(telegram_id)
    if missing:
        member_locales = await MemberRepo(session).locales_by_telegram_id(missing)
        for telegram_id in missing:
            found[telegram_id] = member_locales.get(telegram_id)
    return found


async def staff_locale(session: AsyncSession, config: CareConfig, telegram_id: int) -> str:
    return (await staff_locales(session, config, [telegram_id]))[telegram_id]


async def staff_labels(
    session: AsyncSession, t: Translator, telegram_ids: Iterable[int]
) -> dict[int, str]:
    """How to show each of these people in staff texts: "Li Lei (@lilei)".

    From their staff row; someone without a name there (removed staff, or added by id and never
    seen since) is named from their member row if they have one.
    """
    wanted = list(dict.fromkeys(telegram_ids))
    if not wanted:
        return {}
    rows = {row.telegram_id: row for row in await StaffRepo(session).by_telegram_ids(wanted)}
    unnamed = [
        telegram_id
        for telegram_id in wanted
        if telegram_id not in rows or not (rows[telegram_id].name or rows[telegram_id].username)
    ]
    members = await MemberRepo(session).names_by_telegram_id(unnamed) if unnamed else {}
    labels: dict[int, str] = {}
    for telegram_id in wanted:
        row = rows.get(telegram_id)
        name = row.name if row is not None else None
        username = row.username if row is not None else None
        if not (name or username) and telegram_id in members:
            name, username = members[telegram_id]
        labels[telegram_id] = label(telegram_id, name, username, t)
    return labels
