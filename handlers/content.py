"""What a Telegram message carries, as carebot keeps it: who sent it (a ``TelegramIdentity``
for a new member row), and its text and one attachment by file id (shared by the shopper's side
and the staff's answers)."""

from __future__ import annotations

from aiogram.types import Message

from care.conversations.tickets import Media
from care.members.membership import TelegramIdentity
from storage.enums import MediaKind

# Attachments carried by file id, in the order a message is checked (an animation also
# carries a ``document`` field, so it goes first).
_FILE_FIELDS: tuple[MediaKind, ...] = (
    MediaKind.ANIMATION,
    MediaKind.VIDEO,
    MediaKind.VOICE,
    MediaKind.AUDIO,
    MediaKind.VIDEO_NOTE,
    MediaKind.DOCUMENT,
    MediaKind.STICKER,
)


def sender_identity(message: Message) -> TelegramIdentity:
    """The sender of a private message, as a new member row records them."""
    user = message.from_user
    assert user is not None  # private chats always have a sender
    return TelegramIdentity(
        user_id=user.id,
        chat_id=message.chat.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def message_content(message: Message) -> tuple[str | None, Media | None] | None:
    """(text, attachment) a conversation can keep from ``message``; None when it cannot
    (a poll, a dice, a contact, a game …)."""
    if message.text is not None:
        return message.text, None
    group = message.media_group_id
    if message.photo:
        return message.caption, Media(MediaKind.PHOTO, message.photo[-1].file_id, group)
    for kind in _FILE_FIELDS:
        attachment = getattr(message, kind.value, None)
        if attachment is not None:
            return message.caption, Media(kind, attachment.file_id, group)
    if message.location is not None and message.poll is None:
        where = f"{message.location.latitude:.6f},{message.location.longitude:.6f}"
        return where, Media(MediaKind.LOCATION)
    return None
