"""The simulator's shared state and the steps every method family uses.

Who exists (users, groups, registered chat ranges), which chat a call targets, and how one bot
message is emitted, counted and recorded. The Bot API methods live in one mixin per family
(updates, messages, media, chats), the control API in control.py, limits and error injection
in limits.py; ``BotAPISimulator`` in server.py puts them together.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .state import (
    ApiError,
    ChatState,
    FaultRule,
    RateLimiter,
    SentRecord,
    SimMessage,
    Stats,
    bad_request,
)
from .users import SimGroup, SimUser
from .wire import (
    _INT_RE,
    Handler,
    _as_obj,
    _Call,
    _png_size,
    format_content,
    parse_markup,
)


class SimulatorBase:
    """State and helpers shared by every method family of the simulator."""

    # Set by BotAPISimulator.__init__ and reset(); declared here so every method family sees them.
    host: str
    port: int
    keep_history: bool
    valid_tokens: set[str] | None
    latency: float
    method_latency: dict[str, float]
    limiter: RateLimiter | None
    blocked: set[int]
    stats: Stats
    sent_log: list[SentRecord]
    commands: dict[tuple[str, str], list[dict[str, Any]]]
    menu_buttons: dict[int | None, dict[str, Any]]
    webhook: dict[str, Any]
    _handlers: dict[str, Handler]
    _bots: dict[str, dict[str, Any]]
    _bot_id: int
    _closing: bool
    _chats: dict[int, ChatState]
    _ranges: list[tuple[int, int]]
    _range_count: int
    _users: dict[int, SimUser]
    _groups: dict[int, SimGroup]
    _updates: deque[dict[str, Any]]
    _update_types: deque[str]
    _next_update_id: int
    _update_event: asyncio.Event
    _allowed_updates: frozenset[str]
    _global_message_id: int
    _files: dict[str, tuple[str, bytes]]
    _file_counter: int
    _callbacks: dict[str, SimUser]
    _callback_counter: int
    _faults: list[FaultRule]

    _format = staticmethod(format_content)
    _markup = staticmethod(parse_markup)

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

    # Awaited before each update is queued, with the sender's id (see tests/conftest.py).
    before_update: Callable[[int | None], Awaitable[None]] | None

    async def push_update(self, kind: str, body: dict[str, Any]) -> int:
        if self.before_update is not None:
            event: dict[str, Any] = next(iter(body.values()), {})
            sender: dict[str, Any] = event.get("from") or {}
            await self.before_update(sender.get("id"))
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

    def _caption(self, call: _Call) -> tuple[str | None, str | None]:
        caption = call.get("caption")
        if caption is None or caption == "":
            return None, None
        return self._format(
            caption, call.get("parse_mode"), call.get("caption_entities"), caption=True
        )

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
