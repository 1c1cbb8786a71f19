"""Becoming a member and managing one's own profile: validation, consent, referral, settings.

Everything here takes "now" from the clock passed in and writes through the caller's session
(the unit of work commits once). The chat UI only parses input and renders the outcome.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.i18n import LOCALES
from care.core.timezones import is_valid_zone
from storage.enums import ConsentKind, MemberStatus
from storage.models import Base, ConsentEvent, Member, MemberInterest
from storage.repos.members import MemberRepo

NAME_MAX_LENGTH = 64
MIN_AGE_YEARS = 10
MAX_AGE_YEARS = 120
SOURCE_MAX_LENGTH = 64


class InputProblem(ValueError):
    """A shopper's input that cannot be used; ``reason`` picks the polite re-prompt."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------ validation (pure)


def clean_name(raw: str | None) -> str:
    """A display name: trimmed, 1..64 characters, no control or formatting characters.

    Raises InputProblem("empty" | "too_long" | "control" | "command").
    """
    if raw is None:
        raise InputProblem("empty")
    text = " ".join(raw.split())
    if not text:
        raise InputProblem("empty")
    if text.startswith("/"):
        raise InputProblem("command")
    if len(text) > NAME_MAX_LENGTH:
        raise InputProblem("too_long")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in text):
        raise InputProblem("control")
    return text


# What people type at "what should we call you?" when they mean a greeting or an answer, not a
# name: taken as one, the bot would greet them "Nice to meet you, hi!" and keep it on the card.
_NOT_NAMES = frozenset(
    {
        "hi", "hello", "hey", "hallo", "yes", "yeah", "yep", "no", "nope", "ok", "okay",
        "sure", "thanks", "thank you", "thx", "help", "start", "menu", "skip", "keep", "name",
        "你好", "您好", "嗨", "哈喽", "哈啰", "在吗", "在", "是", "是的", "对", "好", "好的",
        "嗯", "不", "不要", "否", "谢谢", "跳过", "沿用", "可以", "行", "名字",
    }
)  # fmt: skip
_NAME_TRIM = " .,!~。，！、…"


def clean_typed_name(raw: str | None) -> str:
    """A typed name (``clean_name``); a greeting or a yes/no raises InputProblem("not_a_name")."""
    name = clean_name(raw)
    if name.casefold().strip(_NAME_TRIM) in _NOT_NAMES:
        raise InputProblem("not_a_name")
    return name


_PHONE_JUNK = re.compile(r"[\s().-]")


def normalize_phone(raw: str) -> str:
    """A shared contact's number in one shape, ``+<digits>`` (Telegram sometimes drops the +)."""
    digits = _PHONE_JUNK.sub("", raw).lstrip("+")
    # ASCII only: str.isdigit() also accepts "١٢٣" or "①②③", which no till or SMS gateway dials.
    if not (digits.isascii() and digits.isdigit()) or not 5 <= len(digits) <= 15:
        raise InputProblem("phone")
    return f"+{digits}"


_DATE_PATTERNS: tuple[tuple[re.Pattern[str], tuple[str, str, str]], ...] = (
    (re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$"), ("y", "m", "d")),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), ("y", "m", "d")),
    # Day first, as most of the world writes it (a shopper in the US sees the example format).
    (re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})$"), ("d", "m", "y")),
)


def parse_birthday(raw: str | None, today: date) -> date:
    """A birthday typed by a shopper: 1990-05-17, 1990/5/17, 1990.05.17, 1990年5月17日,
    19900517 or 17.05.1990 (day first).

    Raises InputProblem("format" | "impossible" | "future" | "too_young" | "too_old").
    """
    text = (raw or "").strip()
    if len(text) > 32:
        raise InputProblem("format")
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(text)
        if match is None:
            continue
        parts = dict(zip(order, (int(group) for group in match.groups()), strict=True))
        try:
            born = date(parts["y"], parts["m"], parts["d"])
        except ValueError:
            raise InputProblem("impossible") from None
        return check_birthday(born, today)
    raise InputProblem("format")


def check_birthday(born: date, today: date) -> date:
    """A real birthday: not in the future, an age between 10 and 120."""
    if born > today:
        raise InputProblem("future")
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age < MIN_AGE_YEARS:
        raise InputProblem("too_young")
    if age > MAX_AGE_YEARS:
        raise InputProblem("too_old")
    return born


