"""The command line as a shop owner meets it: one clear line and an exit code, no traceback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import time as dt_time
from pathlib import Path

from sqlalchemy import create_engine, inspect
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from care.core.clock import Clock
from care.core.config import CareConfig
from care.messaging.outbox import OutboxItem, enqueue_many
from storage.enums import MessageKind
from tests.simulator import BotAPISimulator

ROOT = Path(__file__).resolve().parent.parent


def carebot(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    clean.update(env or {})
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_without_a_token_prints_the_botfather_hint_and_exits_2(tmp_path: Path) -> None:
    result = carebot("run", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BOT_TOKEN" in lines[0] and "@BotFather" in lines[0]


def test_a_bad_setting_stops_with_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=123:abc\nDEFAULT_TIMEZONE=Nowhere/Land\n")
    result = carebot("run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "carebot: Setting DEFAULT_TIMEZONE: 'Nowhere/Land' is not an IANA timezone name like "
        "Asia/Shanghai"
    )


NO_DATABASE = "postgresql+asyncpg://x@127.0.0.1:1/none"


def good_token_without_database(sim: BotAPISimulator) -> dict[str, str]:
    """A token the Bot API knows, and a database that does not answer."""
    return {"BOT_TOKEN": "42:good", "TELEGRAM_API_URL": sim.base_url, "DATABASE_URL": NO_DATABASE}


async def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    async with BotAPISimulator(valid_tokens={"42:good"}) as sim:
        code, stderr = await _run_async(tmp_path, good_token_without_database(sim), "run")
    assert code == 1
    assert "cannot reach the database" in stderr
    assert "Traceback" not in stderr


async def test_a_refused_token_is_one_clear_line(tmp_path: Path) -> None:
    async with BotAPISimulator(valid_tokens={"42:good"}) as sim:
        env = {
            "BOT_TOKEN": "42:wrong",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        }
        proc = await _run_async(tmp_path, env, "run")
    assert proc[0] == 1
    assert "refused BOT_TOKEN (401 Unauthorized)" in proc[1]
    assert "Traceback" not in proc[1]


async def test_an_unreachable_bot_api_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "BOT_TOKEN": "42:abc",
        "TELEGRAM_API_URL": "http://127.0.0.1:1",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
    }
    code, stderr = await _run_async(tmp_path, env, "run")
    assert code == 1
    assert "cannot reach the Bot API at http://127.0.0.1:1" in stderr
    assert "Traceback" not in stderr


def test_migrate_builds_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    result = carebot(
        "migrate", cwd=tmp_path, env={"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
    )
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(f"sqlite:///{database}")).get_table_names())
    assert {"members", "purchases", "outbox", "alembic_version"} <= tables


async def _run_async(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    return await _run_module_async(cwd, env, "bot", *args)


async def _run_module_async(
    cwd: Path, env: dict[str, str], module: str, *args: str
) -> tuple[int, str]:
    # The simulator runs in this event loop, so the child must not block it.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    clean.update(env)
    clean["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=cwd,
        env=clean,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stderr.decode()


# Runs the CLI in a fresh interpreter and reports, after the command, whether aiogram was loaded.
_WATCH_IMPORTS = """
import sys
from bot.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "aiogram" or m.startswith("aiogram."))
print("aiogram modules loaded:", len(loaded), loaded[:3], file=sys.stderr)
sys.exit(code)
"""


def _carebot_watching_imports(
    *args: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    clean.update(env)
    clean["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", _WATCH_IMPORTS, *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_commands_that_do_not_talk_to_telegram_do_not_import_aiogram(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"}
    sample = ROOT / "tests" / "data" / "pos_sample.csv"
    commands: list[tuple[tuple[str, ...], dict[str, str], int]] = [
        (("migrate",), env, 0),
        # the sample holds a few lines the till got wrong on purpose: exit 1, "some rejected"
        (("import", "purchases", str(sample), "--dry-run"), env, 1),
        (("care", "dry-run", "--at", "2026-03-02T10:00"), env, 0),
        (("care", "report", "--days", "30"), env, 0),
        (("run",), env, 2),  # no token: the hint, nothing else
        (("migrate",), {**env, "DEFAULT_TIMEZONE": "Nowhere/Land"}, 2),  # the settings error
    ]
    for args, command_env, code in commands:
        result = _carebot_watching_imports(*args, cwd=tmp_path, env=command_env)
        assert result.returncode == code, (args, result.stderr)
        assert "aiogram modules loaded: 0 []" in result.stderr, (args, result.stderr)


async def test_a_refused_token_is_answered_before_aiogram_is_imported(tmp_path: Path) -> None:
    async with BotAPISimulator(valid_tokens={"42:good"}) as sim:
        env = {"BOT_TOKEN": "42:wrong", "TELEGRAM_API_URL": sim.base_url}
        result = await asyncio.to_thread(_carebot_watching_imports, "run", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "refused BOT_TOKEN" in result.stderr
    assert "aiogram modules loaded: 0 []" in result.stderr, result.stderr


async def test_the_watch_sees_aiogram_when_a_command_does_load_it(tmp_path: Path) -> None:
    # The checks above must be able to fail: a good token makes `run` import the bot (and
    # aiogram) before it finds no database to start with.
    async with BotAPISimulator(valid_tokens={"42:good"}) as sim:
        env = good_token_without_database(sim)
        result = await asyncio.to_thread(_carebot_watching_imports, "run", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr
    assert "aiogram modules loaded: 0" not in result.stderr
    assert "aiogram modules loaded:" in result.stderr


def test_run_without_a_token_answers_well_under_a_second(tmp_path: Path) -> None:
    # The promise is under a second; the bound is generous so a loaded machine does not flake.
    started = time.perf_counter()
    result = carebot("run", cwd=tmp_path)
    elapsed = time.perf_counter() - started
    print(f"`carebot run` without a token answered in {elapsed:.2f} s")
    assert result.returncode == 2
    assert "@BotFather" in result.stderr
    assert elapsed < 3.0


async def _queue_one_message(database: Path, chat_id: int, text: str) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with AsyncSession(engine) as session:
            quiet_never = CareConfig(quiet_start=dt_time(0, 0), quiet_end=dt_time(0, 0))
            item = OutboxItem(f"cli:{chat_id}", chat_id, text, MessageKind.SERVICE)
            assert await enqueue_many(session, Clock(), quiet_never, [item]) == 1
            await session.commit()
    finally:
        await engine.dispose()


async def test_deliver_sends_the_outbox_with_the_settings_from_dot_env(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    async with BotAPISimulator() as sim:
        (tmp_path / ".env").write_text(
            f"BOT_TOKEN=123:abc\nDATABASE_URL=sqlite+aiosqlite:///{database}\n"
            f"TELEGRAM_API_URL={sim.base_url}\nSEND_RATE=50\n"
        )
        code, stderr = await _run_async(tmp_path, {}, "migrate")
        assert code == 0, stderr
        shopper = sim.user(5001, started=True)
        await _queue_one_message(database, shopper.id, "Your parcel is ready")

        code, stderr = await _run_async(tmp_path, {}, "deliver")

        assert code == 0, stderr
        assert [m.text for m in sim.chat_messages(shopper.id)] == ["Your parcel is ready"]


async def test_the_delivery_module_runs_with_its_default_rate(tmp_path: Path) -> None:
    # `--rate` left out: its default once was a slots dataclass's field descriptor (a TypeError).
    database = tmp_path / "shop.db"
    async with BotAPISimulator() as sim:
        env = {"DATABASE_URL": f"sqlite+aiosqlite:///{database}"}
        code, stderr = await _run_async(tmp_path, env, "migrate")
        assert code == 0, stderr
        shopper = sim.user(5002, started=True)
        await _queue_one_message(database, shopper.id, "Thank you for your visit")

        code, stderr = await _run_module_async(
            ROOT,
            {**env, "BOT_TOKEN": "123:abc", "TELEGRAM_API_URL": sim.base_url},
            "care.messaging.delivery",
        )

        assert code == 0, stderr
        assert [m.text for m in sim.chat_messages(shopper.id)] == ["Thank you for your visit"]
