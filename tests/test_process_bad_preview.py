"""The real `carebot run` process while a staff member previews a pathological broadcast text.

What the issue found: the preview rendered on the event loop, so other shoppers got no answer
and the process ignored SIGTERM. Here the preview renders in a worker thread within its time
budget: a shopper is answered while it renders, and SIGTERM ends the process within seconds,
cleanly (the preview's own answer still goes out during the graceful stop).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from storage.db import create_engine, create_session_factory
from storage.models import Campaign
from tests.console_helpers import seed_member
from tests.simulator import BotAPISimulator

# 10^8 loop steps within the range bound: only the time budget (a second) ends this preview.
from tests.test_template_budget import NESTED_10K

ROOT = Path(__file__).resolve().parent.parent
OWNER = 900_001
SHOPPER = 5_201


async def _wait_for_line(lines: list[str], needle: str, start: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index in range(start, len(lines)):
            if needle in lines[index]:
                return index
        await asyncio.sleep(0.01)
    raise AssertionError(f"no log line with {needle!r}")


async def test_a_bad_preview_neither_blocks_shoppers_nor_sigterm(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    async with BotAPISimulator() as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))},
            "BOT_TOKEN": "123456:bad-preview",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": database_url,
            "ADMIN_IDS": str(OWNER),
            "DEFAULT_LOCALE": "zh",
            "LOG_LEVEL": "DEBUG",
            "PYTHONPATH": str(ROOT),
        }
        env.pop("REDIS_URL", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        lines: list[str] = []

        async def read_log() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                lines.append(raw.decode(errors="replace"))

        reading = asyncio.create_task(read_log())
        stopped_in = None
        try:
            shopper = sim.user(user_id=SHOPPER, first_name="Mei", language_code="en")
            await shopper.send("/help")
            await shopper.next_message(timeout=60)  # up, migrated, answering
            engine = create_engine(database_url)
            async with create_session_factory(engine)() as session:
                for _ in range(3):
                    await seed_member(session, datetime.now(UTC))
                await session.commit()
            await engine.dispose()

            owner = sim.user(user_id=OWNER, first_name="老板", language_code="zh")
            await owner.send("/broadcast")
            await owner.expect("新建群发", timeout=10)
            await owner.press("所有会员（3）")
            await owner.expect("请发送中文版文案", timeout=10)
            mark = len(lines)
            await owner.send(NESTED_10K)
            await _wait_for_line(lines, f"from {OWNER}", mark, timeout=10)

            # While the preview works through its budget, a shopper is answered ...
            asked = time.monotonic()
            await shopper.send("/help")
            await shopper.expect("/start", timeout=5)
            answered_in = time.monotonic() - asked
            preview_done = any("计算量太大" in m.content for m in owner.messages)
            # ... and SIGTERM is obeyed at once.
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)
            stopped_in = time.monotonic() - signalled
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await reading

    log = "".join(lines)
    assert process.returncode == 0, log
    assert "Traceback" not in log, log
    assert answered_in < 1.5, answered_in
    assert not preview_done, "the preview ended before the shopper's answer: nothing was shown"
    assert stopped_in is not None and stopped_in < 5.0, stopped_in
    # The preview finished within its budget during the graceful stop and said why.
    assert any("计算量太大" in m.content for m in owner.messages)

    engine = create_engine(database_url)
    async with create_session_factory(engine)() as session:
        # The text that could not be rendered never became a campaign.
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 0
    await engine.dispose()
