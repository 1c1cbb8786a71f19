"""Surveys: CSAT with the expectation gap, NPS, and the rating of a closed ticket.

Every answer is bound to its invitation. The buttons carry the invitation id and a random
nonce; an answer counts only from the invited member, before the invitation expires, once.
The first answer claims the invitation with one conditional UPDATE, so a double tap or a
replayed button can never record twice. Low scores are raised to staff at once.

A member who switched surveys off still may answer an invitation already in their chat: the
switch stops new invitations, and answering is something they chose to do.

Callback data: ``sv:<invitation id>:<nonce>:<step>:<value>``, steps ``s`` (score),
``e`` (expectation), ``c`` (add a comment), ``k`` (skip the comment).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, NamedTuple, cast

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.staff.alerts import alert_staff
from storage.enums import Expectation, SurveyKind
from storage.models import Member, SurveyInvitation, SurveyResponse
from storage.repos.surveys import SurveyRepo
from storage.repos.tickets import TicketRepo

SURVEY_PREFIX = "sv:"
# The "write to the member" button under a low-score alert (handled by the staff console).
FOLLOWUP_PREFIX = "fu:"
MAX_COMMENT_CHARS = 1000
INVITATION_TTL = timedelta(days=7)

SCORE_RANGE: dict[str, range] = {
    SurveyKind.CSAT: range(1, 6),
    SurveyKind.TICKET: range(1, 6),
    SurveyKind.NPS: range(0, 11),
}
# The highest score that still needs a human: a detractor, an unhappy customer.
FOLLOWUP_AT_OR_BELOW: dict[str, int] = {
    SurveyKind.CSAT: 2,
    SurveyKind.TICKET: 2,
    SurveyKind.NPS: 6,
}


def followup_data(response_id: int) -> str:
    """Callback data of the button that opens the conversation following up a low score."""
    return f"{FOLLOWUP_PREFIX}{response_id}"


def parse_followup(data: str | None) -> int | None:
    if not data or not data.startswith(FOLLOWUP_PREFIX):
        return None
    tail = data.removeprefix(FOLLOWUP_PREFIX)
    return int(tail) if tail.isdigit() else None


def score_scale(kind: str) -> int:
    """The top of a survey's scale: 5 for CSAT and ticket ratings, 10 for NPS."""
    return SCORE_RANGE[kind].stop - 1


FIVE_POINT_FACES = ("😞", "🙁", "😐", "🙂", "😄")
EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation.WORSE,
    Expectation.AS_EXPECTED,
    Expectation.BETTER,
)

Step = Literal["s", "e", "c", "k"]
Status = Literal["ok", "invalid", "not_yours", "expired", "already_answered"]
NextStep = Literal["expectation", "comment", "await_comment", "done"]


@dataclass(frozen=True, slots=True)
class SurveyPress:
    """A pressed survey button, parsed from its callback data."""

    invitation_id: int
    nonce: str
    step: Step
    value: int


@dataclass(frozen=True, slots=True)
class SurveyOutcome:
    """What an answer did. ``status`` other than "ok" is a refusal that changed nothing."""

    status: Status
    invitation: SurveyInvitation | None = None
    response: SurveyResponse | None = None
    next_step: NextStep | None = None

    @property
    def needs_followup(self) -> bool:
        return self.response is not None and self.response.needs_followup


def _data(invitation: SurveyInvitation, step: Step, value: int = 0) -> str:
    return f"{SURVEY_PREFIX}{invitation.id}:{invitation.nonce}:{step}:{value}"


def parse_press(data: str | None) -> SurveyPress | None:
    """The survey button behind callback data, or None for anything malformed."""
    if not data or not data.startswith(SURVEY_PREFIX):
        return None
    parts = data.removeprefix(SURVEY_PREFIX).split(":")
    if len(parts) != 4:
        return None
    invitation_id, nonce, step, value = parts
    if not invitation_id.isdigit() or not value.isdigit() or step not in ("s", "e", "c", "k"):
        return None
    return SurveyPress(int(invitation_id), nonce, cast(Step, step), int(value))


class Invitee(NamedTuple):
    """Who is invited to a survey, and about which purchase or ticket."""

    member_id: int
    purchase_id: int | None = None
    ticket_id: int | None = None


