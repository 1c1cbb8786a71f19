"""Callback data and inline keyboards of the staff console. Callback data carries ids only."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from care.core.i18n import Translator
from storage.enums import StaffRole


class CDStaffRole(CallbackData, prefix="sr"):
    """Give ``user_id`` the ``role`` (``admin`` | ``cashier``), or ``-`` to cancel."""

    user_id: int
    role: str


class CDMemberPick(CallbackData, prefix="mp"):
    member_id: int


class CDInboxPage(CallbackData, prefix="ib"):
    page: int


class CDTicket(CallbackData, prefix="tk"):
    """``action``: ``open`` | ``reply`` | ``take`` | ``close`` | ``reopen`` | ``photos`` (every
    attachment) | ``saved`` (the saved replies); ``page``: the inbox page."""

    action: str
    ticket_id: int
    page: int = 0


class CDSavedReply(CallbackData, prefix="cr"):
    """A saved reply for a conversation: ``action`` ``pick`` (preview) or ``send``."""

    action: str
    ticket_id: int
    reply_id: int
    page: int = 0


class CDSavedDelete(CallbackData, prefix="crd"):
    reply_id: int


class CDFollowUps(CallbackData, prefix="fl"):
    page: int = 0


class CDFollowedUp(CallbackData, prefix="fd"):
    response_id: int


class CDExport(CallbackData, prefix="ex"):
    table: str
    fmt: str


def rows(*buttons: InlineKeyboardButton | None) -> list[list[InlineKeyboardButton]]:
    return [[button] for button in buttons if button is not None]


def markup(keyboard: Sequence[Sequence[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(row) for row in keyboard if row])


def role_choice(
    t: Translator, user_id: int, grantable: Sequence[StaffRole]
) -> InlineKeyboardMarkup:
    labels = {StaffRole.ADMIN: "roles.button_admin", StaffRole.CASHIER: "roles.button_cashier"}
    choices = [
        InlineKeyboardButton(
            text=t.plain(labels[role]),
            callback_data=CDStaffRole(user_id=user_id, role=role.value).pack(),
        )
        for role in grantable
    ]
    cancel = InlineKeyboardButton(
        text=t.plain("roles.button_cancel"),
        callback_data=CDStaffRole(user_id=user_id, role="-").pack(),
    )
    return markup([choices, [cancel]])


def member_picker(choices: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    return markup(
        [
            [InlineKeyboardButton(text=label, callback_data=CDMemberPick(member_id=mid).pack())]
            for mid, label in choices
        ]
    )


def export_choice(
    t: Translator, tables: Sequence[str], formats: Sequence[str]
) -> InlineKeyboardMarkup:
    return markup(
        [
            [
                InlineKeyboardButton(
                    text=t.plain(
                        "export.button", table=t.plain(f"export.table.{table}"), fmt=fmt.upper()
                    ),
                    callback_data=CDExport(table=table, fmt=fmt).pack(),
                )
                for fmt in formats
            ]
            for table in tables
        ]
    )


class CDStaffLang(CallbackData, prefix="sl"):
    """Set the staff language to ``locale``; empty: show the choice."""

    locale: str = ""


class CDAudit(CallbackData, prefix="au"):
    """A page of the audit log; ``actor`` 0 and ``kind`` empty mean no filter."""

    page: int = 0
    actor: int = 0
    kind: str = ""


def language_choice(locales: Sequence[str], names: Sequence[str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=name, callback_data=CDStaffLang(locale=locale).pack())
                for locale, name in zip(locales, names, strict=True)
            ]
        ]
    )


class CDGoodwill(CallbackData, prefix="gw"):
    """A step of giving goodwill to ``member_id`` (from conversation ``ticket_id``, 0: from
    /member): ``action`` ``start`` | ``points`` | ``coupon`` | ``offer`` (``value``: the offer
    id) | ``give`` | ``cancel``."""

    action: str
    member_id: int
    ticket_id: int = 0
    value: int = 0
