"""The user side of the simulator: simulated people and groups that talk to the bot."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .state import CallbackAnswer, ChatState, SimMessage, SimTopic

if TYPE_CHECKING:
    from .base import SimulatorBase

_COMMAND_RE = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")

# A valid 1x1 PNG, used as the content of photos users send.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    entities = []
    for match in _COMMAND_RE.finditer(text):
        entities.append(
            {
                "type": "bot_command",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group(0)),
            }
        )
    return entities


def _describe(messages: list[SimMessage], limit: int = 8) -> str:
    if not messages:
        return "  (no bot messages)"
    lines = []
    for msg in messages[-limit:]:
        flags = " [deleted]" if msg.deleted else ""
        flags += f" [edited x{msg.edited}]" if msg.edited else ""
        buttons = msg.inline_buttons or msg.reply_buttons
        extra = f" buttons={buttons}" if buttons else ""
        lines.append(f"  #{msg.message_id}{flags}: {msg.content!r}{extra}")
    return "\n".join(lines)


class _ChatView:
    """Reading helpers shared by private chats (SimUser) and groups (SimGroup)."""

    def __init__(self, sim: SimulatorBase, chat: ChatState) -> None:
        self._sim = sim
        self._chat = chat
        self._cursor = 0  # index into chat.messages for next_message()
        self._mark = 0  # chat.seq at the last user action, for expect()/wait_until()
        self._mark_count = 0  # len(chat.messages) at the last user action

    def _mark_action(self) -> None:
        self._mark = self._chat.seq
        self._mark_count = len(self._chat.messages)

    @property
    def chat_id(self) -> int:
        return self._chat.id

    @property
    def messages(self) -> list[SimMessage]:
        """All bot messages in this chat (including deleted ones, flagged), in order."""
        return list(self._chat.messages)

    @property
    def visible_messages(self) -> list[SimMessage]:
        return [m for m in self._chat.messages if not m.deleted]

    @property
    def last_message(self) -> SimMessage | None:
        for msg in reversed(self._chat.messages):
            if not msg.deleted:
                return msg
        return None

    def _changed_since_mark(self) -> list[SimMessage]:
        return [m for m in self._chat.messages if m.seq > self._mark and not m.deleted]

    async def next_message(self, timeout: float = 5.0) -> SimMessage:
        """The next bot message in this chat not yet returned by next_message()."""
        deadline = time.monotonic() + timeout
        while True:
            if self._cursor < len(self._chat.messages):
                msg = self._chat.messages[self._cursor]
                self._cursor += 1
                return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no new bot message in chat {self.chat_id} within {timeout}s; "
                    f"messages so far:\n{_describe(self._chat.messages)}"
                )
            await self._chat.wait_change(remaining)

    async def wait_until(
        self, predicate: Callable[[SimMessage], bool], timeout: float = 5.0
    ) -> SimMessage:
        """Wait for a bot message sent or edited since the last user action that matches."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self._changed_since_mark():
                if predicate(msg):
                    return msg
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching bot message in chat {self.chat_id} within {timeout}s; "
                    f"messages so far:\n{_describe(self._chat.messages)}"
                )
            await self._chat.wait_change(remaining)

    async def expect(self, text_contains: str, timeout: float = 5.0) -> SimMessage:
        """Wait for a bot message (new or edited since the last user action) containing text."""
        try:
            return await self.wait_until(lambda m: text_contains in m.content, timeout)
        except AssertionError as exc:
            raise AssertionError(
                f"expected a bot message containing {text_contains!r}: {exc}"
            ) from None

    async def no_message_within(self, seconds: float = 0.3) -> None:
        """Assert the bot sent nothing since the last user action and sends nothing for
        ``seconds`` more."""
        await asyncio.sleep(seconds)
        new = self._chat.messages[self._mark_count :]
        if new:
            raise AssertionError(
                f"expected no bot message in chat {self.chat_id}, got:\n{_describe(new)}"
            )


