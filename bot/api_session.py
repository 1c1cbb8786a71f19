"""The bot's session with the Bot API: aiogram's aiohttp session, two costs lighter per call.

**A JSON body.** aiogram's ``AiohttpSession`` sends every call as a form: each field prepared on
its own (a keyboard or an entity list written out as JSON text inside the form), then the whole
form percent-encoded, three bytes for each byte of a Chinese text. The Bot API takes the same
parameters as a JSON body, so a call that uploads nothing goes out as one: the same fields, made
by aiogram's own ``prepare_value`` (the bot's defaults, enums, dates, nested objects), left out
where aiogram's form leaves them out (no value, or an empty string), and written by orjson. A call
that uploads a file (a member card's first image) goes out as aiogram's multipart form, as
before. Answers and errors are read by aiogram's ``check_response`` either way, so every failure
is the exception aiogram raises.

**The answer's class kept.** aiogram parses each answer as ``Response[method.__returning__]``,
a pydantic generic class made on first use and kept by pydantic only in a weak cache. The garbage
collector freed it now and then and the next answer built it again: about 10 ms of CPU each
time, some twenty times in 3,000 updates (0.1 ms an update on average, in bursts). Holding each
one here makes it once per process.

Hand-written because aiogram has no switch for either; ``tests/test_api_session.py`` checks that
the JSON body carries what aiogram's form would.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import orjson
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import ClientError, ClientTimeout

JSON_HEADERS = {"Content-Type": "application/json"}


def json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class BotApiSession(AiohttpSession):
    """aiogram's aiohttp session, sending JSON bodies and keeping answer classes (see above)."""

    _kept: ClassVar[dict[Any, Any]] = {}

    def json_body(self, bot: Bot, method: TelegramMethod[Any]) -> bytes | None:
        """The call as a JSON body, or None when it uploads a file (then: a multipart form)."""
        files: dict[str, Any] = {}
        body: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is None or prepared == "":
                continue  # what aiogram's form leaves out (``if not value``: its values are text)
            body[key] = prepared
        return None if files else orjson.dumps(body)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        body = self.json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=body,
                headers=JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as response:
                raw_result = await response.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except ClientError as exc:
            raise TelegramNetworkError(
                method=method, message=f"{type(exc).__name__}: {exc}"
            ) from exc
        answer = self.check_response(
            bot=bot, method=method, status_code=response.status, content=raw_result
        )
        return cast(TelegramType, answer.result)

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._kept:
            self._kept[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
