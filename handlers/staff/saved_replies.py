"""/replies: the shop's saved replies (canned responses), managed by admins.

``/replies`` lists them with a delete button each; ``/replies add Title | text`` adds one.
Staff use them from a conversation in /inbox ("Saved replies") or with /saved in a forum topic.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from care.conversations.saved_replies import (
    TEXT_MAX,
    TITLE_MAX,
    SavedReplyError,
    add_saved_reply,
    delete_saved_reply,
    list_saved_replies,
)
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from handlers.staff.keyboards import CDSavedDelete, markup
from storage.enums import StaffRole


async def _list_view(staff: StaffContext) -> tuple[str, InlineKeyboardMarkup | None]:
    t = staff.t
    replies = await list_saved_replies(staff.session)
    if not replies:
        return t("conversation.saved.admin_empty"), None
    lines = [t("conversation.saved.admin_title", count=len(replies))]
    keyboard = []
    for reply in replies:
        lines.append(
            t("conversation.saved.admin_line", title=reply.title, text=excerpt(reply.text))
        )
        label = t.plain("conversation.saved.delete", title=reply.title)
        keyboard.append(
            [
                InlineKeyboardButton(
                    text=label, callback_data=CDSavedDelete(reply_id=reply.id).pack()
                )
            ]
        )
    lines.append(t("conversation.saved.admin_usage"))
    return "\n".join(lines), markup(keyboard)


async def cmd_replies(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    args = (command.args or "").strip()
    verb, _, rest = args.partition(" ")
    if not args:
        text, keyboard = await _list_view(staff)
        await message.answer(text, reply_markup=keyboard)
        return
    if verb.lower() != "add":
        await message.answer(t("conversation.saved.admin_usage"))
        return
    try:
        reply = await add_saved_reply(
            staff.session,
            staff.clock,
            raw=rest,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except SavedReplyError as exc:
        await message.answer(
            t(f"conversation.saved.error_{exc.reason}", title_max=TITLE_MAX, text_max=TEXT_MAX)
        )
        return
    await message.answer(t("conversation.saved.added", title=reply.title))


async def on_delete(
    callback: CallbackQuery, callback_data: CDSavedDelete, staff: StaffContext
) -> None:
    t = staff.t
    try:
        title = await delete_saved_reply(
            staff.session,
            staff.clock,
            reply_id=callback_data.reply_id,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except SavedReplyError:
        await callback.answer(t.plain("conversation.saved.gone"))
    else:
        await callback.answer(t.plain("conversation.saved.deleted", title=title))
    if isinstance(callback.message, Message):
        text, keyboard = await _list_view(staff)
        await callback.message.edit_text(text, reply_markup=keyboard)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    admin = MinRole(StaffRole.ADMIN)
    router.message.register(cmd_replies, Command("replies"), admin)
    router.callback_query.register(on_delete, CDSavedDelete.filter(), admin)
    return router
