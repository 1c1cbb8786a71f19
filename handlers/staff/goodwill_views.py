"""How service recovery shows in a conversation thread: the score it follows up, the goodwill
given in it (a note only staff see), and the goodwill button — text only, no I/O."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton

from care.console.goodwill import parse_note
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.loyalty.wording import points_text
from handlers.staff.formatting import excerpt, local_date, score_text
from handlers.staff.keyboards import CDGoodwill
from storage.models import SurveyResponse, TicketMessage


def followup_line(t: Translator, response: SurveyResponse, config: CareConfig) -> str:
    """ "Follow-up of a 2/5 rating (CSAT) on 2 Mar 2026": what the conversation is about."""
    kind_key = f"m360.survey_kind.{response.kind}"
    return t(
        "goodwill.followup.line",
        score=score_text(t, response.score, response.kind),
        kind=t.plain(kind_key) if t.has(kind_key) else response.kind,
        date=local_date(response.created_at, config, t.locale),
    )


def note_line(t: Translator, message: TicketMessage, when: str, staff: str) -> str:
    """A goodwill grant in the thread, in the reader's language."""
    note = parse_note(message.text)
    if note is None:  # the member erased their data: what was given and why went with it
        return t("goodwill.thread_note_erased", when=when, staff=staff)
    gift = (
        points_text(t, note.points)
        if note.kind == "points"
        else t.plain("goodwill.coupon_gift", code=note.code)
    )
    return t(
        "goodwill.thread_note", when=when, staff=staff, gift=gift, reason=excerpt(note.reason, 200)
    )


def goodwill_button(t: Translator, member_id: int, ticket_id: int = 0) -> InlineKeyboardButton:
    data = CDGoodwill(action="start", member_id=member_id, ticket_id=ticket_id).pack()
    return InlineKeyboardButton(text=t.plain("goodwill.button"), callback_data=data)
