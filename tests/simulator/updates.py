"""Bot API methods about the bot itself and its updates: getMe, getUpdates, webhooks, commands."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import ClientSession, ClientTimeout

from .base import SimulatorBase
from .state import (
    ApiError,
    bad_request,
)
from .wire import (
    _COMMAND_NAME_RE,
    _DEFAULT_ALLOWED,
    _as_obj,
    _Call,
)


class UpdateMethods(SimulatorBase):
    """getMe, long polling, webhooks (with replies in the response body) and command menus."""

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
