"""/feedback: complaint, suggestion, praise or question → a ticket; writing back into it.

The shopper picks the kind, then writes one message (text, or any attachment a conversation
takes; a caption is its text). Staff answers arrive through the outbox with a "write back"
button that leads here too — though simply writing joins the open ticket as well
(handlers/shopper/conversation.py). Every prompt here is remembered (handlers/shopper/prompts.py):
its Cancel disappears once the ticket is filed or the flow is left.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.tickets import (
    WRITE_BACK_PREFIX,
    TicketError,
    add_member_message,
    current_ticket,
    member_ticket,
    notify_staff,
    open_ticket,
    parse_write_back,
    write_back_ticket,
)
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, labels
from handlers.shopper.conversation import content_or_refusal
from handlers.shopper.menu import Registered
from handlers.shopper.prompts import leaves_flow, on_leave_flow, remember_prompt
from storage.enums import TicketKind
from storage.models import Member

# What /feedback offers; a "message" conversation opens by simply writing.
KINDS: tuple[TicketKind, ...] = tuple(k for k in TicketKind if k != TicketKind.MESSAGE)


class FeedbackStates(StatesGroup):
    text = State()
    write_back = State()


class CDFeedbackKind(CallbackData, prefix="fbk"):
    index: int


class CDFeedback(CallbackData, prefix="fb"):
    action: str  # "add" (to the open ticket), "new", "cancel", "stop" (a prompt's Cancel)
    ticket: int = 0


def kind_keyboard(t: Translator) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, kind in enumerate(KINDS):
        builder.button(
            text=t.plain(f"feedback.kind.{kind}"), callback_data=CDFeedbackKind(index=index)
        )
    builder.button(text=t.plain("feedback.cancel"), callback_data=CDFeedback(action="cancel"))
    builder.adjust(2, 2, 1)
    return builder.as_markup()


def cancel_keyboard(t: Translator) -> InlineKeyboardMarkup:
    """Under a prompt that waits for text: "stop" only works while the prompt still waits."""
    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain("feedback.cancel"), callback_data=CDFeedback(action="stop"))
    return builder.as_markup()


def open_ticket_keyboard(t: Translator, ticket_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t.plain("feedback.add_to_open", number=ticket_id),
        callback_data=CDFeedback(action="add", ticket=ticket_id),
    )
    builder.button(text=t.plain("feedback.start_new"), callback_data=CDFeedback(action="new"))
    builder.button(text=t.plain("feedback.cancel"), callback_data=CDFeedback(action="cancel"))
    builder.adjust(2, 1)
    return builder.as_markup()


async def _edit_or_send(
    callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None
) -> Message | None:
    if isinstance(callback.message, Message):
        edited = await callback.message.edit_text(text, reply_markup=markup)
        return edited if isinstance(edited, Message) else callback.message
    if callback.bot is not None:
        return await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
    return None


async def end_flow(state: FSMContext) -> None:
    """Forget the conversation state, if there is one.

    State lives in its own transaction: handlers change it before they write anything else,
    so the two never wait for each other's lock on SQLite.
    """
    if await state.get_state() is not None:
        await state.clear()


async def cmd_feedback(
    message: Message, state: FSMContext, session: AsyncSession, member: Member, t: Translator
) -> None:
    await end_flow(state)
    ticket = await current_ticket(session, member)
    if ticket is not None:
        await message.answer(
            t(_worded("feedback.has_open", ticket.kind), number=ticket.id),
            reply_markup=open_ticket_keyboard(t, ticket.id),
        )
        return
    await message.answer(t("feedback.choose_kind"), reply_markup=kind_keyboard(t))


async def on_kind(
    callback: CallbackQuery, callback_data: CDFeedbackKind, state: FSMContext, t: Translator
) -> None:
    if not 0 <= callback_data.index < len(KINDS):
        await callback.answer()
        return
    await state.set_state(FeedbackStates.text)
    await state.update_data(kind=KINDS[callback_data.index].value)
    prompt = await _edit_or_send(callback, t("feedback.ask_text"), cancel_keyboard(t))
    await remember_prompt(state, prompt)
    await callback.answer()


async def on_action(
    callback: CallbackQuery,
    callback_data: CDFeedback,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
) -> None:
    if callback_data.action == "new":
        await end_flow(state)
        await _edit_or_send(callback, t("feedback.choose_kind"), kind_keyboard(t))
    elif callback_data.action == "add":
        key, waiting = await _begin_write_back(state, session, member, callback_data.ticket)
        if waiting:
            text = t(key, number=callback_data.ticket)
            await remember_prompt(state, await _edit_or_send(callback, text, cancel_keyboard(t)))
        else:
            await _edit_or_send(callback, t(key, number=callback_data.ticket), None)
    elif callback_data.action == "stop" and await state.get_state() is None:
        # A Cancel left over from a flow that already ended (its ticket filed, or left for
        # a menu button): nothing to cancel, and the button goes.
        await _edit_or_send(callback, t("conversation.flow_over"), None)
    else:
        await end_flow(state)
        await _edit_or_send(callback, t("feedback.cancelled"), None)
    await callback.answer()


async def on_write_back_button(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
) -> None:
    ticket_id = parse_write_back(callback.data) or 0
    key, waiting = await _begin_write_back(state, session, member, ticket_id)
    if callback.bot is not None:
        # The staff answer stays as it is; the prompt comes as a new message below it.
        markup = cancel_keyboard(t) if waiting else None
        sent = await callback.bot.send_message(
            callback.from_user.id, t(key, number=ticket_id), reply_markup=markup
        )
        if waiting:
            await remember_prompt(state, sent)
    await callback.answer()


def _worded(key: str, kind: str) -> str:
    """The text for a ticket of ``kind``: a plain conversation is not called a "ticket" to a
    shopper who simply wrote to the shop."""
    return f"{key}_message" if kind == TicketKind.MESSAGE else key


async def _begin_write_back(
    state: FSMContext, session: AsyncSession, member: Member, ticket_id: int
) -> tuple[str, bool]:
    """Wait for the member's next message to their ticket: the prompt's key and True; else
    the key of the refusal and False."""
    # A closed ticket is written back to as well: the message continues the conversation.
    ticket = await member_ticket(session, member, ticket_id)
    if ticket is None:
        await end_flow(state)
        return "feedback.gone", False
    await state.set_state(FeedbackStates.write_back)
    await state.update_data(ticket=ticket.id)
    return _worded("feedback.write_back", ticket.kind), True


async def on_ticket_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    content = await content_or_refusal(message, t)
    if content is None:
        return
    kind = TicketKind((await state.get_data()).get("kind", TicketKind.QUESTION))
    await end_flow(state)
    text, media = content
    ticket = await open_ticket(session, clock, member=member, kind=kind, text=text, media=media)
    await notify_staff(
        session, clock, config, ticket=ticket, message=ticket.messages[0], member=member
    )
    await message.answer(
        t("feedback.opened", kind=t.plain(f"feedback.kind_name.{kind}"), number=ticket.id)
    )


async def on_write_back_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    content = await content_or_refusal(message, t)
    if content is None:
        return
    ticket_id = int((await state.get_data()).get("ticket", 0))
    await end_flow(state)
    ticket = await write_back_ticket(session, member, ticket_id)
    if ticket is None:
        await message.answer(t("feedback.gone"))
        return
    text, media = content
    try:
        added = await add_member_message(session, clock, ticket=ticket, text=text, media=media)
    except TicketError:
        await message.answer(t("feedback.closed", number=ticket.id))
        return
    await notify_staff(session, clock, config, ticket=ticket, message=added, member=member)
    await message.answer(t(_worded("feedback.added", ticket.kind), number=ticket.id))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.callback_query.filter(Registered())
    router.message.register(on_leave_flow, StateFilter(FeedbackStates), leaves_flow())
    router.message.register(cmd_feedback, Command("feedback"))
    router.message.register(cmd_feedback, F.text.in_(labels("menu.feedback")))
    router.message.register(on_ticket_text, FeedbackStates.text, ~leaves_flow())
    router.message.register(on_write_back_text, FeedbackStates.write_back, ~leaves_flow())
    router.callback_query.register(on_kind, CDFeedbackKind.filter())
    router.callback_query.register(on_action, CDFeedback.filter())
    router.callback_query.register(on_write_back_button, F.data.startswith(WRITE_BACK_PREFIX))
    return router
