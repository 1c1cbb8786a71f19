"""Finding a member the way staff know them: card code, phone, @username or name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.codes import normalize_code
from care.members.membership import CODE_ALPHABET, CODE_LENGTH
from storage.enums import MemberStatus
from storage.models import Member

CODE_RE = re.compile(rf"^[{CODE_ALPHABET}]{{{CODE_LENGTH}}}$")
# A card code kept from the shop's old system (``carebot import members``) may use any letters
# and digits; it is looked up as a code first, like carebot's own.
IMPORTED_CODE_RE = re.compile(r"^[A-Z0-9]{4,16}$")
PHONE_RE = re.compile(r"^\+?[\d\s\-().]{5,24}$", re.ASCII)
USERNAME_RE = re.compile(r"^@?[A-Za-z][A-Za-z0-9_]{3,31}$")
# Enough digits that a suffix match ("13800138000" for "+8613800138000") is not a guess.
PHONE_SUFFIX_MIN_DIGITS = 7
QUERY_MAX = 64


def phone_digits(text: str) -> str:
    """The ASCII digits of ``text`` (a phone number is stored with ASCII digits only)."""
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


def _clean_query(query: str) -> str | None:
    """The query with its whitespace collapsed; None when it cannot name anybody.

    A control or format character (NUL above all) never belongs to a name, code or phone, and
    it is dangerous in a pattern: SQLite ends a LIKE pattern at NUL (``%\x00%`` matched every
    member) and PostgreSQL refuses NUL in text outright.
    """
    text = " ".join(query.split())
    if not text or len(text) > QUERY_MAX:
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co") for ch in text):
        return None
    return text


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _known() -> Select[Member]:
    return select(Member).where(Member.status != MemberStatus.DELETED)


async def find_members(session: AsyncSession, query: str, limit: int = 10) -> list[Member]:
    """Members matching what a cashier typed, best match first; deleted members never match.

    A member code (forgiving about case, spaces and a dash) or a phone number (with or
    without the country code) finds that member; ``@name`` finds a Telegram username;
    anything else is a case-insensitive search in names. An empty or overlong query, or one with
    a control character, finds nobody.
    """
    text = _clean_query(query)
    if text is None:
        return []

    code = normalize_code(text)
    if CODE_RE.match(code) or IMPORTED_CODE_RE.match(code):
        by_code = await session.scalar(_known().where(Member.member_code == code))
        if by_code is not None:
            return [by_code]

    if text.startswith("@") and USERNAME_RE.match(text):
        username = text[1:].lower()
        return list(
            await session.scalars(
                _known()
                .where(func.lower(Member.username) == username)
                .order_by(Member.id)
                .limit(limit)
            )
        )

    digits = phone_digits(text)
    if PHONE_RE.match(text) and len(digits) >= 5:
        found = await _by_phone(session, digits, limit)
        if found:
            return found

    pattern = f"%{_escape_like(text.lower())}%"
    conditions: list[ColumnElement[bool]] = [func.lower(Member.name).like(pattern, escape="\\")]
    if USERNAME_RE.match(text):
        conditions.append(func.lower(Member.username) == text.lower())
    return list(
        await session.scalars(
            _known()
            .where(or_(*conditions))
            # Exact names first, then the members seen most recently at the till.
            .order_by(
                (func.lower(Member.name) != text.lower()),
                Member.last_purchase_at.desc().nulls_last(),
                Member.id,
            )
            .limit(limit)
        )
    )


async def _by_phone(session: AsyncSession, digits: str, limit: int) -> list[Member]:
    exact = list(
        await session.scalars(
            _known()
            .where(Member.phone.in_((digits, f"+{digits}")))
            .order_by(Member.id)
            .limit(limit)
        )
    )
    if exact or len(digits) < PHONE_SUFFIX_MIN_DIGITS:
        return exact
    # A local number typed without the country code the contact share carried.
    return list(
        await session.scalars(
            _known().where(Member.phone.like(f"%{digits}")).order_by(Member.id).limit(limit)
        )
    )


async def find_one_member(session: AsyncSession, query: str) -> Member | None:
    """The single member ``query`` names unambiguously (code or phone first), else None."""
    found = await find_members(session, query, limit=2)
    return found[0] if len(found) == 1 else None


async def find_by_code_or_phone(session: AsyncSession, text: str, limit: int = 2) -> list[Member]:
    """Members an exact identity names (member code, else phone number): for the till and
    imports, where a fuzzy name match must never pick whom a purchase is booked to."""
    cleaned = _clean_query(text)
    if cleaned is None:
        return []
    text = cleaned
    code = normalize_code(text)
    if CODE_RE.match(code) or IMPORTED_CODE_RE.match(code):
        by_code = await session.scalar(_known().where(Member.member_code == code))
        if by_code is not None:
            return [by_code]
    digits = phone_digits(text)
    if PHONE_RE.match(text) and len(digits) >= 5:
        return await _by_phone(session, digits, limit)
    return []


# Keeps every IN list well below SQLite's bound-parameter limit.
_IN_CHUNK = 500


async def find_many_by_code_or_phone(
    session: AsyncSession, texts: Iterable[str], limit: int = 2
) -> dict[str, list[Member]]:
    """``find_by_code_or_phone`` for many texts at once: the same answer for each text, found
    with a few set-based queries (codes, then exact phones) instead of one or two per text; only
    a local number typed without its country code still needs a query of its own."""
    wanted: dict[str, tuple[str | None, str | None]] = {}
    for text in set(texts):
        cleaned = _clean_query(text)
        if cleaned is None:
            wanted[text] = (None, None)
            continue
        code = normalize_code(cleaned)
        digits = phone_digits(cleaned)
        wanted[text] = (
            code if CODE_RE.match(code) or IMPORTED_CODE_RE.match(code) else None,
            digits if PHONE_RE.match(cleaned) and len(digits) >= 5 else None,
        )
    codes = sorted({code for code, _ in wanted.values() if code is not None})
    by_code: dict[str, Member] = {}
    for start in range(0, len(codes), _IN_CHUNK):
        part = codes[start : start + _IN_CHUNK]
        for member in await session.scalars(_known().where(Member.member_code.in_(part))):
            if member.member_code is not None:
                by_code[member.member_code] = member
    phones = sorted(
        {
            form
            for code, digits in wanted.values()
            if digits is not None and (code is None or code not in by_code)
            for form in (digits, f"+{digits}")
        }
    )
    by_phone: dict[str, list[Member]] = {}
    for start in range(0, len(phones), _IN_CHUNK):
        part = phones[start : start + _IN_CHUNK]
        query = _known().where(Member.phone.in_(part)).order_by(Member.id)
        for member in await session.scalars(query):
            by_phone.setdefault(phone_digits(member.phone or ""), []).append(member)
    found: dict[str, list[Member]] = {}
    for asked, (as_code, as_phone) in wanted.items():
        if as_code is not None and as_code in by_code:
            found[asked] = [by_code[as_code]]
        elif as_phone is None:
            found[asked] = []
        elif exact := sorted(by_phone.get(as_phone, []), key=lambda m: m.id)[:limit]:
            found[asked] = exact
        elif len(as_phone) < PHONE_SUFFIX_MIN_DIGITS:
            found[asked] = []
        else:
            found[asked] = await _by_phone(session, as_phone, limit)
    return found
