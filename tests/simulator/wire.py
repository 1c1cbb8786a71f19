"""The Bot API's wire format as the simulator reads it: form coercion, one call, content rules.

Telegram's rules for what a text, caption or keyboard may be are checked here, so every method
family answers a bad request with the same error Telegram gives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from .state import bad_request
from .tg_html import HTMLParseError, parse_html

Params = dict[str, Any]
Files = dict[str, tuple[str, bytes]]
Handler = Callable[["_Call"], Awaitable[Any]]

_TOKEN_RE = re.compile(r"^(\d+):[A-Za-z0-9_-]+$")
_INT_RE = re.compile(r"^-?\d+$")
_FLOAT_RE = re.compile(r"^-?\d+\.\d*(?:[eE][-+]?\d+)?$")
_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")

# Form fields that always stay strings even when they look like numbers or JSON.
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "name",
        "title",
        "description",
        "short_description",
        "secret_token",
        "inline_message_id",
        "file_id",
        "photo",
        "document",
        "sticker",
        "video",
        "audio",
        "voice",
        "animation",
        "language_code",
        "icon_custom_emoji_id",
        "business_connection_id",
        "action",
        "emoji",
        "phone_number",
        "first_name",
        "last_name",
    }
)
SEND_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendmediagroup",
        "copymessage",
        "forwardmessage",
        "sendlocation",
        "sendsticker",
        "sendvoice",
        "sendvideo",
        "sendaudio",
        "sendanimation",
        "sendvideonote",
    }
)
# Media sent by file id alone, each under its own field; the first two take no caption.
FILE_MEDIA = ("sticker", "video_note", "voice", "video", "audio", "animation")
# The fields the Bot API always returns for each of them (besides the file ids).
FILE_MEDIA_FIELDS: dict[str, dict[str, Any]] = {
    "sticker": {
        "type": "regular", "width": 512, "height": 512, "is_animated": False, "is_video": False,
    },
    "video_note": {"length": 240, "duration": 3},
    "voice": {"duration": 3},
    "video": {"width": 640, "height": 360, "duration": 3},
    "audio": {"duration": 3},
    "animation": {"width": 320, "height": 240, "duration": 2},
}  # fmt: skip
_DEFAULT_ALLOWED = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)
_STATUS_TEXT = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    400: "Bad Request",
    403: "Forbidden",
    409: "Conflict",
}
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a content and reply markup of the current message"
)


def _coerce(key: str, value: str) -> Any:
    """Turn a form-data string back into the value the client serialised."""
    if key in _STRING_FIELDS or not value:
        return value
    first = value[0]
    if first in "{[" or value in ("true", "false", "null"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if _INT_RE.match(value):
        return int(value)
    if _FLOAT_RE.match(value):
        return float(value)
    return value


def _as_obj(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    return value


def _png_size(content: bytes) -> tuple[int, int] | None:
    if content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) >= 24:
        return int.from_bytes(content[16:20], "big"), int.from_bytes(content[20:24], "big")
    return None


class _Call:
    """One Bot API request being answered."""

    __slots__ = ("bot", "files", "method", "params", "token")

    def __init__(
        self, token: str, bot: dict[str, Any], method: str, params: Params, files: Files
    ) -> None:
        self.token = token
        self.bot = bot
        self.method = method
        self.params = params
        self.files = files

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def require(self, key: str) -> Any:
        value = self.params.get(key)
        if value is None or value == "":
            raise bad_request(f"{key} is empty" if key != "chat_id" else "chat_id is empty")
        return value


def format_content(text: Any, parse_mode: Any, entities: Any, caption: bool) -> tuple[str, str]:
    """Return (visible, raw) or raise the Telegram error for bad content."""
    raw = "" if text is None else str(text)
    visible = raw
    mode = (parse_mode or "").lower() if not entities else ""
    if mode == "html":
        try:
            visible = parse_html(raw)
        except HTMLParseError as exc:
            raise bad_request(str(exc)) from None
    elif mode in ("markdownv2", "markdown"):
        visible = re.sub(r"\\(.)", r"\1", raw)
        visible = re.sub(r"[*_~`|]", "", visible) if mode == "markdown" else visible
    if caption:
        if len(visible) > 1024:
            raise bad_request("message caption is too long")
    else:
        if not visible.strip():
            raise bad_request("message text is empty")
        if len(visible) > 4096:
            raise bad_request("message is too long")
    return visible, raw


def parse_markup(call: _Call) -> dict[str, Any] | None:
    markup = _as_obj(call.get("reply_markup"))
    if not markup:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    inline = markup.get("inline_keyboard")
    if inline is not None:
        for row in inline:
            for button in row:
                data = button.get("callback_data")
                if data is not None and (
                    not isinstance(data, str) or not 1 <= len(data.encode()) <= 64
                ):
                    raise bad_request("BUTTON_DATA_INVALID")
                if not button.get("text"):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                if len(button) < 2:
                    raise bad_request("text buttons are unallowed in the inline keyboard")
    keyboard = markup.get("keyboard")
    if keyboard is not None:
        for row in keyboard:
            for button in row:
                text = button if isinstance(button, str) else button.get("text")
                if not text:
                    raise bad_request("keyboard button text is empty")
    return markup