async def create_invitation(
    session: AsyncSession,
    clock: Clock,
    *,
    member_id: int,
    kind: SurveyKind,
    purchase_id: int | None = None,
    ticket_id: int | None = None,
    ttl: timedelta = INVITATION_TTL,
) -> SurveyInvitation:
    """A fresh invitation with its own nonce; send it with ``invitation_text`` and
    ``invitation_markup``."""
    invitee = Invitee(member_id, purchase_id, ticket_id)
    (invitation,) = await create_invitations(
        session, clock, kind=kind, invitees=[invitee], ttl=ttl
    )
    return invitation


async def create_invitations(
    session: AsyncSession,
    clock: Clock,
    *,
    kind: SurveyKind,
    invitees: Sequence[Invitee],
    ttl: timedelta = INVITATION_TTL,
) -> list[SurveyInvitation]:
    """One fresh invitation per invitee, each with its own nonce, written in one flush (the
    ORM batches the INSERT); in the order of ``invitees``."""
    now = clock.now()
    invitations = [
        SurveyInvitation(
            member_id=invitee.member_id,
            kind=kind,
            nonce=secrets.token_urlsafe(9),
            purchase_id=invitee.purchase_id,
            ticket_id=invitee.ticket_id,
            created_at=now,
            expires_at=now + ttl,
        )
        for invitee in invitees
    ]
    return await SurveyRepo(session).add_invitations(invitations)


def invitation_text(invitation: SurveyInvitation, locale: str) -> str:
    """The first question of the survey, in the member's language (HTML)."""
    t = translator(locale)
    if invitation.kind == SurveyKind.TICKET:
        return t("survey.ticket.question", number=invitation.ticket_id or 0)
    return t(f"survey.{invitation.kind}.question")


def invitation_markup(invitation: SurveyInvitation, locale: str) -> dict[str, object]:
    """The answer buttons of the first question (Bot API inline keyboard).

    Scores are digits, with faces on the five-point scales: they read the same in every
    language, so ``locale`` does not change them today.
    """
    if invitation.kind == SurveyKind.NPS:
        rows = [
            [_key(str(score), _data(invitation, "s", score)) for score in range(0, 6)],
            [_key(str(score), _data(invitation, "s", score)) for score in range(6, 11)],
        ]
    else:
        rows = [
            [
                _key(f"{score} {FIVE_POINT_FACES[score - 1]}", _data(invitation, "s", score))
                for score in range(1, 6)
            ]
        ]
    return {"inline_keyboard": rows}


def expectation_markup(invitation: SurveyInvitation, locale: str) -> dict[str, object]:
    """Worse than expected / as expected / better than expected, one per row (long labels)."""
    t = translator(locale)
    return {
        "inline_keyboard": [
            [_key(t.plain(f"survey.expectation.{choice}"), _data(invitation, "e", index))]
            for index, choice in enumerate(EXPECTATIONS)
        ]
    }


def comment_markup(invitation: SurveyInvitation, locale: str) -> dict[str, object]:
    """The "tell us why" and "skip" buttons."""
    t = translator(locale)
    return {
        "inline_keyboard": [
            [
                _key(t.plain("survey.comment.add"), _data(invitation, "c")),
                _key(t.plain("survey.comment.skip"), _data(invitation, "k")),
            ]
        ]
    }


def _key(label: str, data: str) -> dict[str, str]:
    return {"text": label, "callback_data": data}


async def _bound_invitation(
    repo: SurveyRepo, member: Member | None, invitation_id: int, nonce: str
) -> tuple[Status, SurveyInvitation | None]:
    invitation = await repo.invitation(invitation_id)
    # Bytes: compare_digest refuses non-ASCII str, and forged data may carry anything.
    if invitation is None or not hmac.compare_digest(invitation.nonce.encode(), nonce.encode()):
        return "invalid", None
    if member is None or invitation.member_id != member.id:
        return "not_yours", None
    return "ok", invitation


