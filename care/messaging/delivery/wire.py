"""Text and photo messages on the wire as aiogram sends them, without its per-call models.

``bot.send_message`` builds and validates a pydantic ``SendMessage``, walks it field by field into
a form, and validates Telegram's answer into a full ``Message`` (chat, sender, entities …). The
delivery worker needs only the answer's ``message_id``, and at 1000 messages a second those
models were most of its CPU. ``LeanMethod`` works out once which form fields aiogram would send
for everything that does not change between messages (the bot's defaults: parse mode, link
previews, protect content …), then per message adds the chat, the text (or photo and caption) and
the keyboard, and posts the same urlencoded form through the bot's own aiohttp session (its
connection pool and headers). A successful answer is read for its ``message_id`` only; any other
answer goes through aiogram's own ``check_response``, so every error is the exception aiogram
raises (``TelegramRetryAfter``, ``TelegramForbiddenError`` …), as are network failures.

Only for a bot on aiogram's ``AiohttpSession`` (or the bot's own, ``bot.api_session``, built on
it) with no request middleware: anything else (a test's fake session, a middleware that must see
each call) goes through ``bot`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import SendMessage, SendPhoto, TelegramMethod
from aiogram.types import Message
from aiohttp import ClientError, ClientTimeout

JSON = {"Content-Type": "application/json"}
# Fields given per message; every other field is the same for each call of a method.
_PER_CALL = frozenset({"chat_id", "text", "photo", "caption", "reply_markup"})


def usable(bot: Bot) -> bool:
    """True when ``bot`` sends through aiogram's aiohttp session (or one built on it, as the
    bot's own is) with no middleware."""
    session = bot.session
    return isinstance(session, AiohttpSession) and len(session.middleware) == 0


class LeanMethod:
    """One Bot API method returning a ``Message`` (``sendMessage``, ``sendPhoto``)."""

    def __init__(
        self,
        bot: Bot,
        build: Callable[..., TelegramMethod[Message]],
        sample: dict[str, Any],
        request_timeout: float,
    ) -> None:
        session = bot.session
        assert isinstance(session, AiohttpSession)
        self.bot = bot
        self.session = session
        self.build = build
        self.extra = {key: value for key, value in sample.items() if key not in _PER_CALL}
        method = build(**sample)
        self.url = session.api.api_url(token=bot.token, method=method.__api_method__)
        # What aiogram's build_form_data would send for the fields that do not vary, as JSON
        # values (nested objects as objects, not as JSON text inside a form field).
        self.fixed: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            if key in _PER_CALL:
                continue
            prepared = session.prepare_value(value, bot=bot, files={}, _dumps_json=False)
            if prepared:
                self.fixed[key] = prepared
        self.timeout = ClientTimeout(total=request_timeout)

    def _body(self, fields: dict[str, Any]) -> bytes:
        body = dict(self.fixed)
        prepare = self.session.prepare_value
        for key, value in fields.items():
            if value is None:
                continue
            if not isinstance(value, str | int):
                value = prepare(value, bot=self.bot, files={}, _dumps_json=False)
            if value:
                body[key] = value
        return orjson.dumps(body)

    def method(self, fields: dict[str, Any]) -> TelegramMethod[Message]:
        """The aiogram method for these fields (aiogram's exceptions name the method)."""
        return self.build(**self.extra, **fields)

    async def call(self, **fields: Any) -> int:
        """Send; the new message's id, or the exception aiogram would raise."""
        body = self._body(fields)
        client = await self.session.create_session()
        try:
            async with client.post(
                self.url, data=body, headers=JSON, timeout=self.timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError as exc:
            raise TelegramNetworkError(
                method=self.method(fields), message="Request timeout error"
            ) from exc
        except ClientError as exc:
            raise TelegramNetworkError(
                method=self.method(fields), message=f"{type(exc).__name__}: {exc}"
            ) from exc
        message_id = _sent_message_id(status, raw)
        if message_id is not None:
            return message_id
        # Anything but a plain success: aiogram decides what it means (and raises).
        answer = self.session.check_response(
            bot=self.bot,
            method=self.method(fields),
            status_code=status,
            content=raw.decode("utf-8", "replace"),
        )
        result = answer.result
        assert isinstance(result, Message)
        return result.message_id


def _sent_message_id(status: int, raw: bytes) -> int | None:
    if not 200 <= status <= 226:
        return None
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        return None
    result = answer.get("result")
    message_id = result.get("message_id") if isinstance(result, dict) else None
    return message_id if type(message_id) is int else None


class LeanWire:
    """``sendMessage`` and ``sendPhoto`` for the delivery worker (see the module docstring)."""

    def __init__(self, bot: Bot, parse_mode: str, request_timeout: float) -> None:
        text = {"chat_id": 0, "text": "-", "parse_mode": parse_mode}
        photo = {"chat_id": 0, "photo": "-", "parse_mode": parse_mode}
        self.message = LeanMethod(bot, SendMessage, text, request_timeout)
        self.photo = LeanMethod(bot, SendPhoto, photo, request_timeout)


__all__ = ["LeanMethod", "LeanWire", "usable"]
