"""Showing a conversation's attachments to staff: each by its Telegram file id and kind, in a
private chat or a forum topic (nothing is downloaded)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot

from care.conversations.tickets import CAPTIONLESS, Media
from storage.enums import MediaKind

CAPTION_MAX = 1024


def _coordinates(text: str | None) -> tuple[float, float] | None:
    try:
        lat, lon = (float(part) for part in (text or "").split(","))
    except ValueError:
        return None
    return lat, lon


async def send_attachment(
    bot: Bot,
    chat_id: int,
    caption: str,
    media: Media,
    *,
    raw_text: str | None = None,
    thread_id: int | None = None,
) -> None:
    """Send ``media`` with ``caption`` (HTML); a sticker, video note or location goes after the
    caption as a message of its own. ``raw_text`` is the stored text (a location's "lat,lon").
    An attachment erased with its member's data is shown as the caption alone."""
    where: dict[str, Any] = {"message_thread_id": thread_id} if thread_id else {}
    if media.kind in CAPTIONLESS or media.file_id is None:
        if caption:
            await bot.send_message(chat_id, caption, **where)
        if media.kind == MediaKind.LOCATION:
            point = _coordinates(raw_text)
            if point is not None:
                await bot.send_location(chat_id, point[0], point[1], **where)
        elif media.file_id is not None and media.kind == MediaKind.STICKER:
            await bot.send_sticker(chat_id, media.file_id, **where)
        elif media.file_id is not None:
            await bot.send_video_note(chat_id, media.file_id, **where)
        return
    where["caption"] = caption[:CAPTION_MAX] or None
    senders = {
        MediaKind.PHOTO: bot.send_photo,
        MediaKind.VIDEO: bot.send_video,
        MediaKind.ANIMATION: bot.send_animation,
        MediaKind.VOICE: bot.send_voice,
        MediaKind.AUDIO: bot.send_audio,
        MediaKind.DOCUMENT: bot.send_document,
    }
    await senders[media.kind](chat_id, media.file_id, **where)  # type: ignore[operator]