class SimUser(_ChatView):
    """A Telegram user with a private chat with the bot (chat id == user id)."""

    def __init__(
        self,
        sim: SimulatorBase,
        chat: ChatState,
        user_id: int,
        first_name: str,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        birthdate: datetime.date | None = None,
        phone_number: str | None = None,
        is_premium: bool = False,
    ) -> None:
        super().__init__(sim, chat)
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.birthdate = birthdate
        self.phone_number = phone_number
        self.payload: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            self.payload["last_name"] = last_name
        if username:
            self.payload["username"] = username
        if language_code:
            self.payload["language_code"] = language_code
        if is_premium:
            self.payload["is_premium"] = True
        self.callback_answers: list[CallbackAnswer] = []

    def __repr__(self) -> str:
        return f"<SimUser {self.id} {self.first_name!r}>"

    @property
    def blocked(self) -> bool:
        return self.id in self._sim.blocked

    # ----------------------------------------------------------------- sending
    async def _send_message(
        self, fields: dict[str, Any], chat: ChatState | None = None
    ) -> SimMessage:
        chat = chat or self._chat
        self._sim.register_chat(chat.id)
        msg = self._sim.user_message(self, chat, fields)
        if chat is self._chat:
            self._mark_action()
        await self._sim.push_update("message", {"message": msg.payload})
        return msg

    async def send(self, text: str, reply_to: SimMessage | None = None) -> SimMessage:
        """Send a text message to the bot; "/commands" get bot_command entities."""
        fields: dict[str, Any] = {"text": text}
        entities = command_entities(text)
        if entities:
            fields["entities"] = entities
        if reply_to is not None:
            fields["reply_to_message"] = reply_to.payload
        return await self._send_message(fields)

    async def send_photo(
        self, caption: str | None = None, content: bytes = TINY_PNG
    ) -> SimMessage:
        sizes = self._sim.register_photo(content)
        fields: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            fields["caption"] = caption
        msg = await self._send_message(fields)
        msg.photo = content
        return msg

    async def send_document(
        self,
        filename: str = "file.txt",
        content: bytes = b"hello",
        mime_type: str = "text/plain",
        caption: str | None = None,
    ) -> SimMessage:
        fields: dict[str, Any] = {
            "document": self._sim.register_document(content, filename, mime_type)
        }
        if caption is not None:
            fields["caption"] = caption
        msg = await self._send_message(fields)
        msg.document = (filename, content)
        return msg

    async def send_album(self, count: int = 3, caption: str | None = None) -> list[SimMessage]:
        """An album: ``count`` photos, each its own update, sharing one media_group_id."""
        self._album_counter = getattr(self, "_album_counter", 0) + 1
        group_id = f"{self.id}{self._album_counter:04d}"
        sent = []
        for index in range(count):
            fields: dict[str, Any] = {
                "photo": self._sim.register_photo(TINY_PNG),
                "media_group_id": group_id,
            }
            if caption is not None and index == 0:
                fields["caption"] = caption
            sent.append(await self._send_message(fields))
        return sent

    async def send_voice(self, duration: int = 3) -> SimMessage:
        file_id, unique_id = self._sim.register_file(b"OggS\x00voice", "voice.ogg")
        voice = {"file_id": file_id, "file_unique_id": unique_id, "duration": duration}
        return await self._send_message({"voice": voice})

    async def send_dice(self, emoji: str = "🎲") -> SimMessage:
        return await self._send_message({"dice": {"emoji": emoji, "value": 4}})

    async def send_sticker(self, emoji: str = "👍") -> SimMessage:
        file_id, unique_id = self._sim.register_file(b"RIFF\x00\x00\x00\x00WEBP", "sticker.webp")
        sticker = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return await self._send_message({"sticker": sticker})

    async def send_location(self, latitude: float, longitude: float) -> SimMessage:
        return await self._send_message(
            {"location": {"latitude": latitude, "longitude": longitude}}
        )

    async def share_contact(
        self, phone_number: str | None = None, user_id: int | None = None
    ) -> SimMessage:
        """Share a contact; ``user_id`` defaults to this user's id (pass another to forge)."""
        contact: dict[str, Any] = {
            "phone_number": phone_number or self.phone_number or "+8613800000000",
            "first_name": self.first_name,
            "user_id": self.id if user_id is None else user_id,
        }
        if self.last_name:
            contact["last_name"] = self.last_name
        return await self._send_message({"contact": contact})

    async def forward_to_bot(self, original: SimUser, text: str) -> SimMessage:
        """Forward a message written by ``original`` into the chat with the bot."""
        origin = {"type": "user", "date": int(time.time()) - 60, "sender_user": original.payload}
        return await self._send_message({"text": text, "forward_origin": origin})

    async def send_photo_to_group(
        self, group: SimGroup, caption: str | None = None, message_thread_id: int | None = None
    ) -> SimMessage:
        fields: dict[str, Any] = {"photo": self._sim.register_photo(TINY_PNG)}
        if caption is not None:
            fields["caption"] = caption
        return await self.send_to_group(group, "", message_thread_id, fields=fields)

    async def send_to_group(
        self,
        group: SimGroup,
        text: str,
        message_thread_id: int | None = None,
        *,
        fields: dict[str, Any] | None = None,
    ) -> SimMessage:
        """A text (or, with ``fields``, any other message) in a group, maybe in a topic."""
        if fields is None:
            fields = {"text": text}
            entities = command_entities(text)
            if entities:
                fields["entities"] = entities
        if message_thread_id is not None:
            if message_thread_id not in group._chat.topics:
                group._chat.topics[message_thread_id] = SimTopic(
                    message_thread_id, f"Topic {message_thread_id}", 7322096
                )
            fields["message_thread_id"] = message_thread_id
            fields["is_topic_message"] = True
        group._chat.members.setdefault(self.id, "member")
        group._mark_action()
        return await self._send_message(fields, chat=group._chat)

    # --------------------------------------------------------------- keyboards
    def _visible_labels(self) -> list[str]:
        labels: list[str] = []
        for msg in reversed(self._chat.messages):
            if not msg.deleted:
                labels.extend(label for row in msg.inline_buttons for label in row)
        keyboard = self._chat.reply_keyboard
        if keyboard is not None:
            labels.extend(label for row in keyboard.reply_buttons for label in row)
        return labels

    async def press(self, label: str, message: SimMessage | None = None) -> str | SimMessage:
        """Press a button by its label.

        Inline buttons (on ``message`` or the newest bot message that has one) send a
        callback_query and return its id; reply-keyboard buttons send text, a contact or a
        location and return the user's SimMessage.
        """
        candidates = [message] if message is not None else reversed(self._chat.messages)
        for msg in candidates:
            if msg.deleted:
                continue
            button = msg.inline_button(label)
            if button is None:
                continue
            if "callback_data" not in button:
                raise AssertionError(f"button {label!r} is not a callback button: {button}")
            return await self.press_data(button["callback_data"], msg)
        keyboard = message if message is not None else self._chat.reply_keyboard
        if keyboard is not None:
            wanted = label.strip()
            for row in (keyboard.reply_markup or {}).get("keyboard", []):
                for button in row:
                    button = {"text": button} if isinstance(button, str) else button
                    if button["text"].strip() != wanted:
                        continue
                    if button.get("request_contact"):
                        return await self.share_contact()
                    if button.get("request_location"):
                        return await self.send_location(31.2304, 121.4737)
                    return await self.send(button["text"])
        raise AssertionError(
            f"no button {label!r} visible in chat {self.chat_id}; "
            f"visible buttons: {self._visible_labels()}"
        )

    async def press_data(self, data: str, message: SimMessage | None = None) -> str:
        """Send a callback_query with arbitrary data (defaults to the last bot message)."""
        message = message or self.last_message
        if message is None:
            raise AssertionError(f"no bot message in chat {self.chat_id} to attach a callback to")
        callback_id = self._sim.new_callback(self)
        self._mark_action()
        await self._sim.push_update(
            "callback_query",
            {
                "callback_query": {
                    "id": callback_id,
                    "from": self.payload,
                    "chat_instance": f"ci{abs(self.chat_id)}",
                    "message": message.payload,
                    "data": data,
                }
            },
        )
        return callback_id

    async def wait_callback_answer(self, callback_id: str, timeout: float = 5.0) -> CallbackAnswer:
        deadline = time.monotonic() + timeout
        while True:
            for answer in self.callback_answers:
                if answer.callback_id == callback_id:
                    return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"callback {callback_id} was not answered within {timeout}s")
            await self._chat.wait_change(remaining)

    # ------------------------------------------------------------ membership
    async def block(self) -> None:
        """Block the bot: a my_chat_member update, then every send answers 403."""
        self._sim.blocked.add(self.id)
        await self._push_member_update("member", "kicked")

    async def unblock(self) -> None:
        self._sim.blocked.discard(self.id)
        await self._push_member_update("kicked", "member")

    async def _push_member_update(self, old: str, new: str) -> None:
        def member(status: str) -> dict[str, Any]:
            data: dict[str, Any] = {"status": status, "user": self._sim.bot_user()}
            if status == "kicked":
                data["until_date"] = 0
            return data

        self._sim.register_chat(self.id)
        await self._sim.push_update(
            "my_chat_member",
            {
                "my_chat_member": {
                    "chat": self._chat.payload,
                    "from": self.payload,
                    "date": int(time.time()),
                    "old_chat_member": member(old),
                    "new_chat_member": member(new),
                }
            },
        )


class SimGroup(_ChatView):
    """A (super)group the bot is a member of, optionally with forum topics."""

    def __init__(self, sim: SimulatorBase, chat: ChatState) -> None:
        super().__init__(sim, chat)

    def __repr__(self) -> str:
        return f"<SimGroup {self.chat_id} {self.title!r}>"

    @property
    def title(self) -> str:
        return str(self._chat.payload.get("title", ""))

    @property
    def is_forum(self) -> bool:
        return self._chat.is_forum

    @property
    def topics(self) -> dict[int, SimTopic]:
        return self._chat.topics

    def topic_messages(self, message_thread_id: int) -> list[SimMessage]:
        return [m for m in self._chat.messages if m.message_thread_id == message_thread_id]

    def add_topic(self, name: str, icon_color: int = 7322096) -> SimTopic:
        topic = SimTopic(self._chat.take_id(), name, icon_color)
        self._chat.topics[topic.message_thread_id] = topic
        return topic
