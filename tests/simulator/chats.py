"""Bot API methods about chats: callback answers, chat info and members, forum topics."""

from __future__ import annotations

from typing import Any

from .base import SimulatorBase
from .state import (
    CallbackAnswer,
    ChatState,
    SimTopic,
    bad_request,
)
from .wire import (
    _Call,
)


class ChatMethods(SimulatorBase):
    """answerCallbackQuery, getChat, getChatMember and the forum topic methods."""

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
