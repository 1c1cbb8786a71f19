"""/export: a table as a CSV or Excel document (admins and owners; audited)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, FSInputFile, Message

from care.console.exports import FORMATS, TABLES, Format, Table, export_to_file
from care.core.i18n import Translator
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, local_time
from handlers.staff.keyboards import CDExport, export_choice
from storage.enums import StaffRole


async def send_export(message: Message, staff: StaffContext, *, table: Table, fmt: Format) -> None:
    t, config, clock = staff.t, staff.config, staff.clock
    # The file lives only as long as the upload; nothing personal stays on disk.
    with tempfile.TemporaryDirectory(prefix="carebot-export-") as folder:
        export = await export_to_file(
            staff.session,
            config,
            clock,
            table=table,
            fmt=fmt,
            directory=Path(folder),
            actor_telegram_id=staff.user_id,
            actor_role=staff.role,
        )
        await message.answer_document(
            FSInputFile(export.path, filename=export.filename),
            caption=t(
                "export.caption",
                table=t.plain(f"export.table.{table}"),
                rows=t.count("export.rows", export.rows),
                when=local_time(clock.now(), config),
            ),
        )


async def cmd_export(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    words = (command.args or "").lower().split()
    if not words or len(words) > 2:
        await message.answer(t("export.usage"), reply_markup=export_choice(t, TABLES, FORMATS))
        return
    table = next((name for name in TABLES if name == words[0]), None)
    if table is None:
        await message.answer(t("export.bad_table", value=excerpt(words[0], 32)))
        return
    fmt = next((name for name in FORMATS if name == (words[1] if len(words) > 1 else "csv")), None)
    if fmt is None:
        await message.answer(t("export.bad_format", value=excerpt(words[1], 32)))
        return
    await send_export(message, staff, table=table, fmt=fmt)


async def on_export_chosen(
    callback: CallbackQuery, callback_data: CDExport, staff: StaffContext
) -> None:
    t = staff.t
    table = next((name for name in TABLES if name == callback_data.table), None)
    fmt = next((name for name in FORMATS if name == callback_data.fmt), None)
    if table is None or fmt is None or not isinstance(callback.message, Message):
        await callback.answer()
        return
    await callback.answer(t.plain("export.working", table=t.plain(f"export.table.{table}")))
    await send_export(callback.message, staff, table=table, fmt=fmt)


async def refuse_cashier(message: Message, t: Translator) -> None:
    await message.answer(t("export.admin_only"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    admin = MinRole(StaffRole.ADMIN)
    router.message.register(cmd_export, Command("export"), admin)
    router.message.register(refuse_cashier, Command("export"))
    router.callback_query.register(on_export_chosen, CDExport.filter(), admin)
    return router
