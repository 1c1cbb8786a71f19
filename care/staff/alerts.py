"""Alerts to staff: things a human should look at now (a detractor, a new complaint)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import translator
from care.messaging.outbox import enqueue
from care.staff.profiles import staff_locales
from care.staff.roles import staff_recipients
from storage.enums import MessageKind


async def alert_staff(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    key: str,
    text_key: str,
    about_member_id: int | None,
    buttons: Sequence[tuple[str, str]] = (),
    **values: Any,
) -> int:
    """Queue an ALERT to every owner and admin, and to the staff chat if one is configured.

    Each person reads it in their own staff language (``care.staff.profiles``); the staff chat
    reads the shop's default one. ``key`` names the occasion: alerting twice with the same key
    queues nothing new. Alerts ignore quiet hours — a detractor waits for nobody. Returns how
    many were queued.

    ``about_member_id`` is the member the alert quotes (their name, their words), or None when it
    quotes nobody: erasing that member deletes these alerts, whoever they were sent to.
    ``buttons`` go under the alert, one per row: (label key, callback data), each label in the
    reader's language.
    """
    recipients = await staff_recipients(session, config)
    locales = await staff_locales(session, config, recipients)
    targets = [(chat_id, locales[chat_id]) for chat_id in recipients]
    if config.staff_chat_id is not None and config.staff_chat_id not in recipients:
        targets.append((config.staff_chat_id, config.default_locale))
    queued = 0
    for chat_id, locale in targets:
        t = translator(locale)
        markup = (
            {
                "inline_keyboard": [
                    [{"text": t.plain(label, **values), "callback_data": data}]
                    for label, data in buttons
                ]
            }
            if buttons
            else None
        )
        message = await enqueue(
            session,
            clock,
            config,
            key=f"alert:{key}:{chat_id}",
            chat_id=chat_id,
            text=t(text_key, **values),
            kind=MessageKind.ALERT,
            about_member_id=about_member_id,
            reply_markup=markup,
            respect_quiet_hours=False,
        )
        queued += message is not None
    return queued