class Expects(StrEnum):
    """What a step waiting for the shopper's input can take."""

    CHOICE = "choice"  # a button (language, consent, interests, a time zone)
    NAME = "name"
    PHONE = "phone"  # the contact button; a typed number is an attempt
    DATE = "date"  # a birthday


_QUESTION = re.compile(r"[?？]")
_DIGIT = re.compile(r"\d")
# A step's answer is short: beyond this many words, or CJK characters, it is a sentence.
_SENTENCE_WORDS = {Expects.CHOICE: 3, Expects.PHONE: 3, Expects.DATE: 3, Expects.NAME: 6}
_SENTENCE_CJK = {Expects.CHOICE: 6, Expects.PHONE: 6, Expects.DATE: 6, Expects.NAME: 9}


def _cjk_count(text: str) -> int:
    return sum(1 for ch in text if unicodedata.east_asian_width(ch) in ("W", "F"))


def is_message_to_shop(text: str | None, expects: Expects) -> bool:
    """Whether text typed while a step waits is clearly not an answer to it but something said
    to the shop (a question, a sentence), which then belongs in the shopper's conversation.

    "yes", "中文", "next tuesday", "beauty please" or a mistyped date are attempts at the step
    (re-asked with a hint); "Are you open on Sunday?", "你们周日营业吗" or "I bought milk here
    yesterday and it was sour" are not. A date step takes anything with a digit for an attempt.
    """
    words = (text or "").split()
    if not words or words[0].startswith("/"):
        return False
    joined = " ".join(words)
    if _QUESTION.search(joined):
        return True
    if expects in (Expects.DATE, Expects.PHONE) and _DIGIT.search(joined):
        return False
    if expects == Expects.NAME and len(joined) > NAME_MAX_LENGTH and len(words) > 1:
        return True
    return len(words) >= _SENTENCE_WORDS[expects] or _cjk_count(joined) >= _SENTENCE_CJK[expects]


def local_today(clock: Clock, timezone: str) -> date:
    """Today's date on the member's wall clock (birthdays and ages are local)."""
    return clock.now().astimezone(ZoneInfo(timezone)).date()


# ------------------------------------------------------------------ deep links


class LinkKind(StrEnum):
    NONE = "none"
    REFERRAL = "ref"
    SOURCE = "src"


@dataclass(frozen=True, slots=True)
class StartLink:
    kind: LinkKind
    value: str = ""


_SOURCE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def parse_start_link(payload: str | None) -> StartLink:
    """``ref_<code>`` → referral, ``src_<tag>`` → acquisition source (sanitised, ≤ 64 chars)."""
    text = (payload or "").strip()
    if text.startswith("ref_"):
        code = text[4:].upper()
        if code.isalnum() and 0 < len(code) <= 16:
            return StartLink(LinkKind.REFERRAL, code)
    elif text.startswith("src_"):
        tag = _SOURCE_UNSAFE.sub("", text[4:])[:SOURCE_MAX_LENGTH].lower()
        if tag:
            return StartLink(LinkKind.SOURCE, tag)
    return StartLink(LinkKind.NONE)


class ReferralOutcome(StrEnum):
    RECORDED = "recorded"
    SELF = "self"
    ALREADY = "already"
    UNKNOWN = "unknown"
    TOO_LATE = "too_late"


async def record_referral(session: AsyncSession, member: Member, code: str) -> ReferralOutcome:
    """Remember who invited ``member``: one referrer ever, never oneself, only before joining.

    The referrer must be an active member; the reward itself belongs to the care engine.
    """
    if code.upper() == member.member_code:
        return ReferralOutcome.SELF
    if member.referrer_id is not None:
        return ReferralOutcome.ALREADY
    if member.status != MemberStatus.REGISTERING:
        return ReferralOutcome.TOO_LATE
    referrer = await MemberRepo(session).by_code(code)
    if referrer is None or referrer.status != MemberStatus.ACTIVE or referrer.id == member.id:
        return ReferralOutcome.UNKNOWN
    member.referrer_id = referrer.id
    await session.flush()
    return ReferralOutcome.RECORDED


def record_source(member: Member, tag: str) -> bool:
    """Keep the first acquisition source only: later posters don't rewrite where they came from."""
    if member.source is not None:
        return False
    member.source = tag[:SOURCE_MAX_LENGTH]
    return True


