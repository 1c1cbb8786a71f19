"""What /broadcast and /offer share: step callbacks, cancelling, offer buttons, the launch path.

The launch path: create, audit, commit, watch the progress.

``start_campaign`` stores the campaign and its audit entry in the update's unit of work (a
scheduled broadcast stops there). ``launch_now`` also posts the progress message, commits so
the launch (in its own sessions) sees the campaign, and hands it to the care layer's
``CampaignWatchers``, which this module wires into the dispatcher's start-up and shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.offers import OfferLine
from care.campaigns.schedule import BROADCAST, CampaignError, DeliverySpread, create_campaign
from care.campaigns.supervision import CampaignWatchers, ProgressView
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.loyalty.offers import describe_offer
from care.segments.audience import Audience
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.flows import CDStep
from storage.enums import StaffRole
from storage.models import Campaign

log = logging.getLogger(__name__)

WATCHERS = "campaign_watchers"


class _FlowCancel:
    """Calling a console flow off, by its Cancel button or by /cancel, with the flow's own word."""

    def __init__(self, text_key: str) -> None:
        self.text_key = text_key

    async def on_button(self, callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
        await fresh_flow(state)
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.edit_text(t(self.text_key))

    async def on_command(self, message: Message, state: FSMContext, t: Translator) -> None:
        await fresh_flow(state)
        await message.answer(t(self.text_key))


def flow_router(
    name: str,
    cd: type[CDStep],
    flow: type[StatesGroup],
    cancelled: str,
    *,
    cancel_button_anywhere: bool = False,
) -> Router:
    """The router of an admin-only console flow, in private chats, with its way out.

    /cancel in any step and the flow's Cancel button end it with the ``cancelled`` text;
    ``cancel_button_anywhere``: the button works even on a message from an older run.
    """
    router = Router(name=name)
    router.message.filter(F.chat.type == ChatType.PRIVATE, MinRole(StaffRole.ADMIN))
    router.callback_query.filter(MinRole(StaffRole.ADMIN))
    cancel = _FlowCancel(cancelled)
    router.message.register(cancel.on_command, Command("cancel"), StateFilter(flow))
    in_flow = () if cancel_button_anywhere else (StateFilter(flow),)
    router.callback_query.register(cancel.on_button, cd.on("cancel"), *in_flow)
    return router


def add_offer_buttons(
    builder: InlineKeyboardBuilder, cd: type[CDStep], t: Translator, lines: Sequence[OfferLine]
) -> None:
    """One ``offer`` button per offer, named with what it gives."""
    for line in lines:
        label = t.plain(
            "broadcast.offer_button", title=line.offer.title, offer=describe_offer(line.offer, t)
        )
        cd.add(builder, label, "offer", str(line.offer.id))


@dataclass(frozen=True, slots=True)
class AuditNote:
    """How the launch is written in the audit log."""

    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CampaignDraft:
    """What staff assembled in the flow, ready to become a campaign."""

    audience: Audience
    template: str = ""
    template_zh: str | None = None
    template_en: str | None = None
    kind: str = BROADCAST
    notify: bool = True
    name: str | None = None
    photo_file_id: str | None = None
    offer_id: int | None = None


def counted(t: Translator, key: str, n: int, **values: Any) -> str:
    """The text of ``key_one`` or ``key_other`` by ``n`` (English needs both; Chinese has the
    same text under both keys)."""
    return t(f"{key}_one" if n == 1 else f"{key}_other", n=n, **values)


def local_when(t: Translator, when: datetime) -> str:
    """A wall-clock date and time as people write it: "3月3日 09:00", "Mar 3, 09:00"."""
    return t.plain(
        "content.date_time",
        month=t.plain(f"content.month.m{when.month}"),
        day=when.day,
        time=when.strftime("%H:%M"),
    )


def spread_text(t: Translator, config: CareConfig, spread: DeliverySpread) -> str:
    """When members will actually receive it: the most common local time, quiet hours if they
    hold it, and how many members in other zones get it at other times."""
    if spread.local is None:
        return ""
    when = local_when(t, spread.local)
    if spread.held:
        text = counted(
            t,
            "content.spread_held",
            spread.members,
            when=when,
            start=config.quiet_start.strftime("%H:%M"),
            end=config.quiet_end.strftime("%H:%M"),
        )
    else:
        text = counted(t, "content.spread_at", spread.members, when=when)
    if spread.others:
        text += "\n" + counted(t, "content.spread_others", spread.others)
    return text


async def fresh_flow(state: FSMContext) -> None:
    """Forget any half-finished console flow (a no-op when there is none)."""
    if await state.get_state() is not None or await state.get_data():
        await state.clear()


async def start_campaign(
    staff: StaffContext,
    draft: CampaignDraft,
    note: Callable[[Campaign], AuditNote],
    *,
    chat_id: int,
    scheduled_at: datetime | None = None,
    progress_message_id: int | None = None,
) -> Campaign:
    """Store the campaign and its audit entry; raises ``CampaignError`` for an empty audience."""
    campaign = await create_campaign(
        staff.session,
        staff.clock,
        audience=draft.audience,
        template=draft.template,
        template_zh=draft.template_zh,
        template_en=draft.template_en,
        name=draft.name,
        kind=draft.kind,
        notify=draft.notify,
        created_by=staff.user_id,
        locale=staff.locale,
        photo_file_id=draft.photo_file_id,
        offer_id=draft.offer_id,
        scheduled_at=scheduled_at,
        progress_chat_id=chat_id,
        progress_message_id=progress_message_id,
    )
    entry = note(campaign)
    await staff.audit(entry.action, entry.target, entry.details)
    return campaign


async def launch_now(
    message: Message,
    staff: StaffContext,
    draft: CampaignDraft,
    note: Callable[[Campaign], AuditNote],
    *,
    session_factory: async_sessionmaker[AsyncSession],
    watchers: CampaignWatchers,
) -> Campaign | None:
    """Start the campaign now with a live progress message in ``message``'s chat.

    None when the audience turned out empty (the progress message then says so).
    """
    progress = await message.answer(staff.t("campaign.progress_starting"))
    try:
        campaign = await start_campaign(
            staff, draft, note, chat_id=progress.chat.id, progress_message_id=progress.message_id
        )
    except CampaignError:
        await progress.edit_text(staff.t("broadcast.empty_audience"))
        return None
    # The launch runs outside this update, in its own sessions: it must see the campaign.
    await staff.session.commit()
    assert message.bot is not None
    watchers.start(
        session_factory,
        staff.config,
        staff.clock,
        campaign_id=campaign.id,
        locale=staff.locale,
        show=progress_view(message.bot, progress.chat.id, progress.message_id),
    )
    return campaign


def progress_view(bot: Bot, chat_id: int, message_id: int) -> ProgressView:
    """Show a campaign's progress by editing one staff message; Telegram's refusals are logged."""

    async def show(text: str) -> None:
        try:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                log.warning("cannot edit progress message %s: %s", message_id, exc.message)
        except TelegramAPIError as exc:
            log.warning("cannot edit progress message %s: %s", message_id, exc.message)

    return show


async def _on_startup(dispatcher: Dispatcher) -> None:
    dispatcher.workflow_data.setdefault(WATCHERS, CampaignWatchers())


async def _on_shutdown(dispatcher: Dispatcher) -> None:
    watchers = dispatcher.workflow_data.get(WATCHERS)
    if isinstance(watchers, CampaignWatchers):
        await watchers.cancel_all()


def supervise_campaigns(router: Router) -> None:
    """One ``CampaignWatchers`` per dispatcher, as ``campaign_watchers`` in handler data."""
    router.startup.register(_on_startup)
    router.shutdown.register(_on_shutdown)
