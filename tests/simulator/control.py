"""The simulator's own HTTP control API under ``/_sim/`` (used by benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .limits import LimitsMixin
from .state import (
    Stats,
)


def add_control_routes(app: web.Application, sim: ControlAPI) -> None:
    app.router.add_get("/_sim/stats", sim._ctl_stats)
    app.router.add_post("/_sim/reset", sim._ctl_reset)
    app.router.add_post("/_sim/chats", sim._ctl_chats)
    app.router.add_post("/_sim/block", sim._ctl_block)
    app.router.add_post("/_sim/limits", sim._ctl_limits)
    app.router.add_post("/_sim/fail", sim._ctl_fail)
    app.router.add_post("/_sim/latency", sim._ctl_latency)
    app.router.add_post("/_sim/updates", sim._ctl_updates)


class ControlAPI(LimitsMixin):
    """``/_sim/``: stats, reset, chats, block, limits, fail, latency, updates."""

    reset: Callable[[], None]  # BotAPISimulator's: forget everything but limits and config

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
