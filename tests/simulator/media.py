"""Bot API methods that carry files: photos, documents, media groups, getFile."""

from __future__ import annotations

import mimetypes
from typing import Any

from .base import SimulatorBase
from .state import (
    bad_request,
)
from .wire import (
    FILE_MEDIA_FIELDS,
    Handler,
    _as_obj,
    _Call,
)

# Files Telegram sends without a caption.
CAPTIONLESS = frozenset({"sticker", "video_note"})


class MediaMethods(SimulatorBase):
    """sendPhoto, sendDocument, sendSticker, sendVoice … (one path), sendMediaGroup, getFile."""

    def _file_sender(self, kind: str) -> Handler:
        """The handler of ``send<Kind>``: sendPhoto, sendDocument, sendSticker, sendVoice …"""

        async def send(call: _Call) -> dict[str, Any]:
            return await self._send_file(call, kind)

        return send

    async def _send_file(self, call: _Call, kind: str) -> dict[str, Any]:
        """One file (new or by file id) of ``kind``, with a caption unless the kind has none."""
        chat_id, chat = self._target_chat(call)
        name, content, reused = self._input_file(call, kind)
        caption, raw = (None, None) if kind in CAPTIONLESS else self._caption(call)
        markup = self._markup(call) if "reply_markup" in call.params else None
        thread = self._thread(call, chat)
        self._check_rate(chat_id)
        # What the message carries of the file, and what the chat's history keeps of it.
        kept: dict[str, Any] = {}
        if kind == "photo":
            attachment: Any = self._photo_sizes(content, reused)
            kept["photo"] = content
        elif kind == "document":
            attachment = self._document(name, content, reused)
            kept["document"] = (name, content)
        else:
            file_id = reused or self.register_file(content, name)[0]
            attachment = {
                "file_id": file_id,
                "file_unique_id": f"U{file_id[-12:]}",
                **FILE_MEDIA_FIELDS[kind],
            }
        fields: dict[str, Any] = {kind: attachment}
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
            **kept,
        )

    def _document(self, name: str, content: bytes, reused: str | None) -> dict[str, Any]:
        """A document's fields: registered now, or the one sent before (by its file id)."""
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if reused is None:
            return self.register_document(content, name, mime)
        return {
            "file_id": reused,
            "file_unique_id": f"U{reused[-12:]}",
            "file_name": name,
            "mime_type": mime,
            "file_size": len(content),
        }

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
                fields["document"] = self._document(name, content, None)
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
