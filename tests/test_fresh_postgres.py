"""A fresh install on PostgreSQL: the real `carebot run` process on an empty database migrates,
answers, and runs its first scheduler ticks (segments, rules, campaigns) without an error."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database, postgres_url
from tests.simulator import BotAPISimulator

ROOT = Path(__file__).resolve().parent.parent
# The scheduler's first runs (segments after 1 s, rules after 2 s, campaigns after 5 s); each
# logs ``Job "<name> … executed`` once done, whether or not the job itself logged a failure.
JOBS = ("care.segments", "care.rules", "care.campaigns")


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode(errors="replace"))


async def test_the_process_starts_on_an_empty_postgres_database_without_errors(
    tmp_path: Path,
) -> None:
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_POSTGRES_URL is not set (make test sets it when PostgreSQL answers)")
    async with fresh_postgres_database(base) as database_url, BotAPISimulator() as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))},
            "BOT_TOKEN": "123456:fresh-postgres",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None and process.stdout is not None
        lines: list[str] = []
        readers = [
            asyncio.create_task(_collect(process.stderr, lines)),
            asyncio.create_task(_collect(process.stdout, lines)),
        ]
        try:
            user = sim.user(user_id=5101, first_name="Mei", language_code="en")
            await user.send("/start")
            assert (await user.next_message(timeout=30)).content
            deadline = time.monotonic() + 60
            while not all(f'Job "{job}' in "".join(lines) for job in JOBS):
                assert process.returncode is None, "".join(lines)
                assert time.monotonic() < deadline, "no first ticks:\n" + "".join(lines)
                await asyncio.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)
            await asyncio.gather(*readers)

    log = "".join(lines)
    assert process.returncode == 0, log
    assert "segments refreshed" in log, log
    for sign in ("Traceback", "ERROR", "scheduled job", "operator is not unique"):
        assert sign not in log, log
