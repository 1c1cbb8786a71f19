"""An in-memory Telegram Bot API server that the real aiogram ``Bot`` can talk to."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import mimetypes
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self

from aiohttp import ClientSession, ClientTimeout, web

from .state import (
    ApiError,
    CallbackAnswer,
    ChatState,
    FaultRule,
    RateLimiter,
    SentRecord,
    SimMessage,
    SimTopic,
    Stats,
    bad_request,
    too_many_requests,
)
from .tg_html import HTMLParseError, parse_html
from .users import SimGroup, SimUser

log = logging.getLogger(__name__)

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
_FILE_MEDIA_FIELDS: dict[str, dict[str, Any]] = {
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

    def __init__(self, token: str, bot: dict[str, Any], method: str, params: Params, files: Files):
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


class BotAPISimulator:
    """A fake Telegram Bot API on 127.0.0.1 plus simulated users.

    Use ``async with BotAPISimulator() as sim`` and point aiogram at ``sim.base_url``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keep_history: bool = True,
        valid_tokens: set[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.keep_history = keep_history
        self.valid_tokens = valid_tokens
        self.latency = 0.0
        self.method_latency: dict[str, float] = {}
        self.limiter: RateLimiter | None = None
        self.blocked: set[int] = set()
        self._runner: web.AppRunner | None = None
        self._bots: dict[str, dict[str, Any]] = {}
        self._bot_id = 1000000001
        self._closing = False
        self._handlers: dict[str, Handler] = self._build_handlers()
        self.reset()

    # ------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        """Forget chats, messages, updates, files and counters (limits/config stay)."""
        self._stop_webhook()
        if hasattr(self, "_update_event"):
            self._update_event.set()  # release pollers waiting on the old queue
        self.stats = Stats()
        self.sent_log: list[SentRecord] = []
        self._chats: dict[int, ChatState] = {}
        self._ranges: list[tuple[int, int]] = []
        self._range_count = 0
        self._users: dict[int, SimUser] = {}
        self._groups: dict[int, SimGroup] = {}
        self.blocked.clear()
        self._updates: deque[dict[str, Any]] = deque()
        self._update_types: deque[str] = deque()
        self._next_update_id = 700000001
        self._update_event = asyncio.Event()
        self._allowed_updates: frozenset[str] = _DEFAULT_ALLOWED
        self._global_message_id = 1
        self._files: dict[str, tuple[str, bytes]] = {}
        self._file_counter = 0
        self._callbacks: dict[str, SimUser] = {}
        self._callback_counter = 4382000000000
        self._faults: list[FaultRule] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}
        self.webhook: dict[str, Any] = {"url": ""}
        if self.limiter is not None:
            self.limiter = RateLimiter(self.limiter.global_rate, self.limiter.per_chat_rate)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_get("/_sim/stats", self._ctl_stats)
        app.router.add_post("/_sim/reset", self._ctl_reset)
        app.router.add_post("/_sim/chats", self._ctl_chats)
        app.router.add_post("/_sim/block", self._ctl_block)
        app.router.add_post("/_sim/limits", self._ctl_limits)
        app.router.add_post("/_sim/fail", self._ctl_fail)
        app.router.add_post("/_sim/latency", self._ctl_latency)
        app.router.add_post("/_sim/updates", self._ctl_updates)
        self._closing = False
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing = True
        self._wake_pollers()
        self._stop_webhook()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --------------------------------------------------------------- config
    def enforce_limits(self, global_rate: int = 30, per_chat_rate: float = 1.0) -> None:
        self.limiter = RateLimiter(global_rate, per_chat_rate)

    def disable_limits(self) -> None:
        self.limiter = None

    def fail_next(
        self,
        method: str | None = "sendMessage",
        status: int = 502,
        count: int = 1,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``count`` calls of ``method`` (None = any) with an error."""
        if description is None:
            text = _STATUS_TEXT.get(status, "Error")
            description = "Too Many Requests: retry after 1" if status == 429 else text
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.append(
            FaultRule(method.lower() if method else None, status, count, description, retry_after)
        )

    # ----------------------------------------------------------- the people
    def user(
        self,
        user_id: int = 111,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        birthdate: datetime.date | None = None,
        *,
        phone_number: str | None = None,
        is_premium: bool = False,
        started: bool = False,
    ) -> SimUser:
        """A user; the chat becomes known to the bot once they write (or ``started=True``)."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        payload = {"id": user_id, "type": "private", "first_name": first_name}
        if last_name:
            payload["last_name"] = last_name
        if username:
            payload["username"] = username
        chat = ChatState(user_id, payload)
        chat.members[user_id] = "member"
        user = SimUser(
            self,
            chat,
            user_id,
            first_name,
            last_name,
            username,
            language_code,
            birthdate,
            phone_number=phone_number,
            is_premium=is_premium,
        )
        self._users[user_id] = user
        if started:
            self.register_chat(user_id)
        return user

    def group(
        self,
        chat_id: int = -1001234567890,
        title: str = "Staff",
        is_forum: bool = False,
        username: str | None = None,
    ) -> SimGroup:
        existing = self._groups.get(chat_id)
        if existing is not None:
            return existing
        payload: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
        if is_forum:
            payload["is_forum"] = True
        if username:
            payload["username"] = username
        chat = ChatState(chat_id, payload)
        self._chats[chat_id] = chat
        group = SimGroup(self, chat)
        self._groups[chat_id] = group
        return group

    def register_chats(self, first_id: int, count: int) -> None:
        """Make ``count`` private chats from ``first_id`` known (users who pressed Start)."""
        if count > 0:
            self._ranges.append((first_id, first_id + count))
            self._range_count += count

    def register_chat(self, chat_id: int) -> ChatState:
        chat = self._chats.get(chat_id)
        if chat is None:
            user = self._users.get(chat_id)
            if user is not None:
                chat = user._chat
            else:
                payload = {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
                chat = ChatState(chat_id, payload)
            self._chats[chat_id] = chat
        return chat

    def chat_messages(self, chat_id: int) -> list[SimMessage]:
        chat = self._chats.get(chat_id)
        return list(chat.messages) if chat is not None else []

    def bot_user(self, token: str | None = None) -> dict[str, Any]:
        if token is not None:
            bot = self._bots.get(token)
            if bot is None:
                bot_id = int(token.split(":", 1)[0])
                bot = {
                    "id": bot_id,
                    "is_bot": True,
                    "first_name": "Carebot Test",
                    "username": "carebot_test_bot",
                }
                self._bots[token] = bot
                self._bot_id = bot_id
            return bot
        return {
            "id": self._bot_id,
            "is_bot": True,
            "first_name": "Carebot Test",
            "username": "carebot_test_bot",
        }

    # ---------------------------------------------- helpers used by SimUser
    def user_message(self, user: SimUser, chat: ChatState, fields: dict[str, Any]) -> SimMessage:
        message_id = chat.take_id()
        date = int(time.time())
        payload = {"message_id": message_id, "date": date, "chat": chat.payload}
        payload["from"] = user.payload
        payload.update(fields)
        msg = SimMessage(
            message_id,
            chat.id,
            date,
            payload,
            from_bot=False,
            text=fields.get("text"),
            caption=fields.get("caption"),
            message_thread_id=fields.get("message_thread_id"),
        )
        chat.by_id[message_id] = msg
        return msg

    async def push_update(self, kind: str, body: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        update = {"update_id": update_id, **body}
        self._updates.append(update)
        self._update_types.append(kind)
        self.stats.updates_queued += 1
        self._wake_pollers()
        await asyncio.sleep(0)
        return update_id

    def _wake_pollers(self) -> None:
        self._update_event.set()
        self._update_event = asyncio.Event()

    def register_file(self, content: bytes, filename: str) -> tuple[str, str]:
        self._file_counter += 1
        n = self._file_counter
        file_id = f"SIMFILE{n:08d}AgACAgIAAxkBAAI"
        if self.keep_history:
            self._files[file_id] = (filename, content)
        return file_id, f"SIMU{n:08d}"

    def register_photo(self, content: bytes) -> list[dict[str, Any]]:
        width, height = _png_size(content) or (800, 600)
        sizes = []
        for scale in (0.1, 1.0):
            file_id, unique_id = self.register_file(content, "photo.jpg")
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "width": max(1, int(width * scale)),
                    "height": max(1, int(height * scale)),
                    "file_size": len(content),
                }
            )
        return sizes

    def register_document(self, content: bytes, filename: str, mime_type: str) -> dict[str, Any]:
        file_id, unique_id = self.register_file(content, filename)
        return {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "file_name": filename,
            "mime_type": mime_type,
            "file_size": len(content),
        }

    def file_content(self, file_id: str) -> bytes | None:
        entry = self._files.get(file_id)
        return entry[1] if entry else None

    def new_callback(self, user: SimUser) -> str:
        self._callback_counter += 1
        callback_id = str(self._callback_counter)
        self._callbacks[callback_id] = user
        return callback_id

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    # --------------------------------------------------------- HTTP entry
    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        stats = self.stats
        stats.requests += 1
        if not _TOKEN_RE.match(token) or (
            self.valid_tokens is not None and token not in self.valid_tokens
        ):
            stats.errors_401 += 1
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"].lower()
        handler = self._handlers.get(method)
        if handler is None:
            stats.errors_404 += 1
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        stats.per_method[method] += 1
        delay = self.method_latency.get(method, self.latency)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            if self._faults:
                self._check_faults(method)
            params, files = await self._read_params(request)
            call = _Call(token, self.bot_user(token), method, params, files)
            result = await handler(call)
        except ApiError as err:
            self._count_error(err)
            return web.json_response(err.body(), status=err.code)
        return web.json_response({"ok": True, "result": result})

    def _count_error(self, err: ApiError) -> None:
        if err.code == 429:
            self.stats.errors_429 += 1
        elif err.code == 403:
            self.stats.errors_403 += 1
        elif err.code == 400:
            self.stats.errors_400 += 1

    def _check_faults(self, method: str) -> None:
        for rule in self._faults:
            if rule.method is None or rule.method == method:
                rule.count -= 1
                if rule.count <= 0:
                    self._faults.remove(rule)
                self.stats.injected += 1
                params = {"retry_after": rule.retry_after} if rule.retry_after else None
                raise ApiError(rule.status, rule.description, params)

    async def _read_params(self, request: web.Request) -> tuple[Params, Files]:
        params: Params = {}
        files: Files = {}
        for key, value in request.query.items():
            params[key] = _coerce(key, value)
        if request.method != "POST" or not request.can_read_body:
            return params, files
        ctype = request.content_type
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise bad_request("can't parse JSON body") from exc
            if isinstance(body, dict):
                params.update(body)
            return params, files
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    params[key] = _coerce(key, value)
                else:
                    files[key] = (value.filename or key, value.file.read())
        return params, files

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        file_id = path.rsplit("/", 1)[-1].split(".", 1)[0]
        entry = self._files.get(file_id)
        if entry is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        return web.Response(body=entry[1], content_type="application/octet-stream")

    # ------------------------------------------------------------- chats
    def _is_registered(self, chat_id: int) -> bool:
        if chat_id in self._chats:
            return True
        return any(lo <= chat_id < hi for lo, hi in self._ranges)

    def _target_chat(self, call: _Call) -> tuple[int, ChatState | None]:
        """Resolve chat_id for a send; raises 400 chat not found / 403 blocked."""
        raw = call.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        if isinstance(raw, str):
            if _INT_RE.match(raw):
                raw = int(raw)
            else:
                for gid, group in self._groups.items():
                    if f"@{group._chat.payload.get('username')}" == raw:
                        return gid, group._chat
                raise bad_request("chat not found")
        chat_id = int(raw)
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        chat = self._chats.get(chat_id)
        if chat is None:
            if not any(lo <= chat_id < hi for lo, hi in self._ranges):
                raise bad_request("chat not found")
            if self.keep_history:
                chat = self.register_chat(chat_id)
        return chat_id, chat

    def _chat_payload(self, chat_id: int, chat: ChatState | None) -> dict[str, Any]:
        if chat is not None:
            return chat.payload
        return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}

    def _existing_chat(self, call: _Call) -> tuple[int, ChatState | None]:
        raw = call.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        if not self._is_registered(chat_id):
            raise bad_request("chat not found")
        return chat_id, self._chats.get(chat_id)

    # ----------------------------------------------------------- content
    @staticmethod
    def _format(text: Any, parse_mode: Any, entities: Any, caption: bool) -> tuple[str, str]:
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

    @staticmethod
    def _markup(call: _Call) -> dict[str, Any] | None:
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

    def _thread(self, call: _Call, chat: ChatState | None) -> int | None:
        thread = call.get("message_thread_id")
        if thread is None or thread == "":
            return None
        thread = int(thread)
        if chat is not None and chat.is_forum and thread not in chat.topics and thread != 1:
            raise bad_request("message thread not found")
        return thread

    def _check_rate(self, chat_id: int) -> None:
        if self.limiter is not None:
            self.limiter.check(chat_id)

    def _emit(
        self,
        call: _Call,
        chat_id: int,
        chat: ChatState | None,
        fields: dict[str, Any],
        *,
        markup: dict[str, Any] | None = None,
        thread: int | None = None,
        text: str | None = None,
        html: str | None = None,
        caption: str | None = None,
        photo: bytes | None = None,
        document: tuple[str, bytes] | None = None,
        count_rate: bool = True,
    ) -> dict[str, Any]:
        """Create one bot message; counts it and records it when history is kept."""
        now = time.monotonic()
        if count_rate and self.limiter is not None:
            self.limiter.record(chat_id, now)
        if chat is not None:
            message_id = chat.take_id()
        else:
            message_id = self._global_message_id
            self._global_message_id += 1
        date = int(time.time())
        payload: dict[str, Any] = {
            "message_id": message_id,
            "date": date,
            "chat": self._chat_payload(chat_id, chat),
            "from": call.bot,
        }
        if thread is not None:
            payload["message_thread_id"] = thread
            if chat is not None and chat.is_forum:
                payload["is_topic_message"] = True
        payload.update(fields)
        if markup is not None and "inline_keyboard" in markup:
            payload["reply_markup"] = markup
        stats = self.stats
        stats.sent += 1
        stats.sent_per_method[call.method] += 1
        stats.sent_per_second[int(now)] += 1
        if self.keep_history:
            self.sent_log.append(SentRecord(now, chat_id, call.method))
            if chat is not None:
                msg = SimMessage(
                    message_id,
                    chat_id,
                    date,
                    payload,
                    method=call.method,
                    text=text,
                    html=html,
                    caption=caption,
                    parse_mode=call.get("parse_mode"),
                    photo=photo,
                    document=document,
                    reply_markup=markup,
                    message_thread_id=thread,
                    seq=chat.bump(),
                )
                chat.messages.append(msg)
                chat.by_id[message_id] = msg
                if markup is not None:
                    if "keyboard" in markup:
                        chat.reply_keyboard = msg
                    elif markup.get("remove_keyboard"):
                        chat.reply_keyboard = None
                chat.notify()
        return payload

    def _reply_to(self, call: _Call, chat: ChatState | None) -> dict[str, Any]:
        reply = _as_obj(call.get("reply_parameters"))
        reply_id = reply.get("message_id") if isinstance(reply, dict) else None
        reply_id = reply_id or call.get("reply_to_message_id")
        if not reply_id or chat is None or not self.keep_history:
            return {}
        target = chat.by_id.get(int(reply_id))
        if target is None or target.deleted:
            allow = call.get("allow_sending_without_reply") or (
                isinstance(reply, dict) and reply.get("allow_sending_without_reply")
            )
            if allow:
                return {}
            raise bad_request("message to be replied not found")
        nested = {k: v for k, v in target.payload.items() if k != "reply_to_message"}
        return {"reply_to_message": nested}

    def _input_file(self, call: _Call, field: str) -> tuple[str, bytes, str | None]:
        """Resolve a file argument: (filename, bytes, reused file_id or None)."""
        if field in call.files:
            name, content = call.files[field]
            return name, content, None
        value = call.get(field)
        if not value:
            raise bad_request(f"there is no {field} in the request")
        value = str(value)
        if value.startswith("attach://"):
            key = value[len("attach://") :]
            if key not in call.files:
                raise bad_request(f"wrong file identifier/HTTP URL specified ({field})")
            name, content = call.files[key]
            return name, content, None
        if value.startswith(("http://", "https://")):
            return value.rsplit("/", 1)[-1] or field, b"", None
        entry = self._files.get(value)
        if entry is None:
            if not self.keep_history and value.startswith("SIMFILE"):
                return field, b"", value
            raise bad_request("wrong file identifier/HTTP URL specified")
        return entry[0], entry[1], value

    # -------------------------------------------------------------- methods
    def _build_handlers(self) -> dict[str, Handler]:
        handlers: dict[str, Handler] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setchatmenubutton": self._set_chat_menu_button,
            "getchatmenubutton": self._get_chat_menu_button,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendmediagroup": self._send_media_group,
            "sendlocation": self._send_location,
            **{f"send{kind.replace('_', '')}": self._file_sender(kind) for kind in FILE_MEDIA},
            "sendchataction": self._send_chat_action,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getfile": self._get_file,
            "createforumtopic": self._create_forum_topic,
            "closeforumtopic": self._close_forum_topic,
            "reopenforumtopic": self._reopen_forum_topic,
            "copymessage": self._copy_message,
            "forwardmessage": self._forward_message,
        }
        for name in (
            "close",
            "logout",
            "setmydescription",
            "setmyshortdescription",
            "setmyname",
            "pinchatmessage",
            "unpinchatmessage",
            "setmessagereaction",
        ):
            handlers[name] = self._true
        return handlers

    async def _true(self, call: _Call) -> bool:
        return True

    async def _get_me(self, call: _Call) -> dict[str, Any]:
        return {
            **call.bot,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, call: _Call) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(call.get("offset") or 0)
        limit = max(1, min(100, int(call.get("limit") or 100)))
        timeout = max(0.0, float(call.get("timeout") or 0))
        allowed = _as_obj(call.get("allowed_updates"))
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else _DEFAULT_ALLOWED
        updates, types = self._updates, self._update_types
        if offset > 0:
            while updates and updates[0]["update_id"] < offset:
                updates.popleft()
                types.popleft()
        elif offset < 0:
            while len(updates) > -offset:
                updates.popleft()
                types.popleft()
        deadline = time.monotonic() + timeout
        while True:
            result = self._collect_updates(limit)
            remaining = deadline - time.monotonic()
            if result or remaining <= 0 or self._closing:
                self.stats.updates_delivered += len(result)
                return result
            event = self._update_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _collect_updates(self, limit: int) -> list[dict[str, Any]]:
        allowed = self._allowed_updates
        updates, types = self._updates, self._update_types
        # Updates of types the bot did not ask for are dropped, like Telegram does.
        while types and types[0] not in allowed:
            updates.popleft()
            types.popleft()
        result = []
        for update, kind in zip(updates, types, strict=True):
            if kind in allowed:
                result.append(update)
                if len(result) >= limit:
                    break
        return result

    async def _set_webhook(self, call: _Call) -> bool:
        url = call.get("url") or ""
        if url and not str(url).startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if call.get("drop_pending_updates"):
            self._updates.clear()
            self._update_types.clear()
        allowed = _as_obj(call.get("allowed_updates"))
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else _DEFAULT_ALLOWED
        self._stop_webhook()
        self.webhook = {"url": url, "secret_token": call.get("secret_token")}
        if url:
            self.webhook["task"] = asyncio.get_running_loop().create_task(
                self._webhook_loop(call.token, str(url), call.get("secret_token"))
            )
        return True

    async def _delete_webhook(self, call: _Call) -> bool:
        if call.get("drop_pending_updates"):
            self._updates.clear()
            self._update_types.clear()
        self._stop_webhook()
        self.webhook = {"url": ""}
        return True

    def _stop_webhook(self) -> None:
        webhook = getattr(self, "webhook", None) or {}
        task = webhook.pop("task", None)
        if task is not None:
            task.cancel()

    async def _webhook_loop(self, token: str, url: str, secret: str | None) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            while not self._closing:
                batch = self._collect_updates(1)
                if not batch:
                    await self._update_event.wait()
                    continue
                update = batch[0]
                try:
                    async with session.post(url, json=update, headers=headers) as resp:
                        ok = resp.status < 300
                        body = await resp.read() if ok else b""
                except Exception:  # retried like Telegram does
                    ok, body = False, b""
                if not ok:
                    await asyncio.sleep(0.2)
                    continue
                if self._updates and self._updates[0] is update:
                    self._updates.popleft()
                    self._update_types.popleft()
                self.stats.updates_delivered += 1
                await self._run_webhook_reply(token, body)

    async def _run_webhook_reply(self, token: str, body: bytes) -> None:
        """Execute a method returned in the webhook response body, like Telegram does."""
        if not body:
            return
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict) and isinstance(data.get("method"), str):
                handler = self._handlers.get(data["method"].lower())
                if handler is not None:
                    params = {k: v for k, v in data.items() if k != "method"}
                    call = _Call(token, self.bot_user(token), data["method"].lower(), params, {})
                    with contextlib.suppress(ApiError):
                        await handler(call)

    async def _get_webhook_info(self, call: _Call) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url") or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if info["url"]:
            info["max_connections"] = 40
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    @staticmethod
    def _scope_key(call: _Call) -> tuple[str, str]:
        scope = _as_obj(call.get("scope")) or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(call.get("language_code") or "")

    async def _set_my_commands(self, call: _Call) -> bool:
        commands = _as_obj(call.get("commands"))
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("commands must be a list of at most 100 BotCommand")
        for cmd in commands:
            if not _COMMAND_NAME_RE.match(str(cmd.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise bad_request("command description must be 1-256 characters long")
        self.commands[self._scope_key(call)] = commands
        return True

    async def _get_my_commands(self, call: _Call) -> list[dict[str, Any]]:
        return self.commands.get(self._scope_key(call), [])

    async def _delete_my_commands(self, call: _Call) -> bool:
        self.commands.pop(self._scope_key(call), None)
        return True

    async def _set_chat_menu_button(self, call: _Call) -> bool:
        chat_id = call.get("chat_id")
        button = _as_obj(call.get("menu_button")) or {"type": "default"}
        self.menu_buttons[int(chat_id) if chat_id not in (None, "") else None] = button
        return True

    async def _get_chat_menu_button(self, call: _Call) -> dict[str, Any]:
        chat_id = call.get("chat_id")
        key = int(chat_id) if chat_id not in (None, "") else None
        return self.menu_buttons.get(key) or self.menu_buttons.get(None) or {"type": "commands"}

    async def _send_message(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        visible, raw = self._format(
            call.get("text"), call.get("parse_mode"), call.get("entities"), caption=False
        )
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        fields: dict[str, Any] = {"text": visible}
        if "reply_parameters" in call.params or "reply_to_message_id" in call.params:
            fields.update(self._reply_to(call, chat))
        self._check_rate(chat_id)
        return self._emit(
            call, chat_id, chat, fields, markup=markup, thread=thread, text=visible, html=raw
        )

    def _caption(self, call: _Call) -> tuple[str | None, str | None]:
        caption = call.get("caption")
        if caption is None or caption == "":
            return None, None
        return self._format(
            caption, call.get("parse_mode"), call.get("caption_entities"), caption=True
        )

    async def _send_photo(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        _name, content, reused = self._input_file(call, "photo")
        caption, raw = self._caption(call)
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        fields: dict[str, Any] = {"photo": self._photo_sizes(content, reused)}
        if caption is not None:
            fields["caption"] = caption
        return self._emit(
            call,
            chat_id,
            chat,
            fields,
            markup=markup,
            thread=thread,
            caption=caption,
            html=raw,
            photo=content,
        )

    def _photo_sizes(self, content: bytes, reused: str | None) -> list[dict[str, Any]]:
        if reused is not None:
            width, height = _png_size(content) or (800, 600)
            return [
                {
                    "file_id": reused,
                    "file_unique_id": f"U{reused[-12:]}",
                    "width": width,
                    "height": height,
                    "file_size": len(content),
                }
            ]
        return self.register_photo(content)

    async def _send_document(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        name, content, reused = self._input_file(call, "document")
        caption, raw = self._caption(call)
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if reused is not None:
            document = {
                "file_id": reused,
                "file_unique_id": f"U{reused[-12:]}",
                "file_name": name,
                "mime_type": mime,
                "file_size": len(content),
            }
        else:
            document = self.register_document(content, name, mime)
        fields: dict[str, Any] = {"document": document}
        if caption is not None:
            fields["caption"] = caption
        return self._emit(
            call,
            chat_id,
            chat,
            fields,
            markup=markup,
            thread=thread,
            caption=caption,
            html=raw,
            document=(name, content),
        )

    def _file_sender(self, kind: str) -> Handler:
        """sendSticker, sendVoice, sendVideo …: one file (new or by file id), maybe a caption."""

        async def send(call: _Call) -> dict[str, Any]:
            chat_id, chat = self._target_chat(call)
            name, content, reused = self._input_file(call, kind)
            captionless = kind in ("sticker", "video_note")
            caption, raw = (None, None) if captionless else self._caption(call)
            markup = self._markup(call) if "reply_markup" in call.params else None
            thread = self._thread(call, chat)
            self._check_rate(chat_id)
            file_id = reused or self.register_file(content, name)[0]
            fields: dict[str, Any] = {
                kind: {
                    "file_id": file_id,
                    "file_unique_id": f"U{file_id[-12:]}",
                    **_FILE_MEDIA_FIELDS[kind],
                }
            }
            if caption is not None:
                fields["caption"] = caption
            return self._emit(
                call,
                chat_id,
                chat,
                fields,
                markup=markup,
                thread=thread,
                caption=caption,
                html=raw,
            )

        return send

    async def _send_media_group(self, call: _Call) -> list[dict[str, Any]]:
        chat_id, chat = self._target_chat(call)
        media = _as_obj(call.get("media"))
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise bad_request("media group must contain 2-10 items")
        thread = self._thread(call, chat)
        prepared = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "document", "video", "audio"):
                raise bad_request(f"unsupported media type {kind!r}")
            sub = _Call(call.token, call.bot, call.method, {"x": item.get("media")}, call.files)
            name, content, reused = self._input_file(sub, "x")
            caption = item.get("caption")
            visible, raw = (None, None)
            if caption:
                visible, raw = self._format(
                    caption, item.get("parse_mode"), item.get("caption_entities"), caption=True
                )
            prepared.append((kind, name, content, reused, visible, raw))
        self._check_rate(chat_id)
        group_id = str(10**17 + self.stats.sent)
        results = []
        for index, (kind, name, content, reused, visible, raw) in enumerate(prepared):
            fields: dict[str, Any] = {"media_group_id": group_id}
            if kind == "photo":
                fields["photo"] = self._photo_sizes(content, reused)
            else:
                mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
                fields["document"] = self.register_document(content, name, mime)
            if visible is not None:
                fields["caption"] = visible
            results.append(
                self._emit(
                    call,
                    chat_id,
                    chat,
                    fields,
                    thread=thread,
                    caption=visible,
                    html=raw,
                    photo=content if kind == "photo" else None,
                    document=(name, content) if kind != "photo" else None,
                    count_rate=index == 0,
                )
            )
        return results

    async def _send_location(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        location = {
            "latitude": float(call.require("latitude")),
            "longitude": float(call.require("longitude")),
        }
        return self._emit(
            call, chat_id, chat, {"location": location}, markup=markup, thread=thread
        )

    async def _send_chat_action(self, call: _Call) -> bool:
        self._target_chat(call)
        return True

    def _find_message(
        self, call: _Call, missing: str
    ) -> tuple[ChatState | None, SimMessage | None]:
        _chat_id, chat = self._existing_chat(call)
        message_id = call.get("message_id")
        if message_id in (None, ""):
            raise bad_request("message identifier is not specified")
        if not self.keep_history:
            return chat, None
        msg = chat.by_id.get(int(message_id)) if chat is not None else None
        if msg is None or msg.deleted:
            raise bad_request(missing)
        return chat, msg

    def _edited(self, chat: ChatState, msg: SimMessage) -> dict[str, Any]:
        msg.edited += 1
        msg.payload["edit_date"] = int(time.time())
        msg.seq = chat.bump()
        self.stats.edited += 1
        chat.notify()
        return msg.payload

    def _fake_edit(self, call: _Call, fields: dict[str, Any]) -> dict[str, Any]:
        chat_id = int(call.require("chat_id"))
        payload = {
            "message_id": int(call.require("message_id")),
            "date": int(time.time()),
            "edit_date": int(time.time()),
            "chat": self._chat_payload(chat_id, self._chats.get(chat_id)),
            "from": call.bot,
        }
        payload.update(fields)
        self.stats.edited += 1
        return payload

    async def _edit_message_text(self, call: _Call) -> dict[str, Any] | bool:
        visible, raw = self._format(
            call.get("text"), call.get("parse_mode"), call.get("entities"), caption=False
        )
        markup = self._markup(call) if "reply_markup" in call.params else None
        if call.get("inline_message_id"):
            return True
        chat, msg = self._find_message(call, "message to edit not found")
        if msg is None or chat is None:
            return self._fake_edit(call, {"text": visible})
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        if msg.text is None:
            raise bad_request("there is no text in the message to edit")
        if visible == msg.text and raw == msg.html and markup == msg.reply_markup:
            raise bad_request(_NOT_MODIFIED)
        msg.text, msg.html, msg.parse_mode = visible, raw, call.get("parse_mode")
        msg.payload["text"] = visible
        self._set_markup(msg, markup)
        return self._edited(chat, msg)

    @staticmethod
    def _set_markup(msg: SimMessage, markup: dict[str, Any] | None) -> None:
        msg.reply_markup = markup
        if markup is not None and "inline_keyboard" in markup:
            msg.payload["reply_markup"] = markup
        else:
            msg.payload.pop("reply_markup", None)

    async def _edit_message_caption(self, call: _Call) -> dict[str, Any] | bool:
        caption, raw = self._caption(call)
        markup = self._markup(call) if "reply_markup" in call.params else None
        if call.get("inline_message_id"):
            return True
        chat, msg = self._find_message(call, "message to edit not found")
        if msg is None or chat is None:
            return self._fake_edit(call, {"caption": caption or ""})
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        if msg.text is not None:
            raise bad_request("there is no caption in the message to edit")
        if caption == msg.caption and raw == msg.html and markup == msg.reply_markup:
            raise bad_request(_NOT_MODIFIED)
        msg.caption, msg.html = caption, raw
        if caption is None:
            msg.payload.pop("caption", None)
        else:
            msg.payload["caption"] = caption
        self._set_markup(msg, markup)
        return self._edited(chat, msg)

    async def _edit_message_reply_markup(self, call: _Call) -> dict[str, Any] | bool:
        markup = self._markup(call) if "reply_markup" in call.params else None
        if call.get("inline_message_id"):
            return True
        chat, msg = self._find_message(call, "message to edit not found")
        if msg is None or chat is None:
            return self._fake_edit(call, {"text": ""})
        if not msg.from_bot:
            raise bad_request("message can't be edited")
        if markup == msg.reply_markup:
            raise bad_request(_NOT_MODIFIED)
        self._set_markup(msg, markup)
        return self._edited(chat, msg)

    async def _delete_message(self, call: _Call) -> bool:
        chat, msg = self._find_message(call, "message to delete not found")
        self.stats.deleted += 1
        if msg is not None and chat is not None:
            msg.deleted = True
            msg.seq = chat.bump()
            if chat.reply_keyboard is msg:
                chat.reply_keyboard = None
            chat.notify()
        return True

    async def _answer_callback_query(self, call: _Call) -> bool:
        callback_id = str(call.require("callback_query_id"))
        user = self._callbacks.pop(callback_id, None)
        if user is None:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        text = call.get("text")
        if text is not None and len(str(text)) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        user.callback_answers.append(
            CallbackAnswer(
                callback_id,
                None if text is None else str(text),
                bool(call.get("show_alert")),
                call.get("url"),
            )
        )
        user._chat.notify()
        return True

    async def _get_chat(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._existing_chat(call)
        info: dict[str, Any] = {
            **self._chat_payload(chat_id, chat),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        user = self._users.get(chat_id)
        if user is not None and user.birthdate is not None:
            birthdate = {"day": user.birthdate.day, "month": user.birthdate.month}
            if user.birthdate.year > 1900:
                birthdate["year"] = user.birthdate.year
            info["birthdate"] = birthdate
        return info

    async def _get_chat_member(self, call: _Call) -> dict[str, Any]:
        _chat_id, chat = self._existing_chat(call)
        user_id = int(call.require("user_id"))
        user = self._users.get(user_id)
        if user_id == call.bot["id"]:
            return {"status": "member", "user": call.bot}
        if user is None:
            payload = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
        else:
            payload = user.payload
        status = chat.members.get(user_id, "left") if chat is not None else "member"
        member: dict[str, Any] = {"status": status, "user": payload}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "kicked":
            member["until_date"] = 0
        return member

    async def _get_file(self, call: _Call) -> dict[str, Any]:
        file_id = str(call.require("file_id"))
        entry = self._files.get(file_id)
        if entry is None:
            raise bad_request("invalid file_id")
        name, content = entry
        ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
        return {
            "file_id": file_id,
            "file_unique_id": f"U{file_id[-12:]}",
            "file_size": len(content),
            "file_path": f"files/{file_id}.{ext}",
        }

    def _forum(self, call: _Call) -> ChatState:
        _chat_id, chat = self._existing_chat(call)
        if chat is None or not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    def _topic(self, call: _Call) -> SimTopic:
        chat = self._forum(call)
        topic = chat.topics.get(int(call.require("message_thread_id")))
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        return topic

    async def _create_forum_topic(self, call: _Call) -> dict[str, Any]:
        chat = self._forum(call)
        name = str(call.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        icon_color = int(call.get("icon_color") or 7322096)
        topic = SimTopic(chat.take_id(), name, icon_color)
        chat.topics[topic.message_thread_id] = topic
        chat.notify()
        return {
            "message_thread_id": topic.message_thread_id,
            "name": name,
            "icon_color": icon_color,
        }

    async def _close_forum_topic(self, call: _Call) -> bool:
        topic = self._topic(call)
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        return True

    async def _reopen_forum_topic(self, call: _Call) -> bool:
        topic = self._topic(call)
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        return True

    def _source(self, call: _Call, missing: str) -> SimMessage | None:
        from_id = call.get("from_chat_id")
        if from_id in (None, ""):
            raise bad_request("from_chat_id is empty")
        from_chat = self._chats.get(int(from_id))
        if from_chat is None and not self._is_registered(int(from_id)):
            raise bad_request("chat not found")
        if not self.keep_history:
            return None
        msg = from_chat.by_id.get(int(call.require("message_id"))) if from_chat else None
        if msg is None or msg.deleted:
            raise bad_request(missing)
        return msg

    _CONTENT_KEYS = (
        "text",
        "entities",
        "caption",
        "caption_entities",
        "photo",
        "document",
        "sticker",
        "location",
        "contact",
    )

    def _copy_fields(self, source: SimMessage | None) -> dict[str, Any]:
        if source is None:
            return {"text": "(copied message)"}
        return {k: source.payload[k] for k in self._CONTENT_KEYS if k in source.payload}

    async def _copy_message(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        source = self._source(call, "message to copy not found")
        fields = self._copy_fields(source)
        caption, _raw = self._caption(call)
        if caption is not None:
            fields["caption"] = caption
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        payload = self._emit(
            call,
            chat_id,
            chat,
            fields,
            markup=markup,
            thread=thread,
            text=fields.get("text"),
            html=fields.get("text"),
            caption=fields.get("caption"),
            photo=source.photo if source else None,
            document=source.document if source else None,
        )
        return {"message_id": payload["message_id"]}

    async def _forward_message(self, call: _Call) -> dict[str, Any]:
        chat_id, chat = self._target_chat(call)
        source = self._source(call, "message to forward not found")
        fields = self._copy_fields(source)
        if source is not None:
            fields["forward_origin"] = {
                "type": "user",
                "date": source.date,
                "sender_user": source.payload["from"],
            }
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        return self._emit(
            call,
            chat_id,
            chat,
            fields,
            thread=thread,
            text=fields.get("text"),
            html=fields.get("text"),
            caption=fields.get("caption"),
            photo=source.photo if source else None,
            document=source.document if source else None,
        )

    # ------------------------------------------------------- control API
    async def _ctl_json(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            data = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return data

    def stats_dict(self) -> dict[str, Any]:
        data = self.stats.as_dict()
        data["registered_chats"] = self._range_count + len(self._chats)
        data["blocked"] = len(self.blocked)
        data["pending_updates"] = len(self._updates)
        data["limits"] = (
            {"global_rate": self.limiter.global_rate, "per_chat_rate": self.limiter.per_chat_rate}
            if self.limiter
            else None
        )
        return data

    async def _ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats_dict())

    async def _ctl_reset(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        if data.get("stats_only"):
            self.stats = Stats()
            self.sent_log = []
        else:
            self.reset()
        return web.json_response({"ok": True})

    async def _ctl_chats(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        self.register_chats(int(data["first_id"]), int(data["count"]))
        return web.json_response({"ok": True, "registered": self._range_count + len(self._chats)})

    async def _ctl_block(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        ids = list(data.get("ids", []))
        if "first_id" in data:
            first = int(data["first_id"])
            ids.extend(range(first, first + int(data.get("count", 1))))
        if data.get("unblock"):
            self.blocked.difference_update(ids)
        else:
            self.blocked.update(ids)
        return web.json_response({"ok": True, "blocked": len(self.blocked)})

    async def _ctl_limits(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        if data.get("enabled", True):
            self.enforce_limits(
                int(data.get("global_rate", 30)), float(data.get("per_chat_rate", 1.0))
            )
        else:
            self.disable_limits()
        return web.json_response({"ok": True})

    async def _ctl_fail(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        self.fail_next(
            data.get("method"),
            int(data.get("status", 502)),
            int(data.get("count", 1)),
            data.get("description"),
            data.get("retry_after"),
        )
        return web.json_response({"ok": True})

    async def _ctl_latency(self, request: web.Request) -> web.Response:
        data = await self._ctl_json(request)
        latency = float(data.get("latency", 0.0))
        method = data.get("method")
        if method:
            self.method_latency[str(method).lower()] = latency
        else:
            self.latency = latency
        return web.json_response({"ok": True})

    async def _ctl_updates(self, request: web.Request) -> web.Response:
        """Queue text messages from users: {"user_id": 5, "text": "/start"} or a range."""
        data = await self._ctl_json(request)
        text = str(data.get("text", "/start"))
        if "first_id" in data:
            first = int(data["first_id"])
            ids: list[int] = list(range(first, first + int(data.get("count", 1))))
        else:
            ids = [int(data["user_id"])]
        for user_id in ids:
            user = self.user(user_id, first_name=f"User{user_id}")
            await user.send(text)
        return web.json_response({"ok": True, "queued": len(ids)})


__all__ = ["SEND_METHODS", "BotAPISimulator", "too_many_requests"]
