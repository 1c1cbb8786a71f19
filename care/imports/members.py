"""Importing the shop's existing customer list (from its old loyalty system or POS).

Each line becomes a member with status ``imported``: known to the shop, counted in stats and
segments, found by phone or member code when purchases are imported or rung up, but with no
Telegram chat, so nothing is ever sent to them. When that person registers in Telegram and
shares the same phone number as their own contact, the registration continues on this row
(``care.members.registration.claim_imported``): their points, purchases and tier are there.

Re-running a file is idempotent: a phone number that already belongs to a member counts as
"already recorded" and changes nothing. A batch is checked and written set-wise (a handful of
statements per batch, not per line), so 100,000 customers import in well under a minute.

The file rules are ``care.imports.csvfile``'s. Columns (only ``phone`` is required):

* ``phone`` — the mobile number; with ``+`` and the country code when known (``+8613800138000``),
  else as the shop's customers write it (``13800138000``: Telegram's contact share then matches
  it by its last digits)
* ``name`` — the name on the old card
* ``birthday`` — ``1990-05-17`` (or ``1990/5/17``, ``1990年5月17日``, ``17.05.1990``)
* ``language`` — ``zh`` or ``en`` (``zh-CN``, ``中文``, ``English`` are understood too); default
  the shop's language
* ``points`` — the opening points balance (a whole number ≥ 0), booked with a ledger entry
  "balance carried over"
* ``member_code`` — the old card's code (4–16 letters and digits), kept so the card still works at
  the till; a new carebot code is made when empty
* ``joined`` — when they joined the old programme (a date or an ISO time)
* ``marketing_consent`` — ``yes`` / ``no`` (``1``/``0``, ``true``/``false``, ``是``/``否``);
  empty means never asked (no marketing)
* ``consent_date`` — when that consent was given (default: ``joined``, else the import's time)
* ``consent_source`` — where it was given (``paper form``, ``old app`` …; ≤ 24 characters),
  kept on the consent record as ``import:<source>``
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.codes import normalize_code
from care.core.config import CareConfig
from care.imports.csvfile import (
    ImportReport,
    LineProblem,
    Progress,
    Row,
    check_short,
    run_import,
)
from care.members.membership import new_member_code
from care.members.registration import InputProblem, clean_name, parse_birthday
from storage.enums import ConsentKind, MemberStatus, PointsReason
from storage.models import ConsentEvent, Member, PointsEntry

REQUIRED_COLUMNS = ("phone",)
BATCH_SIZE = 1000
IMPORT_SOURCE = "import"
CONSENT_SOURCE_MAX = 24
POINTS_MAX = 10**9
MEMBER_CODE_RE = re.compile(r"^[A-Z0-9]{4,16}$")
_PHONE_JUNK = re.compile(r"[\s().\-/]")
_YES = frozenset({"yes", "y", "true", "1", "是", "同意", "x"})
_NO = frozenset({"no", "n", "false", "0", "否", "不同意"})
_LANGUAGES = {"中文": "zh", "汉语": "zh", "chinese": "zh", "english": "en", "英文": "en"}
_BIRTHDAY_REASONS = {
    "format": "is not a date like 1990-05-17",
    "impossible": "is not a real date",
    "future": "is in the future",
    "too_young": "makes them younger than 10",
    "too_old": "makes them older than 120",
}


def import_phone(raw: str) -> str:
    """The phone as stored: ``+<digits>`` when written with a country code, else the digits.

    Raises LineProblem when it is not 5–15 ASCII digits.
    """
    text = _PHONE_JUNK.sub("", raw)
    plus = text.startswith("+")
    digits = text.lstrip("+")
    if text.startswith("00"):  # 0086… is how many write +86…
        plus, digits = True, digits[2:]
    if not (digits.isascii() and digits.isdigit()) or not 5 <= len(digits) <= 15:
        raise LineProblem(f"phone {raw!r} is not a phone number (5 to 15 digits)")
    return f"+{digits}" if plus else digits


def _phone_variants(phone: str) -> tuple[str, str]:
    digits = phone.lstrip("+")
    return digits, f"+{digits}"


@dataclass(slots=True)
class _Line:
    number: int
    phone: str
    name: str | None
    birthday: date | None
    locale: str
    points: int
    code: str | None
    joined: datetime | None
    consent: bool | None
    consent_at: datetime | None
    consent_source: str


def _when(text: str, column: str, zone: ZoneInfo, now: datetime) -> datetime:
    cleaned = text.strip().replace("/", "-")
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError:
        try:
            when = datetime.combine(date.fromisoformat(cleaned), time())
        except ValueError:
            raise LineProblem(f"{column} {text!r} is not a date like 2021-05-03") from None
    when = when.replace(tzinfo=zone) if when.tzinfo is None else when
    if when > now:
        raise LineProblem(f"{column} {text!r} is in the future")
    return when


def _locale(text: str, config: CareConfig) -> str:
    if not text:
        return config.default_locale
    lowered = text.lower()
    if lowered in _LANGUAGES:
        return _LANGUAGES[lowered]
    base = lowered.replace("_", "-").split("-")[0]
    if base in ("zh", "en"):
        return base
    raise LineProblem(f"language {text!r} is not zh or en")


def _check(number: int, row: Row, config: CareConfig, now: datetime) -> _Line:
    check_short(row)
    if not row.get("phone"):
        raise LineProblem("phone is empty")
    phone = import_phone(row["phone"])
    zone = ZoneInfo(config.default_timezone)
    name = None
    if row.get("name"):
        try:
            name = clean_name(row["name"])
        except InputProblem:
            raise LineProblem(f"name {row['name']!r} is not usable as a name") from None
    birthday = None
    if row.get("birthday"):
        try:
            birthday = parse_birthday(row["birthday"], now.astimezone(zone).date())
        except InputProblem as problem:
            reason = _BIRTHDAY_REASONS.get(problem.reason, "is not usable")
            raise LineProblem(f"birthday {row['birthday']!r} {reason}") from None
    points_text = row.get("points", "").replace(",", "").replace("_", "")
    points = 0
    if points_text:
        if not points_text.isascii() or not points_text.isdigit():
            raise LineProblem(f"points {row['points']!r} is not a whole number of points")
        points = int(points_text)
        if points > POINTS_MAX:
            raise LineProblem(f"points {row['points']!r} is more than any balance can be")
    code = None
    if row.get("member_code"):
        code = normalize_code(row["member_code"])
        if not MEMBER_CODE_RE.match(code):
            raise LineProblem(
                f"member_code {row['member_code']!r} is not 4 to 16 letters and digits"
            )
    joined = _when(row["joined"], "joined", zone, now) if row.get("joined") else None
    consent = None
    answer = row.get("marketing_consent", "").lower()
    if answer in _YES:
        consent = True
    elif answer in _NO:
        consent = False
    elif answer:
        raise LineProblem(f"marketing_consent {row['marketing_consent']!r} is not yes or no")
    consent_at = None
    if row.get("consent_date"):
        if consent is None:
            raise LineProblem("consent_date is given but marketing_consent is empty")
        consent_at = _when(row["consent_date"], "consent_date", zone, now)
    source = " ".join(row.get("consent_source", "").split())
    if len(source) > CONSENT_SOURCE_MAX:
        raise LineProblem(f"consent_source is longer than {CONSENT_SOURCE_MAX} characters")
    return _Line(
        number=number,
        phone=phone,
        name=name,
        birthday=birthday,
        locale=_locale(row.get("language", ""), config),
        points=points,
        code=code,
        joined=joined,
        consent=consent,
        consent_at=consent_at,
        consent_source=f"{IMPORT_SOURCE}:{source}" if source else IMPORT_SOURCE,
    )


async def import_members(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    source: Path | TextIO,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
) -> ImportReport:
    """Import a customer list; returns what was imported, what was known, what was rejected.

    ``dry_run`` checks and writes every batch, then rolls it back. Raises ``ImportFileError``
    when the file as a whole cannot be read (nothing is saved then).
    """

    return await run_import(
        session_factory,
        clock,
        source,
        required=REQUIRED_COLUMNS,
        check=lambda number, row, now: _check(number, row, config, now),
        book=lambda session, now, lines, report: _book_batch(session, config, now, lines, report),
        action="import.members",
        batch_size=batch_size,
        progress=progress,
        dry_run=dry_run,
    )


async def _book_batch(
    session: AsyncSession,
    config: CareConfig,
    now: datetime,
    lines: list[_Line],
    report: ImportReport,
) -> None:
    """Write the checked lines of one batch: one query for known phones, one for known codes,
    then one multi-row insert each for members, consent records and ledger entries."""
    variants = [v for line in lines for v in _phone_variants(line.phone)]
    known_phones = (
        set(
            await session.scalars(
                select(Member.phone).where(
                    Member.phone.in_(variants), Member.status != MemberStatus.DELETED
                )
            )
        )
        if variants
        else set()
    )
    given_codes = [line.code for line in lines if line.code]
    taken_codes = (
        set(
            await session.scalars(
                select(Member.member_code).where(Member.member_code.in_(given_codes))
            )
        )
        if given_codes
        else set()
    )
    fresh: list[_Line] = []
    seen_phones: set[str] = set()
    seen_codes: set[str] = set()
    for line in lines:
        digits, plus = _phone_variants(line.phone)
        if known_phones & {digits, plus} or digits in seen_phones:
            report.duplicates += 1
            continue
        if line.code and (line.code in taken_codes or line.code in seen_codes):
            report.reject(line.number, f"member_code {line.code!r} belongs to another member")
            continue
        seen_phones.add(digits)
        if line.code:
            seen_codes.add(line.code)
        fresh.append(line)
    if not fresh:
        return
    await _give_codes(session, fresh, seen_codes)
    await session.execute(
        insert(Member.__table__), [_member_row(line, config, now) for line in fresh]
    )
    found = await session.execute(
        select(Member.member_code, Member.id).where(
            Member.member_code.in_([line.code for line in fresh])
        )
    )
    ids: dict[str | None, int] = {code: member_id for code, member_id in found}
    consents = [
        {
            "member_id": ids[line.code],
            "kind": ConsentKind.MARKETING.value,
            "granted": line.consent,
            "source": line.consent_source,
            "at": line.consent_at or line.joined or now,
        }
        for line in fresh
        if line.consent is not None and line.code is not None
    ]
    if consents:
        await session.execute(insert(ConsentEvent.__table__), consents)
    ledger = [
        {
            "member_id": ids[line.code],
            "delta": line.points,
            "balance_after": line.points,
            "reason": PointsReason.OPENING.value,
            "purchase_id": None,
            "note": "opening balance imported from the shop's old system",
            "created_at": now,
        }
        for line in fresh
        if line.points > 0 and line.code is not None
    ]
    if ledger:
        await session.execute(insert(PointsEntry.__table__), ledger)
    report.imported += len(fresh)


async def _give_codes(session: AsyncSession, lines: list[_Line], taken: set[str]) -> None:
    """A new carebot code for each line without one, unique in the database and the batch."""
    missing = [line for line in lines if line.code is None]
    while missing:
        proposed = {new_member_code(): line for line in missing}
        clashing = set(
            await session.scalars(
                select(Member.member_code).where(Member.member_code.in_(list(proposed)))
            )
        )
        for code, line in proposed.items():
            if code not in clashing and code not in taken:
                line.code = code
                taken.add(code)
        missing = [line for line in missing if line.code is None]


def _member_row(line: _Line, config: CareConfig, now: datetime) -> dict[str, Any]:
    consent_at = line.consent_at or line.joined or now
    return {
        "telegram_id": None,
        "chat_id": None,
        "member_code": line.code,
        "status": MemberStatus.IMPORTED.value,
        "name": line.name,
        "phone": line.phone,
        "birthday": line.birthday,
        "birthday_md": line.birthday.month * 100 + line.birthday.day if line.birthday else None,
        "birthday_locked": line.birthday is not None,
        "locale": line.locale,
        "timezone": config.default_timezone,
        "marketing_opt_in": bool(line.consent),
        "marketing_changed_at": consent_at if line.consent is not None else None,
        "source": IMPORT_SOURCE,
        "points_balance": line.points,
        "created_at": line.joined or now,
        "registered_at": line.joined,
        "updated_at": now,
    }
