"""Goodwill: staff give a member points or a coupon to make up for something, with a reason.

Service recovery ends with the customer hearing back and, where it fits, a gesture on the spot.
A grant is one unit of work: the points go through the ledger (``adjust_points``, the same path
as ``/adjust``) or a coupon is issued from a running offer, the audit log names who gave what to
whom and why, the member is told in their language (through the outbox, at once, like a staff
answer), and the grant appears as a note in the conversation it came from (or the member's
open one), so other staff see it in the thread. The member never sees the note itself.

Who may give: admins and owners (``may_grant``); a cashier answers conversations but does not
give value away, as with ``/adjust`` and ``/offer``. The note's text is a small fixed format
(``points:200`` or ``coupon:K7QX2M9P``, then the reason on the next line) that staff views
word in each reader's language; erasing the member empties it with the rest of the thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from care.campaigns.render import coupon_line
from care.conversations.surveys import score_scale
from care.core.audit import audit
from care.core.clock import Clock
from care.core.codes import display_code
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from care.loyalty.corrections import REASON_LIMIT, CorrectionError, adjust_points
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import describe_offer, offer_name, offer_usable
from care.loyalty.wording import points_text
from care.messaging.outbox import enqueue
from storage.enums import MemberStatus, MessageAuthor, MessageKind, PointsReason, StaffRole
from storage.models import Member, Offer, Ticket, TicketMessage
from storage.repos.loyalty import OfferRepo
from storage.repos.members import MemberRepo
from storage.repos.tickets import TicketRepo

# A gesture, not a purchase: enough for a generous apology, never a typo's fortune.
MAX_GOODWILL_POINTS = 5_000
OFFERS_SHOWN = 8
POINTS_RE = re.compile(r"^\+?(\d{1,3}(,\d{3})+|\d{1,9})$")

GoodwillProblem = Literal[
    "member_gone", "not_allowed", "bad_points", "no_reason", "reason_too_long", "offer_gone"
]


class GoodwillError(Exception):
    """A grant refused with nothing changed; ``reason`` names why for the caller to word."""

    def __init__(self, reason: GoodwillProblem) -> None:
        super().__init__(reason)
        self.reason: GoodwillProblem = reason


@dataclass(frozen=True, slots=True)
class GoodwillGrant:
    member: Member
    ticket_id: int | None  # the conversation the note went into, if any
    points: int = 0
    balance: int = 0
    coupon_code: str | None = None
    offer: Offer | None = None


@dataclass(frozen=True, slots=True)
class GoodwillNote:
    """A grant as a conversation shows it to staff."""

    kind: Literal["points", "coupon"]
    points: int
    code: str
    reason: str


def may_grant(role: StaffRole | None) -> bool:
    """Admins and owners give goodwill; cashiers do not give value away."""
    return role is not None and role.rank >= StaffRole.ADMIN.rank


def parse_points(text: str | None) -> int:
    """A number of points as staff type it ("200", "+200", "1,000"); raises
    ``GoodwillError("bad_points")`` for anything else, zero, or more than the cap."""
    typed = (text or "").strip().replace(" ", "")
    if not POINTS_RE.match(typed):
        raise GoodwillError("bad_points")
    points = int(typed.lstrip("+").replace(",", ""))
    if not 1 <= points <= MAX_GOODWILL_POINTS:
        raise GoodwillError("bad_points")
    return points


def check_reason(text: str | None) -> str:
    """The reason the member reads, on one line; raises ``no_reason`` / ``reason_too_long``."""
    reason = " ".join((text or "").split())
    if not reason:
        raise GoodwillError("no_reason")
    if len(reason) > REASON_LIMIT:
        raise GoodwillError("reason_too_long")
    return reason


async def grantable_member(session: AsyncSession, member_id: int) -> Member:
    """The member goodwill would go to; ``GoodwillError("member_gone")`` once they erased
    their data (checked before staff type anything)."""
    member = await MemberRepo(session).get(member_id)
    if member is None or member.status == MemberStatus.DELETED:
        raise GoodwillError("member_gone")
    return member


async def goodwill_offers(session: AsyncSession, clock: Clock) -> list[Offer]:
    """The running offers a goodwill coupon can come from, newest first."""
    return await OfferRepo(session).active(clock.now(), limit=OFFERS_SHOWN)


def offer_label(offer: Offer, locale: str) -> str:
    """An offer as staff pick it: its name and what it gives ("Sorry coupon · 10% off")."""
    t = translator(locale)
    gives = describe_offer(offer, t)
    name = offer_name(offer, locale)
    return f"{name} · {gives}" if name else gives


async def _conversation(
    session: AsyncSession, member: Member, ticket_id: int | None
) -> Ticket | None:
    """The conversation a grant belongs in: the one it was given from, else the open one."""
    repo = TicketRepo(session)
    if ticket_id:
        ticket = await repo.get(ticket_id)
        if ticket is not None and ticket.member_id == member.id:
            return ticket
    return await repo.latest_unclosed_for_member(member.id)


async def _note(
    session: AsyncSession, clock: Clock, ticket: Ticket | None, staff_telegram_id: int, text: str
) -> None:
    if ticket is None:
        return
    await TicketRepo(session).add_message(
        TicketMessage(
            ticket_id=ticket.id,
            author=MessageAuthor.NOTE,
            staff_telegram_id=staff_telegram_id,
            text=text,
            created_at=clock.now(),
        )
    )


def parse_note(text: str | None) -> GoodwillNote | None:
    """The grant a conversation note records, or None (an erased one has no text)."""
    head, _, reason = (text or "").partition("\n")
    kind, _, value = head.partition(":")
    if kind == "points" and value.isdigit():
        return GoodwillNote("points", int(value), "", reason)
    if kind == "coupon" and value:
        return GoodwillNote("coupon", 0, value, reason)
    return None


async def grant_points(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member_id: int,
    points: int,
    reason: str,
    staff_telegram_id: int,
    staff_role: StaffRole,
    ticket_id: int | None = None,
) -> GoodwillGrant:
    """Give ``points`` through the ledger with ``reason``; audited (``goodwill.points``), the
    member told with their new balance, the conversation noted.

    Raises ``GoodwillError`` (member_gone, not_allowed, bad_points, no_reason,
    reason_too_long) with nothing changed.
    """
    if not may_grant(staff_role):
        raise GoodwillError("not_allowed")
    member = await grantable_member(session, member_id)
    reason = check_reason(reason)
    if isinstance(points, bool) or not 1 <= points <= MAX_GOODWILL_POINTS:
        raise GoodwillError("bad_points")
    ticket = await _conversation(session, member, ticket_id)
    try:
        adjustment = await adjust_points(
            session, config, clock, member=member, delta=points, reason=reason,
            staff_telegram_id=staff_telegram_id, staff_role=staff_role,
            action="goodwill.points", ledger_reason=PointsReason.GOODWILL,
            limit=MAX_GOODWILL_POINTS, told_key="goodwill.told.points",
            details={"ticket_id": ticket.id if ticket is not None else None},
        )  # fmt: skip
    except CorrectionError as problem:
        raise GoodwillError(
            "no_reason" if problem.reason == "no_reason" else "bad_points"
        ) from None
    await _note(session, clock, ticket, staff_telegram_id, f"points:{points}\n{reason}")
    return GoodwillGrant(
        member, ticket.id if ticket is not None else None, points, adjustment.balance
    )


async def grant_coupon(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member_id: int,
    offer_id: int,
    reason: str,
    staff_telegram_id: int,
    staff_role: StaffRole,
    ticket_id: int | None = None,
) -> GoodwillGrant:
    """Issue the member a coupon from a running offer with ``reason``; audited
    (``goodwill.coupon``), the member told (code, what it gives, last day), the conversation
    noted.

    Raises ``GoodwillError`` (member_gone, not_allowed, offer_gone, no_reason,
    reason_too_long) with nothing changed.
    """
    if not may_grant(staff_role):
        raise GoodwillError("not_allowed")
    member = await grantable_member(session, member_id)
    reason = check_reason(reason)
    offer = await OfferRepo(session).get(offer_id)
    if offer is None or not offer_usable(offer, clock.now()):
        raise GoodwillError("offer_gone")
    ticket = await _conversation(session, member, ticket_id)
    coupon = await issue_coupon(
        session, clock, member_id=member.id, offer=offer, source="goodwill"
    )
    await audit(
        session, clock, actor_telegram_id=staff_telegram_id, actor_role=staff_role,
        action="goodwill.coupon", target=f"member:{member.id}",
        details={
            "offer_id": offer.id, "code": coupon.code, "reason": reason,
            "ticket_id": ticket.id if ticket is not None else None,
        },
    )  # fmt: skip
    reachable = member.status == MemberStatus.ACTIVE and member.blocked_at is None
    if reachable and member.chat_id is not None:  # as adjust_points tells of points
        t = translator(member.locale)
        line = coupon_line(t, offer, coupon.code, coupon.expires_at, member.timezone)
        text = t("goodwill.told.coupon", reason=reason, coupon=Markup(line))
        await enqueue(
            session, clock, config, key=f"goodwill:coupon:{coupon.id}", chat_id=member.chat_id,
            text=text, kind=MessageKind.SERVICE, member=member, rule="goodwill",
            respect_quiet_hours=False,
        )  # fmt: skip
    await _note(session, clock, ticket, staff_telegram_id, f"coupon:{coupon.code}\n{reason}")
    return GoodwillGrant(
        member,
        ticket.id if ticket is not None else None,
        coupon_code=coupon.code,
        offer=offer,
    )


# Audited actions of service recovery, worded by ``recovery_values`` in the audit log.
RECOVERY_ACTIONS = frozenset({"goodwill.points", "goodwill.coupon", "survey.followup"})


def recovery_values(
    t: Translator, details: dict[str, Any], offers: dict[int, str]
) -> dict[str, Any]:
    """What an audit sentence of a grant or a follow-up says: points, coupon, reason, score."""
    points, score, kind = details.get("delta"), details.get("score"), details.get("kind")
    offer_id, code = details.get("offer_id"), details.get("code")
    return {
        "points": points_text(t, points) if isinstance(points, int) else "",
        "reason": str(details.get("reason") or ""),
        "code": display_code(code) if isinstance(code, str) else "",
        "offer": offers.get(offer_id, "?") if isinstance(offer_id, int) else "?",
        "ticket": details.get("ticket_id") or "",
        "score": (
            t.plain("staff_language.score", score=score, scale=score_scale(kind))
            if isinstance(score, int) and isinstance(kind, str)
            else ""
        ),
    }
