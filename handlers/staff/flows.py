"""The console's multi-step campaign flows as data: their FSM states and callback data.

/broadcast and /offer keep their steps here, apart from what the steps do (broadcast.py,
offers.py), so both flows and the shared audience picker and launch path name them from one
place. Callback data carries ids and short codes only (Telegram's 64-byte limit).
"""

from __future__ import annotations

from aiogram import F
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.utils.keyboard import InlineKeyboardBuilder


class CDStep(CallbackData, prefix="step"):
    """A button of a console flow: ``action`` names it, ``value`` carries its choice.

    Each flow subclasses it with its own prefix; packed it reads ``<prefix>:<action>:<value>``.
    """

    action: str
    value: str = ""

    @classmethod
    def add(cls, builder: InlineKeyboardBuilder, text: str, action: str, value: str = "") -> None:
        builder.button(text=text, callback_data=cls(action=action, value=value))

    @classmethod
    def on(cls, action: str) -> CallbackQueryFilter:
        return cls.filter(F.action == action)


class CDBroadcast(CDStep, prefix="bc"):
    """``action``: kind, pick, back, skip_text, skip_photo, offer, send, send_yes, review,
    later, schedule_yes, edit, cancel, unschedule."""


class CDOffer(CDStep, prefix="of"):
    """``action``: new, issue, skip_name, kind, min0, days, create, offer, kind, pick, back, go,
    go_yes, cancel."""


class BroadcastFlow(StatesGroup):
    """audience → text (Chinese) → text_en → photo → coupon → confirm, or → schedule for a
    later time."""

    audience = State()
    text = State()
    text_en = State()
    photo = State()
    coupon = State()
    confirm = State()
    schedule = State()


class OfferFlow(StatesGroup):
    """Creating: title (the name in the staff's language) → name_other (in the other
    language, or skipped) → kind → value → min_spend → days → confirm. Issuing: pick_offer →
    audience → issue (then its confirmation)."""

    title = State()
    name_other = State()
    kind = State()
    value = State()
    min_spend = State()
    days = State()
    confirm = State()
    pick_offer = State()
    audience = State()
    issue = State()
