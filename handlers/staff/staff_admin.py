"""/staff: the console's help, and who is staff (list, add, remove, or forward a message)."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageOriginHiddenUser,
    MessageOriginUser,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, translator
from care.staff.profiles import staff_labels
from care.staff.roles import (
    StaffChange,
    StaffError,
    add_staff,
    allows,
    can_grant,
    list_staff,
    remove_staff,
)
from handlers.middlewares import after_commit
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import local_date
from handlers.staff.keyboards import CDStaffLang, CDStaffRole, role_choice
from storage.enums import StaffRole

GRANTABLE = (StaffRole.ADMIN, StaffRole.CASHIER)
NAMES_KEY = "staff_candidate_names"
# The "/" menu a staff member sees: the shop's commands, then the console's for their role.
STAFF_MENU: tuple[tuple[StaffRole, str], ...] = (
    (StaffRole.CASHIER, "staff"),
    (StaffRole.CASHIER, "member"),
    (StaffRole.CASHIER, "purchase"),
    (StaffRole.CASHIER, "redeem"),
    (StaffRole.CASHIER, "void"),
    (StaffRole.CASHIER, "refund"),
    (StaffRole.CASHIER, "inbox"),
    (StaffRole.CASHIER, "lang"),
    (StaffRole.ADMIN, "stats"),
    (StaffRole.ADMIN, "broadcast"),
    (StaffRole.ADMIN, "offer"),
    (StaffRole.ADMIN, "export"),
    (StaffRole.ADMIN, "birthday"),
    (StaffRole.ADMIN, "adjust"),
    (StaffRole.ADMIN, "reward_list"),
    (StaffRole.ADMIN, "replies"),
    (StaffRole.OWNER, "audit"),
)
log = logging.getLogger(__name__)


def role_name(t: Translator, role: StaffRole | str) -> str:
    return t.plain(f"roles.{role}")


def parse_user_id(text: str) -> int | None:
    return int(text) if text.isdigit() and 0 < len(text) <= 15 else None


async def _display_name(
    session: AsyncSession, t: Translator, user_id: int, name: str | None
) -> str:
    """ "Li Lei (@lilei)": the name a forward just showed, else what the rows know of them."""
    if name:
        return name
    return (await staff_labels(session, t, [user_id]))[user_id]


async def cmd_staff(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t, role = staff.t, staff.role
    args = (command.args or "").split()
    action = args[0].lower() if args else ""
    if action not in {"list", "add", "remove"}:
        text = (
            t("roles.help", role=role_name(t, role))
            + "\n"
            + t("rewards.help_cashier", minutes=staff.config.void_window_minutes)
        )
        if allows(role, StaffRole.ADMIN):
            text += "\n" + t("roles.help_admin") + "\n" + t("rewards.help_admin")
        if allows(role, StaffRole.OWNER):
            text += "\n" + t("roles.help_owner")
        text += "\n" + t("staff_language.help_lang")
        language = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(
                        text=t.plain("staff_language.lang_button"),
                        callback_data=CDStaffLang().pack(),
                    )
                ]
            ]
        )
        await message.answer(text, reply_markup=language)
        return
    if not allows(role, StaffRole.ADMIN):
        await message.answer(t("roles.admin_only"))
        return
    if action == "list":
        await message.answer(await render_staff_list(staff.session, staff.config, t))
    elif action == "add":
        await _add_by_id(message, args[1:], staff)
    else:
        await _remove_by_id(message, args[1:], staff)


async def render_staff_list(session: AsyncSession, config: CareConfig, t: Translator) -> str:
    staff = await list_staff(session, config)
    names = await staff_labels(session, t, [person.telegram_id for person in staff])
    lines = [t("roles.list_title", count=len(staff))]
    for person in staff:
        line = t(
            "roles.list_line",
            name=names[person.telegram_id],
            user_id=person.telegram_id,
            role=role_name(t, person.role),
        )
        if person.created_at is not None:
            line += t("roles.list_since", date=local_date(person.created_at, config, t.locale))
        lines.append(line)
    return "\n".join(lines)


async def _add_by_id(message: Message, args: list[str], staff: StaffContext) -> None:
    t = staff.t
    if not args or len(args) > 2:
        await message.answer(t("roles.usage_add"))
        return
    user_id = parse_user_id(args[0])
    if user_id is None:
        await message.answer(t("roles.bad_user_id", value=args[0][:32]))
        return
    if len(args) == 1:
        await _offer_roles(message, staff, user_id, None)
        return
    try:
        role = StaffRole(args[1].lower())
    except ValueError:
        await message.answer(t("roles.bad_role", value=args[1][:32]))
        return
    await message.answer(await _apply_role(staff, user_id=user_id, role=role, bot=message.bot))


async def _remove_by_id(message: Message, args: list[str], staff: StaffContext) -> None:
    t = staff.t
    if len(args) != 1:
        await message.answer(t("roles.usage_remove"))
        return
    user_id = parse_user_id(args[0])
    if user_id is None:
        await message.answer(t("roles.bad_user_id", value=args[0][:32]))
        return
    try:
        previous = await remove_staff(
            staff.session,
            staff.config,
            staff.clock,
            actor_telegram_id=staff.user_id,
            telegram_id=user_id,
        )
    except StaffError as exc:
        await message.answer(t(f"roles.err_{exc.reason}", user_id=user_id))
        return
    await message.answer(t("roles.removed", user_id=user_id, role=role_name(t, previous)))
    if message.bot is not None:
        after_commit(partial(set_staff_menu, message.bot, user_id, None))


async def _offer_roles(
    message: Message, staff: StaffContext, user_id: int, name: str | None
) -> None:
    t = staff.t
    grantable = [role for role in GRANTABLE if can_grant(staff.role, role)]
    await message.answer(
        t(
            "roles.choose_role",
            name=await _display_name(staff.session, t, user_id, name),
            user_id=user_id,
        ),
        reply_markup=role_choice(t, user_id, grantable),
    )


async def _apply_role(
    staff: StaffContext,
    *,
    user_id: int,
    role: StaffRole,
    name: str | None = None,
    username: str | None = None,
    language_code: str | None = None,
    bot: Bot | None = None,
) -> str:
    t = staff.t
    try:
        change = await add_staff(
            staff.session,
            staff.config,
            staff.clock,
            actor_telegram_id=staff.user_id,
            telegram_id=user_id,
            role=role,
            name=name,
            username=username,
            language_code=language_code,
        )
    except StaffError as exc:
        return t(f"roles.err_{exc.reason}", user_id=user_id)
    if change.changed and bot is not None:
        # Cosmetic: after the commit, so a failing menu call cannot undo the role.
        after_commit(partial(set_staff_menu, bot, user_id, change.role))
    return describe_change(t, change, await _display_name(staff.session, t, user_id, None))


def describe_change(t: Translator, change: StaffChange, name: str) -> str:
    values = {"name": name, "user_id": change.telegram_id, "role": role_name(t, change.role)}
    if not change.changed:
        return t("roles.unchanged", **values)
    if change.previous_role is None:
        return t("roles.added", **values)
    return t("roles.changed", previous=role_name(t, change.previous_role), **values)


async def set_staff_menu(bot: Bot, user_id: int, role: StaffRole | None) -> None:
    """Show a staff member their console commands in the "/" menu (or take them away)."""
    scope = BotCommandScopeChat(chat_id=user_id)
    try:
        for language in (*LOCALES, None):
            if role is None:
                await bot.delete_my_commands(scope=scope, language_code=language)
                continue
            t = translator(language or "")
            shop = await bot.get_my_commands(
                scope=BotCommandScopeDefault(), language_code=language
            )
            console = [
                BotCommand(command=command, description=t.plain(f"roles.menu.{command}"))
                for minimum, command in STAFF_MENU
                if allows(role, minimum)
            ]
            await bot.set_my_commands([*shop, *console], scope=scope, language_code=language)
    except TelegramAPIError as exc:  # e.g. someone who never opened the chat with the bot
        log.info("could not set the command menu of %s: %s", user_id, exc)


async def on_forwarded(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    origin = message.forward_origin
    if isinstance(origin, MessageOriginHiddenUser):
        await message.answer(t("roles.hidden_forward"))
        return
    assert isinstance(origin, MessageOriginUser)  # the filter lets only these two through
    person = origin.sender_user
    if person.is_bot:
        await message.answer(t("roles.err_not_staff", user_id=person.id))
        return
    # Callback data carries ids only; what the forward showed of the person (name, @username,
    # language when Telegram tells it) waits here for the choice.
    data = await state.get_data()
    names = dict(data.get(NAMES_KEY) or {})
    names[str(person.id)] = [person.full_name[:128], person.username, person.language_code]
    await state.update_data({NAMES_KEY: dict(list(names.items())[-10:])})
    await _offer_roles(message, staff, person.id, person.full_name)


async def on_role_chosen(
    callback: CallbackQuery, callback_data: CDStaffRole, state: FSMContext, staff: StaffContext
) -> None:
    t = staff.t
    if callback_data.role == "-":
        text = t("roles.cancelled")
    else:
        try:
            role = StaffRole(callback_data.role)
        except ValueError:
            await callback.answer()
            return
        names = (await state.get_data()).get(NAMES_KEY) or {}
        seen = names.get(str(callback_data.user_id))
        name, username, language = seen if isinstance(seen, list) else (seen, None, None)
        text = await _apply_role(
            staff,
            user_id=callback_data.user_id,
            role=role,
            name=name,
            username=username,
            language_code=language,
            bot=callback.bot,
        )
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=None)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_staff, Command("staff"))
    router.message.register(
        on_forwarded,
        MinRole(StaffRole.ADMIN),
        StateFilter(None),
        F.forward_origin.type.in_({"user", "hidden_user"}),
    )
    router.callback_query.register(on_role_chosen, MinRole(StaffRole.ADMIN), CDStaffRole.filter())

    menu_tasks: set[asyncio.Task[None]] = set()

    async def sync_menus(
        bot: Bot, config: CareConfig, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        async def _sync() -> None:
            async with session_factory() as session:
                staff = await list_staff(session, config)
            for person in staff:
                await set_staff_menu(bot, person.telegram_id, person.role)

        # In the background: start-up should not wait on one API call per staff member.
        task = asyncio.create_task(_sync(), name="staff-menus")
        menu_tasks.add(task)
        task.add_done_callback(menu_tasks.discard)

    async def stop_menus() -> None:
        for task in list(menu_tasks):
            task.cancel()
        await asyncio.gather(*menu_tasks, return_exceptions=True)

    router.startup.register(sync_menus)
    router.shutdown.register(stop_menus)
    return router
