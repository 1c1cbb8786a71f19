"""Bot API methods that send, edit, delete, copy and forward text messages."""

from __future__ import annotations

import time
from typing import Any

from .base import SimulatorBase
from .state import (
    ChatState,
    SimMessage,
    bad_request,
)
from .wire import (
    _NOT_MODIFIED,
    _Call,
)


class MessageMethods(SimulatorBase):
    """sendMessage, sendLocation, sendChatAction, edits, deletes, copies and forwards."""

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