async def count_referrals(session: AsyncSession, member_id: int) -> int:
    """Friends who joined through this member's link and finished registering."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.referrer_id == member_id, Member.status == MemberStatus.ACTIVE)
        )
        or 0
    )


# ------------------------------------------------------------------ consent and reachability


async def set_consent(
    session: AsyncSession,
    clock: Clock,
    member: Member,
    kind: ConsentKind,
    granted: bool,
    source: str,
) -> None:
    """Grant or withdraw one consent: the member's flag, its time, and a ConsentEvent as proof."""
    now = clock.now()
    if kind == ConsentKind.PROFILE:
        member.profile_consent_at = now if granted else None
    elif kind == ConsentKind.MARKETING:
        member.marketing_opt_in = granted
        member.marketing_changed_at = now
    elif kind == ConsentKind.SURVEYS:
        member.surveys_opt_in = granted
        member.surveys_changed_at = now
    member.updated_at = now
    session.add(
        ConsentEvent(member_id=member.id, kind=kind, granted=granted, source=source[:32], at=now)
    )
    await session.flush()


async def set_reachable(
    session: AsyncSession, clock: Clock, telegram_id: int, reachable: bool
) -> Member | None:
    """Record that a Telegram user blocked (``reachable=False``) or unblocked the bot."""
    member = await MemberRepo(session).by_telegram_id(telegram_id)
    if member is None:
        return None
    if reachable:
        member.blocked_at = None
    elif member.blocked_at is None:
        member.blocked_at = clock.now()
    member.updated_at = clock.now()
    await session.flush()
    return member


# ------------------------------------------------------------------ profile


def is_registered(member: Member | None) -> bool:
    """A member who finished registering and was not deleted."""
    return member is not None and member.status == MemberStatus.ACTIVE


async def set_interests(session: AsyncSession, member: Member, categories: list[str]) -> None:
    """Replace the member's interests with ``categories`` (order kept, duplicates dropped)."""
    wanted = list(dict.fromkeys(categories))
    await session.execute(delete(MemberInterest).where(MemberInterest.member_id == member.id))
    session.add_all(MemberInterest(member_id=member.id, category=c) for c in wanted)
    await session.flush()
    await session.refresh(member, ["interests"])


class BirthdayLocked(Exception):
    """The member set their birthday already; only staff may change it (it carries a reward)."""


def set_birthday(
    member: Member, born: date | None, clock: Clock, *, by_staff: bool = False
) -> None:
    """Set the birthday once; afterwards only staff (``by_staff=True``) may change it."""
    if member.birthday_locked and not by_staff:
        raise BirthdayLocked
    member.birthday = born
    member.birthday_md = born.month * 100 + born.day if born else None
    member.birthday_locked = born is not None
    member.updated_at = clock.now()


def set_locale(member: Member, locale: str, clock: Clock) -> None:
    """Switch the member's language (``zh`` or ``en``); raises InputProblem("locale")."""
    if locale not in LOCALES:
        raise InputProblem("locale")
    member.locale = locale
    member.updated_at = clock.now()


def set_timezone(member: Member, zone: str, clock: Clock) -> None:
    """Set the member's IANA timezone; raises InputProblem("timezone") for an unknown name."""
    if not is_valid_zone(zone):
        raise InputProblem("timezone")
    member.timezone = zone
    member.updated_at = clock.now()


@dataclass(frozen=True, slots=True)
class RegistrationAnswers:
    name: str
    phone: str
    birthday: date | None
    interests: list[str]
    marketing: bool


async def complete_registration(
    session: AsyncSession, clock: Clock, member: Member, answers: RegistrationAnswers
) -> Member:
    """Turn a registering member into an active one with the answers of the registration flow.

    Marketing consent is written here, not when it was asked: an unfinished registration never
    receives marketing.
    """
    if member.profile_consent_at is None:
        raise InputProblem("no_consent")
    now = clock.now()
    member.name = answers.name
    member.phone = answers.phone
    if answers.birthday is not None and not member.birthday_locked:
        set_birthday(member, answers.birthday, clock)
    member.status = MemberStatus.ACTIVE
    # A member from the shop's old list keeps the day they joined the shop.
    member.registered_at = member.registered_at or now
    member.updated_at = now
    await set_interests(session, member, answers.interests)
    # The "no" is recorded too: proof of what the member chose, and when.
    await set_consent(
        session, clock, member, ConsentKind.MARKETING, answers.marketing, "registration"
    )
    await session.flush()
    return member