async def answer(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    member: Member | None,
    press: SurveyPress,
) -> SurveyOutcome:
    """Apply one pressed survey button for ``member``; refusals change nothing.

    The score claims the invitation (once, before it expires) and records the response; a low
    score marks it ``needs_followup`` and alerts staff at once. The expectation (CSAT only) and
    the comment choice follow, each once, in that order.
    """
    repo = SurveyRepo(session)
    status, invitation = await _bound_invitation(repo, member, press.invitation_id, press.nonce)
    if invitation is None:
        return SurveyOutcome(status)
    assert member is not None  # _bound_invitation refuses strangers
    if press.step == "s":
        return await _record_score(session, clock, config, repo, member, invitation, press.value)
    response = await repo.response_for(invitation.id)
    if response is None:
        return SurveyOutcome("invalid")
    if press.step == "e":
        if (
            invitation.kind != SurveyKind.CSAT
            or press.value >= len(EXPECTATIONS)
            or response.expectation is not None
        ):
            return SurveyOutcome("already_answered")
        response.expectation = EXPECTATIONS[press.value]
        await session.flush()
        return SurveyOutcome("ok", invitation, response, "comment")
    waiting_for_expectation = invitation.kind == SurveyKind.CSAT and response.expectation is None
    if response.comment is not None or waiting_for_expectation:
        return SurveyOutcome("already_answered")
    if press.step == "k":
        # An empty comment records "declined": the comment buttons cannot be replayed later.
        response.comment = ""
        await session.flush()
        return SurveyOutcome("ok", invitation, response, "done")
    return SurveyOutcome("ok", invitation, response, "await_comment")


async def _record_score(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    repo: SurveyRepo,
    member: Member,
    invitation: SurveyInvitation,
    score: int,
) -> SurveyOutcome:
    if score not in SCORE_RANGE[invitation.kind]:
        return SurveyOutcome("invalid")
    now = clock.now()
    if invitation.answered_at is not None:
        return SurveyOutcome("already_answered")
    if invitation.expires_at <= now:
        return SurveyOutcome("expired")
    if not await repo.claim(invitation.id, now):
        return SurveyOutcome("already_answered")
    response = await repo.add_response(
        SurveyResponse(
            invitation_id=invitation.id,
            member_id=member.id,
            kind=invitation.kind,
            score=score,
            created_at=now,
            needs_followup=score <= FOLLOWUP_AT_OR_BELOW[invitation.kind],
        )
    )
    if invitation.kind == SurveyKind.TICKET and invitation.ticket_id is not None:
        ticket = await TicketRepo(session).get(invitation.ticket_id)
        if ticket is not None:
            ticket.handling_rating = score
            await session.flush()
    if response.needs_followup:
        await alert_staff(
            session,
            clock,
            config,
            key=f"survey:{response.id}",
            text_key=f"survey.alert.low_{invitation.kind}",
            buttons=[("goodwill.followup.write", followup_data(response.id))],
            score=score,
            about_member_id=member.id,
            name=member.name or member.member_code,
            code=member.member_code,
            number=invitation.ticket_id or 0,
        )
    next_step: NextStep = "expectation" if invitation.kind == SurveyKind.CSAT else "comment"
    return SurveyOutcome("ok", invitation, response, next_step)


async def add_comment(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    member: Member | None,
    invitation_id: int,
    nonce: str,
    text: str,
) -> SurveyOutcome:
    """Attach the "why?" comment to an answer, once. A comment on a low score goes to staff too.

    Raises ``ValueError`` for an empty comment or one over ``MAX_COMMENT_CHARS``.
    """
    text = text.strip()
    if not text or len(text) > MAX_COMMENT_CHARS:
        raise ValueError("a comment needs 1 to MAX_COMMENT_CHARS characters")
    repo = SurveyRepo(session)
    status, invitation = await _bound_invitation(repo, member, invitation_id, nonce)
    if invitation is None:
        return SurveyOutcome(status)
    assert member is not None
    response = await repo.response_for(invitation.id)
    if response is None or response.comment is not None:
        return SurveyOutcome("already_answered")
    response.comment = text
    await session.flush()
    if response.needs_followup:
        await alert_staff(
            session,
            clock,
            config,
            key=f"survey:{response.id}:comment",
            text_key="survey.alert.comment",
            buttons=[("goodwill.followup.write", followup_data(response.id))],
            about_member_id=member.id,
            name=member.name or member.member_code,
            code=member.member_code,
            score=response.score,
            scale=score_scale(response.kind),
            text=text,
        )
    return SurveyOutcome("ok", invitation, response, "done")


async def mark_followed_up(
    session: AsyncSession, clock: Clock, *, response_id: int, staff_telegram_id: int
) -> None:
    """Record that staff took care of a low score. The first follow-up is the one kept.

    Raises ``LookupError`` for an unknown response.
    """
    response = await SurveyRepo(session).response(response_id)
    if response is None:
        raise LookupError(f"no survey response {response_id}")
    if response.followed_up_at is None:
        response.followed_up_at = clock.now()
        response.followed_up_by = staff_telegram_id
        await session.flush()
