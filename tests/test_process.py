"""End to end: the real `carebot run` process, the simulator, a temporary database, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

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
        try:
            user = sim.user(user_id=5001, first_name="Mei", language_code="en")
            await user.send("/start")
            reply = await user.next_message(timeout=30)
            assert reply.content
            assert sim.commands, "the command menu was set at start-up"
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)

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
