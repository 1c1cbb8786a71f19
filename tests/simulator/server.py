"""An in-memory Telegram Bot API server that the real aiogram ``Bot`` can talk to.

``BotAPISimulator`` is the HTTP front (routing, tokens, form parsing, injected latency) over the
method families: updates.py (getMe, polling, webhooks, commands), messages.py, media.py,
chats.py (callbacks, chat info, forum topics), control.py (``/_sim/…``), limits.py (rate limits
and error injection); base.py holds the state they share.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Self

from aiohttp import web

from .chats import ChatMethods
from .control import ControlAPI, add_control_routes
from .limits import LimitsMixin
from .media import MediaMethods
from .messages import MessageMethods
from .state import (
    ApiError,
    RateLimiter,
    Stats,
    bad_request,
    too_many_requests,
)
from .updates import UpdateMethods
from .wire import (
    _DEFAULT_ALLOWED,
    _TOKEN_RE,
    FILE_MEDIA,
    SEND_METHODS,
    Files,
    Handler,
    Params,
    _Call,
    _coerce,
)


class BotAPISimulator(
    UpdateMethods, MessageMethods, MediaMethods, ChatMethods, ControlAPI, LimitsMixin
):
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
        self.method_latency = {}
        self.limiter = None
        self.blocked = set()
        self._runner: web.AppRunner | None = None
        self._bots = {}
        self._bot_id = 1000000001
        self._closing = False
        self._handlers = self._build_handlers()
        self.reset()

    def reset(self) -> None:
        """Forget chats, messages, updates, files and counters (limits/config stay)."""
        self._stop_webhook()
        if hasattr(self, "_update_event"):
            self._update_event.set()  # release pollers waiting on the old queue
        self.stats = Stats()
        self.sent_log = []
        self._chats = {}
        self._ranges = []
        self._range_count = 0
        self._users = {}
        self._groups = {}
        self.blocked.clear()
        self._updates = deque()
        self._update_types = deque()
        self._next_update_id = 700000001
        self._update_event = asyncio.Event()
        self.before_update = None
        self._allowed_updates = _DEFAULT_ALLOWED
        self._global_message_id = 1
        self._files = {}
        self._file_counter = 0
        self._callbacks = {}
        self._callback_counter = 4382000000000
        self._faults = []
        self.commands = {}
        self.menu_buttons = {}
        self.webhook = {"url": ""}
        if self.limiter is not None:
            self.limiter = RateLimiter(self.limiter.global_rate, self.limiter.per_chat_rate)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        add_control_routes(app, self)
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
            for key, field in form.items():
                if isinstance(field, str):
                    params[key] = _coerce(key, field)
                elif isinstance(field, web.FileField):
                    files[key] = (field.filename or key, field.file.read())
                else:  # raw bytes without a file name
                    files[key] = (key, bytes(field))
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
            "sendphoto": self._file_sender("photo"),
            "senddocument": self._file_sender("document"),
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


__all__ = ["SEND_METHODS", "BotAPISimulator", "too_many_requests"]