# ------------------------------------------------------------------ imported customers

# A contact share carries the country code; an old customer list often does not.
PHONE_SUFFIX_MIN_DIGITS = 7


async def find_imported(session: AsyncSession, phone: str) -> Member | None:
    """The one imported member (not yet in Telegram) whose phone is ``phone`` (``+<digits>``).

    A number stored with its country code must match exactly; one stored without it matches
    the end of the shared number (``13800138000`` in ``+8613800138000``). Two candidates are
    no match: a person is never given somebody else's points.
    """
    digits = phone.lstrip("+")
    base = select(Member).where(
        Member.status == MemberStatus.IMPORTED,
        Member.telegram_id.is_(None),
        Member.deleted_at.is_(None),
    )
    found = list(
        await session.scalars(base.where(Member.phone.in_((digits, f"+{digits}"))).limit(2))
    )
    if not found:
        found = list(
            await session.scalars(
                base.where(
                    Member.phone.not_like("+%"),
                    func.length(Member.phone) >= PHONE_SUFFIX_MIN_DIGITS,
                    literal(digits).like(literal("%") + Member.phone),
                ).limit(2)
            )
        )
    return found[0] if len(found) == 1 else None


async def claim_imported(
    session: AsyncSession, clock: Clock, member: Member, phone: str
) -> Member | None:
    """A registering Telegram user shared ``phone`` as their own contact: when it is an
    imported customer's, that customer's row becomes theirs and is returned (with its
    points, purchases, tier and consent records); the half-registered row is merged into it
    and removed. None when no imported customer has that phone.

    Whatever already points at the half-registered row (its consent records, a conversation,
    a purchase rung up before the contact step) is moved to the imported row, found through
    the schema's foreign keys so that tables added later move too.
    """
    if member.status != MemberStatus.REGISTERING:
        return None
    imported = await find_imported(session, phone)
    if imported is None:
        return None
    now = clock.now()
    await _move_references(session, member.id, imported.id)
    moved_purchases = (member.purchase_count or 0) > 0
    imported.points_balance = (imported.points_balance or 0) + (member.points_balance or 0)
    if moved_purchases:
        _merge_purchase_facts(imported, member)
    telegram = (member.telegram_id, member.chat_id, member.username)
    member.telegram_id = None
    await session.flush()
    imported.telegram_id, imported.chat_id, imported.username = telegram
    imported.locale = member.locale
    imported.profile_consent_at = member.profile_consent_at
    imported.name = imported.name or member.name
    # Still "imported" (counted, never messaged) until the registration completes.
    imported.updated_at = now
    await session.delete(member)
    await session.flush()
    return imported


async def _move_references(session: AsyncSession, old_id: int, new_id: int) -> None:
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if table.name == Member.__tablename__ or not any(
                fk.column.table.name == Member.__tablename__ for fk in column.foreign_keys
            ):
                continue
            if column.primary_key:
                # One row per member (interests, value scores): the imported row's stand.
                await session.execute(delete(table).where(column == old_id))
            else:
                await session.execute(
                    update(table).where(column == old_id).values({column.name: new_id})
                )
    await session.execute(
        update(Member).where(Member.referrer_id == old_id).values(referrer_id=new_id)
    )


def _merge_purchase_facts(target: Member, other: Member) -> None:
    firsts = [d for d in (target.first_purchase_at, other.first_purchase_at) if d is not None]
    lasts = [d for d in (target.last_purchase_at, other.last_purchase_at) if d is not None]
    target.purchase_count = (target.purchase_count or 0) + (other.purchase_count or 0)
    target.total_spent_minor = (target.total_spent_minor or 0) + (other.total_spent_minor or 0)
    target.spend_12m_minor = (target.spend_12m_minor or 0) + (other.spend_12m_minor or 0)
    target.first_purchase_at = min(firsts) if firsts else None
    target.last_purchase_at = max(lasts) if lasts else None
    if target.purchase_count > 1 and target.first_purchase_at and target.last_purchase_at:
        span = target.last_purchase_at - target.first_purchase_at
        target.avg_gap_days = span.total_seconds() / 86_400 / (target.purchase_count - 1)


def parse_iso_date(value: str | None) -> date | None:
    """A date kept as ISO text in conversation state, back as a date (None stays None)."""
    return date.fromisoformat(value) if value else None
