"""End to end: the real `carebot run` process, the simulator, a temporary database, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from aiohttp import ClientSession
from sqlalchemy import select

from storage.db import create_engine, create_session_factory
from storage.models import Member
from tests.simulator import BotAPISimulator

ROOT = Path(__file__).resolve().parent.parent


async def test_the_bot_process_answers_start_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    async with BotAPISimulator() as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))},
            "BOT_TOKEN": "123456:process-test",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # Read the DEBUG log while the process runs: a full pipe would block its logging.
        assert process.stderr is not None
        reading = asyncio.create_task(process.stderr.read())
        try:
            user = sim.user(user_id=5001, first_name="Mei", language_code="en")
            await user.send("/start")
            reply = await user.next_message(timeout=30)
            assert reply.content
            assert sim.commands, "the command menu was set at start-up"
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)
            stderr = await reading

    log = stderr.decode()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    assert "update" in log and "from 5001" in log  # one debug line per update

    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        member = await session.scalar(select(Member).where(Member.telegram_id == 5001))
    await engine.dispose()
    assert member is not None
    assert member.name == "Mei"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_webhook_mode_answers_and_refuses_posts_without_the_secret(tmp_path: Path) -> None:
    port = _free_port()
    async with BotAPISimulator() as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))},
            "BOT_TOKEN": "123456:webhook-test",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}",
            "WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram",
            "WEBHOOK_SECRET": "a-long-enough-secret-1234",
            "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            user = sim.user(user_id=5002, first_name="Hua", language_code="zh")
            await user.send("/help")
            reply = await user.next_message(timeout=30)
            assert "/start" in reply.text
            assert sim.webhook["url"] == env["WEBHOOK_URL"]

            async with ClientSession() as http:
                forged = {"update_id": 1, "message": {"message_id": 1, "date": 0,
                          "chat": {"id": 6, "type": "private"}, "text": "/start"}}  # fmt: skip
                async with http.post(env["WEBHOOK_URL"], json=forged) as response:
                    assert response.status == 401
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()
