"""Answering surveys: the buttons of an invitation, step by step, and the optional comment.

Invitations arrive through the outbox (care rules, a closed ticket); their buttons carry the
invitation id and nonce, and ``care.conversations.surveys`` decides whether a press counts. A
refusal is a
short notice on the button (answerCallbackQuery) and changes nothing. A photo or a sticker
sent instead of the comment, or a comment too long for a survey, is not lost: it joins the
shopper's conversation (handlers/shopper/conversation.py) and the comment is asked for again.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import (
    MAX_COMMENT_CHARS,
    SURVEY_PREFIX,
    SurveyOutcome,
    add_comment,
    answer,
    comment_markup,
    expectation_markup,
    parse_press,
)
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator
from handlers.shopper.conversation import Kept, keep_mid_flow, kept_note
from handlers.shopper.feedback import end_flow
from handlers.shopper.prompts import leaves_flow
from storage.enums import SurveyKind
from storage.models import Member

# NPS 9 and 10: the members most likely to bring a friend.
PROMOTER = 9


class SurveyStates(StatesGroup):
    comment = State()


def _thanks(t: Translator, outcome: SurveyOutcome) -> str:
    response = outcome.response
    if outcome.needs_followup:
        return t("survey.thanks_sorry")
    if response is not None and response.kind == SurveyKind.NPS and response.score >= PROMOTER:
        return t("survey.thanks_promoter")
    return t("survey.thanks")


async def _show(callback: CallbackQuery, text: str, markup: dict[str, object] | None) -> None:
    keyboard = InlineKeyboardMarkup.model_validate(markup) if markup else None
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=keyboard)
    elif callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=keyboard)


async def on_survey_answer(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    press = parse_press(callback.data)
    if press is None:
        await callback.answer(t("survey.refused.invalid"))
        return
    outcome = await answer(session, clock, config, member=member, press=press)
    if outcome.status != "ok" or outcome.invitation is None:
        await callback.answer(t(f"survey.refused.{outcome.status}"))
        return
    invitation = outcome.invitation
    if outcome.next_step == "expectation":
        await _show(
            callback, t("survey.ask_expectation"), expectation_markup(invitation, t.locale)
        )
    elif outcome.next_step == "comment":
        await _show(callback, t("survey.ask_comment"), comment_markup(invitation, t.locale))
    elif outcome.next_step == "await_comment":
        await state.set_state(SurveyStates.comment)
        await state.update_data(invitation=invitation.id, nonce=invitation.nonce)
        await _show(callback, t("survey.write_comment"), None)
    else:
        await _show(callback, _thanks(t, outcome), None)
    await callback.answer()


async def on_comment(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    text = (message.text or "").strip()
    if not text or len(text) > MAX_COMMENT_CHARS:
        kept: Kept = "refused"
        if member is not None:
            kept = await keep_mid_flow(message, state, session, member, clock, config)
        if kept == "quiet":
            return
        await message.answer(kept_note(t, kept, t("survey.comment_bad", limit=MAX_COMMENT_CHARS)))
        return
    data = await state.get_data()
    await end_flow(state)
    outcome = await add_comment(
        session,
        clock,
        config,
        member=member,
        invitation_id=int(data.get("invitation", 0)),
        nonce=str(data.get("nonce", "")),
        text=text,
    )
    if outcome.status != "ok":
        await message.answer(t(f"survey.refused.{outcome.status}"))
        return
    if outcome.needs_followup:
        await message.answer(t("survey.thanks_sorry"))
    else:
        await message.answer(t("survey.comment_thanks"))


async def on_leave_comment(message: Message, state: FSMContext) -> None:
    """A command or a menu press instead of the comment: no comment, and on with that."""
    await end_flow(state)
    raise SkipHandler


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_leave_comment, SurveyStates.comment, leaves_flow())
    router.message.register(on_comment, SurveyStates.comment, ~leaves_flow())
    router.callback_query.register(on_survey_answer, F.data.startswith(SURVEY_PREFIX))
    return router
