"""Survey invitations and the answers bound to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SurveyInvitation, SurveyResponse


class SurveyRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_invitations(self, invitations: list[SurveyInvitation]) -> list[SurveyInvitation]:
        self.session.add_all(invitations)
        await self.session.flush()
        return invitations

    async def invitation(self, invitation_id: int) -> SurveyInvitation | None:
        return await self.session.get(SurveyInvitation, invitation_id)

    async def claim(self, invitation_id: int, now: datetime) -> bool:
        """Mark an open, unexpired invitation answered; False when someone was first.

        One conditional UPDATE: of two presses racing for the same invitation exactly one
        sees a row change, on SQLite and PostgreSQL alike.
        """
        result = await self.session.execute(
            update(SurveyInvitation)
            .where(
                SurveyInvitation.id == invitation_id,
                SurveyInvitation.answered_at.is_(None),
                SurveyInvitation.expires_at > now,
            )
            .values(answered_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_response(self, response: SurveyResponse) -> SurveyResponse:
        self.session.add(response)
        await self.session.flush()
        return response

    async def response(self, response_id: int) -> SurveyResponse | None:
        return await self.session.get(SurveyResponse, response_id)

    async def response_for(self, invitation_id: int) -> SurveyResponse | None:
        return await self.session.scalar(
            select(SurveyResponse).where(SurveyResponse.invitation_id == invitation_id)
        )

    async def ticket_invited(self, ticket_id: int) -> bool:
        """Whether the shopper was already asked to rate this ticket."""
        found = await self.session.scalar(
            select(SurveyInvitation.id).where(SurveyInvitation.ticket_id == ticket_id).limit(1)
        )
        return found is not None
